"""Narratives: an LLM writes them from a compact digest; code checks them.

The digest lists likes and dislikes separately and labelled (the small model
mixes them up otherwise). A narrative may name only titles and genres that are
in the digest; a disliked title may appear only in a sentence that says so.
A failed check earns one regeneration with the problem spelled out, then a
deterministic template narrative (`narrative_source: template`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

DIGEST_TAGS = 4
DIGEST_LIKED = 4
DIGEST_DISLIKED = 3
MAX_TOKENS = 160

# Measured on ten ml-latest-small users with the embedded 0.5B model: the model
# recites whatever it is shown (every genre, every "rated 5/5", every year), so
# the digest shows few genres, titles without years or ratings, and the
# instructions ask for one or two genres and one title, about "this viewer".
SYSTEM_PROMPT = (
    "You write short taste profiles of movie viewers for a recommender. "
    "Use only the facts given. Never add titles, genres, ratings or numbers that are not given. "
    "Liked and disliked titles are separate lists: never call a disliked title a favourite."
)
INSTRUCTIONS = (
    "Write exactly three lines:\n"
    "LONG: two sentences about this viewer's lasting taste. Name one or two genres from Lasting interests "
    "and one title from Liked.\n"
    "SHORT: one sentence about what this viewer watches lately, naming one genre from Lately.\n"
    "TAGS: up to 3 short descriptive tags for the liked titles, each with the [numbers] of the titles, e.g. heist [1,2]"
)
# Tags the instructions show as examples: an echo of them is not a proposal.
EXAMPLE_TAGS = {"heist"}

_NEGATIVE_CUES = re.compile(
    r"(?:\b(?:dislike[sd]?|disliking|avoid\w*|not|never|low\w*|poor\w*|hate[sd]?|unimpress\w*|negative\w*|"
    r"rated (?:0|1|2)(?:\.5)?|less|fading|bor(?:ed|ing)|weak\w*|critic\w*)\b|n't\b|\b[0-2](?:\.5)?/5)",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[\"“]([^\"”\n]{1,80})[\"”]")  # short ones kept so quotes pair up
_YEAR_TITLE = re.compile(r"([A-Z][\w'’:,.&!\- ]{1,60}?) \((?:19|20)\d{2}\)")
_SENTENCE = re.compile(r"(?<!\b[a-z]\.[a-z]\.)(?<!\b[A-Z][a-z]\.)(?<=[.!?])\s+")
_RATING_CLAIM = re.compile(r"\b(\d(?:\.\d)?)\s*(?:/\s*5|out of 5|stars?)\b", re.IGNORECASE)
_TAG_ITEM = re.compile(r"([A-Za-z][\w' \-]{1,40}?)\s*\[([\d,\s]+)\]")


def display_title(title: str) -> str:
    """'Matrix, The (1999)' -> 'The Matrix': how the digest shows titles and how people write them."""
    t = re.sub(r"\s*\((?:[^)]*\d{4}[^)]*|[^)]*)\)\s*$", "", title.strip())
    t = re.sub(r"\s*\([^)]*\)", "", t)  # alternate-language titles
    m = re.match(r"^(.*), (The|A|An|Les|La|Le|Il|El|Das|Der|Die)$", t)
    if m:
        t = f"{m.group(2)} {m.group(1)}"
    return re.sub(r"\s+", " ", t).strip()


def normalise_title(title: str) -> str:
    """'Matrix, The (1999)' -> 'the matrix': the form titles are compared in."""
    return display_title(title).lower()


_ARTICLE = re.compile(r"^(?:the|a|an|les|la|le|il|el|das|der|die) ")


def _core(name: str) -> str:
    """A normalised title without its leading article: 'the big lebowski' -> 'big lebowski'."""
    return _ARTICLE.sub("", name)


def _mentions(name: str, text: str) -> bool:
    """Whether lowered `text` names the normalised title `name` (or it without its article)."""
    core = _core(name)
    probe = core if len(core) >= 4 else name
    return re.search(rf"(?<!\w){re.escape(probe)}(?!\w)", text) is not None


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
    seen: set[str] = set()
    lines = ["Lasting interests: " + (", ".join(t["tag"] for t in long_tags) or "none yet")]
    liked = []
    for item in profile["long_term"]["top_items"][:DIGEST_LIKED]:
        n = len(refs) + 1
        refs[n] = item
        seen.add(item["item_id"])
        liked.append(f"[{n}] {display_title(item['title'])}")
    lines.append("Liked: " + ("; ".join(liked) or "none"))
    disliked_items = profile["dislikes"]["items"][:DIGEST_DISLIKED]
    lines.append("Disliked: " + ("; ".join(display_title(i["title"]) for i in disliked_items) or "none"))
    disliked_tags = profile["dislikes"]["tags"][:3]
    if disliked_tags:
        lines.append("Avoided: " + ", ".join(t["tag"] for t in disliked_tags))
    lines.append("Lately: " + (", ".join(t["tag"] for t in short_tags) or "nothing"))
    recent = []
    for item in profile["short_term"]["top_items"][:3]:
        if item["item_id"] in seen:
            continue
        n = len(refs) + 1
        refs[n] = item
        seen.add(item["item_id"])
        recent.append(f"[{n}] {display_title(item['title'])}")
    if recent:
        lines.append("Liked lately: " + "; ".join(recent))
    drift = profile["drift"]
    if drift["emerging"] or drift["fading"]:
        lines.append(f"Growing: {', '.join(drift['emerging'][:3]) or 'none'}. Fading: {', '.join(drift['fading'][:3]) or 'none'}.")
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

    @staticmethod
    def _mask(text: str, digest: Digest) -> str:
        """The text without the digest's titles (and their 'Star Wars'-style prefixes), so the
        words inside a title the model may name are not read as genres or other titles."""
        forms: set[str] = set()
        for name in digest.allowed_titles:
            forms |= {name, _core(name)}
            head = re.split(r":| - ", name)[0].strip()
            if len(head) >= 4:
                forms |= {head, _core(head)}
        for form in sorted((f for f in forms if len(f) >= 3), key=len, reverse=True):
            text = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", " ", text, flags=re.IGNORECASE)
        return text

    def violations(self, text: str, digest: Digest) -> list[str]:
        problems: list[str] = []
        masked = self._mask(text, digest)
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
        for sentence in _SENTENCE.split(text):
            s = sentence.lower()
            for claim in _RATING_CLAIM.findall(sentence):
                # A rating may be stated only next to a title that got exactly that rating.
                if not any(_mentions(t, s) and abs(r - float(claim)) < 1e-6 for t, r in digest.ratings.items()):
                    problems.append(f"rating {claim}/5 not tied to a title with that rating")
            for title in digest.disliked_titles:
                if title and _mentions(title, s) and not _NEGATIVE_CUES.search(sentence):
                    problems.append(f"disliked title {title!r} presented as liked")
        return sorted(set(problems))


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

    def __init__(self, chat_model: Any, checker: GroundingChecker, concurrency: int = 4, max_tokens: int = MAX_TOKENS):
        self.chat_model = chat_model
        self.checker = checker
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens

    def messages(self, digest: Digest, problems: Sequence[str] = ()) -> list[Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        prompt = f"Facts about this viewer:\n{digest.text}\n\n{INSTRUCTIONS}"
        if problems:
            prompt += "\nYour previous answer was rejected: " + "; ".join(problems[:4]) + ". Use only the digest."
        return [SystemMessage(SYSTEM_PROMPT), HumanMessage(prompt)]

    def _call_many(self, prompts: list[list[Any]]) -> list[tuple[str | None, int, float]]:
        model = self.chat_model
        try:
            model = model.bind(max_tokens=self.max_tokens, temperature=0.2)
        except Exception:  # fake models in tests may not take kwargs
            pass

        def one(messages: list[Any]) -> tuple[str | None, int, float]:
            start = time.perf_counter()
            try:
                reply = model.invoke(messages)
            except Exception:  # a timeout or a dead server: the template takes over
                return None, 0, time.perf_counter() - start
            usage = getattr(reply, "usage_metadata", None) or {}
            return str(reply.content), int(usage.get("output_tokens", 0) or 0), time.perf_counter() - start

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
        extra = []
        for tag, refs in tags:
            cited = [digest.liked_refs[n]["event_id"] for n in refs if n in digest.liked_refs]
            # Kept only when every citation is a real event of this user.
            if cited and len(cited) == len(refs) and 1 <= len(tag.split()) <= 3 and tag not in digest.allowed_tags \
                    and tag not in EXAMPLE_TAGS:
                extra.append({"tag": tag, "evidence_event_ids": cited, "source": "llm"})
        return long, short, extra[:3], problems

    def write_many(self, profiles: Sequence[dict[str, Any]]) -> list[NarrativeResult]:
        digests = [build_digest(p) for p in profiles]
        results: list[NarrativeResult | None] = [None] * len(profiles)
        pending = list(range(len(profiles)))
        problems: dict[int, list[str]] = {i: [] for i in pending}
        tokens = {i: 0 for i in pending}
        seconds = {i: 0.0 for i in pending}
        for attempt in (1, 2):
            if not pending:
                break
            answers = self._call_many([self.messages(digests[i], problems[i]) for i in pending])
            still = []
            for i, (answer, n_tokens, secs) in zip(pending, answers):
                tokens[i] += n_tokens
                seconds[i] += secs
                long, short, extra, found = self.check(answer, digests[i])
                if found:
                    problems[i] = found
                    still.append(i)
                else:
                    results[i] = NarrativeResult(long, short, "llm", extra, attempt, problems[i], tokens[i], seconds[i])
            pending = still
        for i in pending:
            long, short = template_narrative(profiles[i])
            results[i] = NarrativeResult(long, short, "template", [], 2, problems[i], tokens[i], seconds[i])
        return [r for r in results if r is not None]
