"""Narratives: an LLM writes them from a compact digest; code checks them.

The digest lists likes and dislikes separately and labelled (the small model
mixes them up otherwise), titles as people write them, without years or
ratings. The prompt is a system message plus one worked example exchange; the
model answers LONG/SHORT/TAGS lines. A narrative may name only titles and
genres that are in the digest; a disliked title needs a negative word in its
own stretch of the sentence and a liked one must not follow a rejection; a
rating may be stated only next to a title with that rating. A failed check
earns one regeneration with the problem spelled out, then a deterministic
template narrative (`narrative_source: template`); a model that does not
answer (an error, or no reply within the writer's timeout) goes straight
to the template, with the error among the violations. Extra tags the model
proposes are kept only when they cite liked titles (real events of this user)
and are not genres, titles or the example's tags. The prompt and the narrative
are masked for PII (tastebud/pii.py): tags hold words the user wrote.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tastebud import pii

DIGEST_TAGS = 3
DIGEST_LIKED = 3
DIGEST_RECENT = 2
DIGEST_DISLIKED = 3
MAX_TOKENS = 160

# Measured on ten ml-latest-small users with the embedded 0.5B model: it
# recites whatever it is shown (every genre, every "rated 5/5", every year) and
# copies the shape of an example far better than it follows a description. So
# the digest shows few genres and titles without years or ratings, and one
# worked example (a prior exchange) shows the three lines about "this viewer".
SYSTEM_PROMPT = (
    "You describe a movie viewer's taste for a recommender, in plain sentences about \"this viewer\". "
    "Use only the facts given: never add titles, genres, ratings or numbers. "
    "Never call a Disliked title a favourite. Answer with exactly three lines:\n"
    "LONG: two sentences on lasting taste, naming one or two genres and one Liked title.\n"
    "SHORT: one sentence on what this viewer watches lately.\n"
    "TAGS: up to 3 short tags describing Liked titles, each with the [numbers] of those titles."
)
EXAMPLE_FACTS = (
    "Lasting interests: Crime, Thriller, Drama\n"
    "Liked: [1] The Godfather; [2] Heat; [3] Se7en\n"
    "Disliked: Pretty Woman\n"
    "Lately: Comedy, Crime, Drama\n"
    "Liked lately: [4] The Big Lebowski\n"
    "Growing: Comedy\n"
    "Fading: Thriller"
)
EXAMPLE_ANSWER = (
    "LONG: This viewer loves Crime and Thriller films such as The Godfather and Heat. "
    "They did not enjoy Pretty Woman.\n"
    "SHORT: Lately this viewer has turned to Comedy, such as The Big Lebowski.\n"
    "TAGS: mafia [1]; gritty [2,3]"
)
INSTRUCTIONS = "Write the three lines for this viewer, using only these facts."
# Tags the example shows (and an older prompt did): an echo of them is not a proposal.
EXAMPLE_TAGS = {"mafia", "gritty", "heist"}

_NEGATIVE_CUES = re.compile(
    r"(?:\b(?:dislike[sd]?|disliking|disappoint\w*|avoid\w*|not|never|low\w*|poor\w*|hate[sd]?|unimpress\w*|negative\w*|"
    r"rated (?:0|1|2)(?:\.5)?|less|fading|bor(?:ed|ing)|weak\w*|critic\w*)\b|n't\b|\b[0-2](?:\.5)?/5)",
    re.IGNORECASE,
)
_REJECTION = re.compile(r"\b(?:not|never|dislike[sd]?|disliking|avoid\w*|hate[sd]?|disappoint\w*)\b|n't\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“]([^\"”\n]{1,80})[\"”]")  # short ones kept so quotes pair up
_YEAR_TITLE = re.compile(r"([A-Z][\w'’:,.&!\- ]{1,60}?) \((?:19|20)\d{2}\)")
_SENTENCE = re.compile(r"(?<!\b[a-z]\.[a-z]\.)(?<!\b[A-Z][a-z]\.)(?<=[.!?])\s+")
_RATING_CLAIM = re.compile(r"\b(\d(?:\.\d)?)\s*(?:/\s*5|out of 5|stars?)\b", re.IGNORECASE)
_TAG_ITEM = re.compile(r"([A-Za-z][\w' \-]{1,40}?)\s*\[([\d,\s]+)\]")


def plain_title(title: str) -> str:
    """'Matrix, The (1999)' -> 'The Matrix': no year, no alternate title, the article in front;
    how the digest shows titles and how people write them (tastebud.agent.grounding.display_title
    keeps the year)."""
    t = re.sub(r"\s*\((?:[^)]*\d{4}[^)]*|[^)]*)\)\s*$", "", title.strip())
    t = re.sub(r"\s*\([^)]*\)", "", t)  # alternate-language titles
    m = re.match(r"^(.*), (The|A|An|Les|La|Le|Il|El|Das|Der|Die)$", t)
    if m:
        t = f"{m.group(2)} {m.group(1)}"
    return re.sub(r"\s+", " ", t).strip()


def normalise_title(title: str) -> str:
    """'Matrix, The (1999)' -> 'the matrix': the form titles are compared in."""
    return plain_title(title).lower()


_ARTICLE = re.compile(r"^(?:the|a|an|les|la|le|il|el|das|der|die) ")


def _core(name: str) -> str:
    """A normalised title without its leading article: 'the big lebowski' -> 'big lebowski'."""
    return _ARTICLE.sub("", name)


def _genre_forms(genre: str) -> set[str]:
    g = genre.lower()
    forms = {g, g + "s"}
    if g.endswith("y"):
        forms.add(g[:-1] + "ies")
    return forms


@dataclass
class Digest:
    user_id: str
    text: str
    liked_refs: dict[int, dict[str, Any]]  # [n] -> liked item (with event_id)
    allowed_titles: set[str]  # normalised
    disliked_titles: set[str]  # normalised
    allowed_tags: set[str]  # lowercased
    ratings: dict[str, float] = field(default_factory=dict)  # normalised title -> rating
    titles: list[str] = field(default_factory=list)  # as shown: never masked as PII ("My Name Is Khan")


@dataclass
class NarrativeResult:
    long: str
    short: str
    source: str  # llm | template
    extra_tags: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    violations: list[str] = field(default_factory=list)
    output_tokens: int = 0
    seconds: float = 0.0


def build_digest(profile: dict[str, Any]) -> Digest:
    """A compact, labelled summary: never a raw event dump.

    Titles appear as people write them ('The Matrix'), without years or
    ratings: the lists' labels say liked or disliked, and numbers shown to the
    small model come back as invented claims ("rated 5/5 on each genre").
    """
    long_tags = profile["long_term"]["tags"][:DIGEST_TAGS]
    short_tags = profile["short_term"]["tags"][:DIGEST_TAGS]
    refs: dict[int, dict[str, Any]] = {}
    lines = ["Lasting interests: " + (", ".join(t["tag"] for t in long_tags) or "none yet")]
    liked = []
    for item in profile["long_term"]["top_items"][:DIGEST_LIKED]:
        n = len(refs) + 1
        refs[n] = item
        liked.append(f"[{n}] {plain_title(item['title'])}")
    lines.append("Liked: " + ("; ".join(liked) or "none"))
    disliked_items = profile["dislikes"]["items"][:DIGEST_DISLIKED]
    lines.append("Disliked: " + ("; ".join(plain_title(i["title"]) for i in disliked_items) or "none"))
    disliked_tags = profile["dislikes"]["tags"][:3]
    if disliked_tags:
        lines.append("Avoided: " + ", ".join(t["tag"] for t in disliked_tags))
    lines.append("Lately: " + (", ".join(t["tag"] for t in short_tags) or "nothing"))
    recent = []
    # Always a recent title when there is one (repeating a liked one with its number):
    # with the line missing, the small model fills the gap from the prompt's example.
    for item in profile["short_term"]["top_items"][:DIGEST_RECENT]:
        n = next((k for k, v in refs.items() if v["item_id"] == item["item_id"]), None)
        if n is None:
            n = len(refs) + 1
            refs[n] = item
        recent.append(f"[{n}] {plain_title(item['title'])}")
    if recent:
        lines.append("Liked lately: " + "; ".join(recent))
    drift = profile["drift"]
    if drift["emerging"]:
        lines.append("Growing: " + ", ".join(drift["emerging"][:3]))
    if drift["fading"]:
        lines.append("Fading: " + ", ".join(drift["fading"][:3]))
    tags = {t["tag"].lower() for t in long_tags + short_tags + disliked_tags}
    tags |= {t.lower() for t in drift["emerging"][:3] + drift["fading"][:3]}
    return Digest(
        user_id=profile["user_id"],
        text="\n".join(lines),
        liked_refs=refs,
        allowed_titles={normalise_title(i["title"]) for i in refs.values()} | {normalise_title(i["title"]) for i in disliked_items},
        disliked_titles={normalise_title(i["title"]) for i in disliked_items},
        allowed_tags=tags,
        ratings={normalise_title(i["title"]): float(i["value"]) for i in list(refs.values()) + disliked_items
                 if i.get("type") == "rating" and i.get("value") is not None},
        titles=[plain_title(i["title"]) for i in list(refs.values()) + disliked_items],
    )


class GroundingChecker:
    """Checks a narrative against its digest and the catalog's vocabulary."""

    def __init__(self, catalog_titles: Iterable[str], genres: Iterable[str]):
        names = {normalise_title(t) for t in catalog_titles if t}
        # Titles short or common enough to be ordinary words ('Heat', 'Up') can't be policed in prose.
        titles = sorted((n for n in names if len(n) >= 8 and " " in n), key=len, reverse=True)
        self._titles = [t for t in titles if " " in _core(t)]
        # 'The Children', 'The Martian': only with capitals does prose mean the film, not the word.
        self._article_titles = [t for t in titles if " " not in _core(t)]
        self._genres = {g.lower(): _genre_forms(g) for g in genres if g}
        self._all_titles = names
        self._all_cores = {_core(n) for n in names}

    @staticmethod
    def _protect(text: str, digest: Digest) -> tuple[str, dict[str, str]]:
        """The text with each digest title it names (in full, without its article, or by its
        'Star Wars'-style head) replaced by a placeholder, and placeholder -> title.

        So words inside a title are not read as genres or other titles, and a '!' or 'Mr.'
        inside a title does not split the sentence it stands in."""
        forms: dict[str, str] = {}
        for name in sorted(digest.allowed_titles):
            head = re.split(r":| - ", name)[0].strip()
            for form in (name, _core(name), head, _core(head)):
                if len(form) >= 4 or form == name:
                    forms.setdefault(form, name)
        names: dict[str, str] = {}
        for i, form in enumerate(sorted(forms, key=len, reverse=True)):
            token = f"\ue000{chr(97 + i % 26)}{chr(97 + i // 26)}\ue001"
            text, n = re.subn(rf"(?<!\w){re.escape(form)}(?!\w)", token, text, flags=re.IGNORECASE)
            if n:
                names[token] = forms[form]
        return text, names

    def violations(self, text: str, digest: Digest) -> list[str]:
        problems: list[str] = []
        protected, names = self._protect(text, digest)
        masked = re.sub("\ue000..\ue001", " ", protected)
        lowered = masked.lower()
        for title in self._titles:
            if title in lowered and not any(title in allowed for allowed in digest.allowed_titles):
                if re.search(rf"(?<![\w]){re.escape(title)}(?![\w])", lowered):
                    problems.append(f"invented title {title!r}")
        for title in self._article_titles:
            if any(title in allowed for allowed in digest.allowed_titles):
                continue
            shown = " ".join(w[:1].upper() + w[1:] for w in title.split())
            if re.search(rf"(?<![\w]){re.escape(shown)}(?![\w])", masked):
                problems.append(f"invented title {title!r}")
        for quoted in [q for q in _QUOTED.findall(text) if len(q.strip()) >= 3] + _YEAR_TITLE.findall(text):
            name = normalise_title(quoted)
            if name and not any(name in a or a in name or _core(a) in name for a in digest.allowed_titles) \
                    and name not in digest.allowed_tags:
                problems.append(f"invented title {quoted.strip()!r}")
        for genre, forms in self._genres.items():
            if genre in digest.allowed_tags:
                continue
            if any(re.search(rf"\b{re.escape(f)}\b", lowered) for f in forms):
                problems.append(f"genre {genre!r} has no evidence")
        for sentence in _SENTENCE.split(protected):
            named = {names[t] for t in re.findall("\ue000..\ue001", sentence)}
            plain = re.sub("\ue000..\ue001", " ", sentence)
            for claim in _RATING_CLAIM.findall(plain):
                # A rating may be stated only next to a title that got exactly that rating.
                if not any(abs(digest.ratings.get(t, -1) - float(claim)) < 1e-6 for t in named):
                    problems.append(f"rating {claim}/5 not tied to a title with that rating")
            problems += self._misplaced(sentence, names, digest)
        return sorted(set(problems))

    @staticmethod
    def _misplaced(sentence: str, names: dict[str, str], digest: Digest) -> list[str]:
        """Likes and dislikes swapped, read from one sentence with titles as placeholders.

        A disliked title needs a negative word in its own stretch: from the last liked title
        (or the sentence start) up to it, or after it up to the next comma or title. 'They
        did not enjoy A, B' qualifies both; 'loves X, Y, A' does not. A liked title must not
        follow a negative word with no disliked title in between ('did not enjoy X')."""
        problems = []
        marks = list(re.finditer("\ue000..\ue001", sentence))
        start = 0
        for k, m in enumerate(marks):
            title = names[m.group()]
            before = sentence[start:m.start()]
            if title in digest.disliked_titles:
                stop = marks[k + 1].start() if k + 1 < len(marks) else len(sentence)
                after = re.split(r"[,;]", sentence[m.end():stop].lstrip(" ,;"), maxsplit=1)[0]
                if not (_NEGATIVE_CUES.search(re.sub("\ue000..\ue001", " ", before)) or _NEGATIVE_CUES.search(after)):
                    problems.append(f"disliked title {title!r} presented as liked")
            else:
                last = before.split("\ue001")[-1]  # the words since the previous title of either kind
                if _REJECTION.search(last) and not re.search(r",|\band\b|\bbut\b", last):
                    problems.append(f"liked title {title!r} presented as disliked")
                start = m.end()
        return problems

    def is_genre(self, text: str) -> bool:
        return text.lower() in self._genres

    def is_title(self, text: str) -> bool:
        """Whether `text` is a catalog title of two words or more (a proposed tag that only
        repeats a title); one-word titles ('Heist', 'Love') are ordinary words too."""
        name = normalise_title(text)
        return " " in _core(name) and (name in self._all_titles or name in self._all_cores)


def parse_answer(text: str) -> tuple[str, str, list[tuple[str, list[int]]]]:
    """Pull LONG/SHORT/TAGS lines out of the model's answer."""
    sections: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^\s*\**\s*(LONG|SHORT|TAGS)\s*\**\s*:\s*\**\s*(.*)$", line, re.IGNORECASE)
        if m:
            current = m.group(1).upper()
            sections[current] = m.group(2).strip()
        elif current and line.strip():
            sections[current] += " " + line.strip()
    tags = [(t.strip().lower(), [int(n) for n in re.findall(r"\d+", refs)]) for t, refs in _TAG_ITEM.findall(sections.get("TAGS", ""))]
    return sections.get("LONG", "").strip(), sections.get("SHORT", "").strip(), tags


def _join(words: Sequence[str]) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def template_narrative(profile: dict[str, Any]) -> tuple[str, str]:
    """Deterministic, always grounded: the fallback and the --no-narratives text."""
    long_tags = [t["tag"] for t in profile["long_term"]["tags"][:3]]
    liked = [i["title"] for i in profile["long_term"]["top_items"][:2]]
    long = f"This user's lasting interests are {_join(long_tags)}." if long_tags else "This user has no clear lasting interests yet."
    if liked:
        long += f" Favourites include {_join(liked)}."
    disliked_tags = [t["tag"] for t in profile["dislikes"]["tags"][:2]]
    disliked_items = [i["title"] for i in profile["dislikes"]["items"][:2]]
    if disliked_tags:
        long += f" They tend to avoid {_join(disliked_tags)}."
    elif disliked_items:
        long += f" They disliked {_join(disliked_items)}."
    short_tags = [t["tag"] for t in profile["short_term"]["tags"][:3]]
    short = f"Lately they have focused on {_join(short_tags)}." if short_tags else "There is no recent activity."
    drift = profile["drift"]
    if drift["emerging"]:
        short += f" {_join(drift['emerging'][:2])} {'is' if len(drift['emerging'][:2]) == 1 else 'are'} emerging"
        short += f" while {_join(drift['fading'][:2])} {'is' if len(drift['fading'][:2]) == 1 else 'are'} fading." if drift["fading"] else "."
    elif drift["fading"]:
        short += f" Interest in {_join(drift['fading'][:2])} is fading."
    return long, short


def _valid_sentences(text: str) -> bool:
    text = text.strip()
    n = len([s for s in _SENTENCE.split(text) if s.strip()])
    # A missing full stop at the end is an answer cut off at max_tokens.
    return 1 <= n <= 5 and 20 <= len(text) <= 700 and text[-1] in ".!?\"”)'"


class NarrativeWriter:
    """Writes narratives for many profiles at once (so vLLM can batch them)."""

    def __init__(self, chat_model: Any, checker: GroundingChecker, concurrency: int = 4, max_tokens: int = MAX_TOKENS,
                 timeout: float | None = None):
        """timeout: seconds one call may take, retries of the HTTP client included;
        past it the call counts as unanswered (so the template takes over)."""
        self.chat_model = chat_model
        self.checker = checker
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens
        self.timeout = timeout

    def messages(self, digest: Digest, problems: Sequence[str] = ()) -> list[Any]:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        prompt = f"{digest.text}\n\n{INSTRUCTIONS}"
        if problems:
            prompt += "\nYour previous answer was rejected: " + "; ".join(problems[:4]) + ". Use only these facts."
        # Tags come from words the user wrote: no PII reaches the model (tastebud/pii.py).
        prompt = pii.mask(prompt, keep=digest.titles)
        return [SystemMessage(SYSTEM_PROMPT), HumanMessage(EXAMPLE_FACTS), AIMessage(EXAMPLE_ANSWER), HumanMessage(prompt)]

    def _invoke(self, model: Any, messages: list[Any]) -> Any:
        """model.invoke, bounded by self.timeout: a call still running then is
        abandoned to finish in the background (a thread cannot be killed)."""
        if not self.timeout:
            return model.invoke(messages)
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["reply"] = model.invoke(messages)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome["error"] = exc

        worker = threading.Thread(target=call, name="narrative-llm-call", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise TimeoutError(f"no answer within {self.timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def _call_many(self, prompts: list[list[Any]]) -> list[tuple[str | None, int, float, str | None]]:
        """(answer or None, output tokens, seconds, error) per prompt."""
        model = self.chat_model
        try:
            model = model.bind(max_tokens=self.max_tokens, temperature=0.2)
        except Exception:  # fake models in tests may not take kwargs
            pass

        def one(messages: list[Any]) -> tuple[str | None, int, float, str | None]:
            start = time.perf_counter()
            try:
                reply = self._invoke(model, messages)
            except Exception as exc:  # a timeout or a dead server: the template takes over
                return None, 0, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:300]
            usage = getattr(reply, "usage_metadata", None) or {}
            return str(reply.content), int(usage.get("output_tokens", 0) or 0), time.perf_counter() - start, None

        # Many requests in flight at once, so a vLLM server can batch them.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts)) or 1) as pool:
            return list(pool.map(one, prompts))

    def check(self, answer: str | None, digest: Digest) -> tuple[str, str, list[dict[str, Any]], list[str]]:
        if answer is None:
            return "", "", [], ["the model did not answer"]
        long, short, tags = parse_answer(answer)
        problems = []
        if not _valid_sentences(long):
            problems.append("LONG must be 1-5 complete sentences")
        if not _valid_sentences(short):
            problems.append("SHORT must be 1-5 complete sentences")
        problems += self.checker.violations(f"{long}\n{short}", digest)
        if pii.find(f"{long}\n{short}", keep=digest.titles):
            problems.append("never write personal data (names, numbers, addresses)")
        extra = []
        for tag, refs in tags:
            cited = [digest.liked_refs[n]["event_id"] for n in refs if n in digest.liked_refs]
            # Kept only when every citation is a real event of this user.
            if cited and len(cited) == len(refs) and 1 <= len(tag.split()) <= 3 and tag not in digest.allowed_tags \
                    and tag not in EXAMPLE_TAGS and not self.checker.is_title(tag) and not self.checker.is_genre(tag) \
                    and not any(tag in (t, _core(t)) for t in digest.allowed_titles) and not pii.find(tag):
                extra.append({"tag": tag, "evidence_event_ids": cited, "source": "llm"})
        return long, short, extra[:3], problems

    def write_many(self, profiles: Sequence[dict[str, Any]]) -> list[NarrativeResult]:
        digests = [build_digest(p) for p in profiles]
        results: list[NarrativeResult | None] = [None] * len(profiles)
        pending = list(range(len(profiles)))
        problems: dict[int, list[str]] = {i: [] for i in pending}
        tokens = {i: 0 for i in pending}
        seconds = {i: 0.0 for i in pending}
        attempts = {i: 0 for i in pending}
        unanswered: list[int] = []  # a dead or slow model gets no second call: the template now
        for attempt in (1, 2):
            if not pending:
                break
            answers = self._call_many([self.messages(digests[i], problems[i]) for i in pending])
            still = []
            for i, (answer, n_tokens, secs, error) in zip(pending, answers):
                attempts[i] = attempt
                tokens[i] += n_tokens
                seconds[i] += secs
                long, short, extra, found = self.check(answer, digests[i])
                if error:
                    problems[i] = found + [f"LLM error: {error}"]
                    unanswered.append(i)
                elif found:
                    problems[i] = found
                    still.append(i)
                else:
                    results[i] = NarrativeResult(long, short, "llm", extra, attempt, problems[i], tokens[i], seconds[i])
            pending = still
        for i in pending + unanswered:
            long, short = (pii.mask(text, keep=digests[i].titles) for text in template_narrative(profiles[i]))
            results[i] = NarrativeResult(long, short, "template", [], attempts[i], problems[i], tokens[i], seconds[i])
        return [r for r in results if r is not None]
