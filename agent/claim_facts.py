"""The facts a claim may rest on, read from this turn's tool results, and the
sentence, number and instruction helpers the claim checker uses (see claims.py)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from tastebud.agent.grounding import (
    _ARTICLES,
    _WORDS,
    UNTRUSTED_KEYS,
    _fold,
    cjk_key,
    display_title,
    norm,
)
from tastebud.retrieval.why import SAME_START_LEAD


LIKED_RATING = 3.5
# how close the question's words must be to a seed title to name it (the
# router's typo repair resolves seeds at the same ratio)
SEED_MATCH = 0.85
DISLIKED_RATING = 2.0
POSITIVE_EVENTS = frozenset({"like", "purchase", "add_to_cart"})
NEGATIVE_EVENTS = frozenset({"dislike", "skip"})
SEEN_EVENTS = frozenset({"view", "click", "rating", "review", "purchase", "like", "dislike", "add_to_cart"})
NOT_NUMBERS = frozenset({"request_id", "event_id", "session_id"})  # ids: hex, not facts
SYSTEM_ECHO_WORDS = 8
DATA_ECHO_WORDS = 5

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = _WORDS  # the tokenizer's own word pattern
_YEAR_AFTER = re.compile(r"\s*\((?:19|20)\d{2}\)")

# ------------------------------------------------------------------ sentences

_TERMINATOR = re.compile(r"[.!?…]+[\"'”’)\]*_]*(?=\s)|[。！？]+[”’」』)]*|\n+")
_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "st", "jr", "sr", "vs", "etc", "eg", "ie", "aka", "no", "vol",
                            "pt", "ft", "mt", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
                            "sep", "sept", "oct", "nov", "dec"})


def split_sentences(text: str, protect: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int, bool]]:
    """(start, end, closed) spans covering `text`: a span ends after its
    terminator (". ", "!", "。", a newline); `closed` is False for an
    unterminated tail. No split inside a protected span (a title such as
    "Who Framed Roger Rabbit? (1988)"), after an abbreviation ("Dr.",
    "a.k.a."), after a list number ("1."), or before a "(1988)" year."""
    spans: list[tuple[int, int, bool]] = []
    start = 0
    for m in _TERMINATOR.finditer(text):
        at, end = m.start(), m.end()
        if any(s < at < e for s, e in protect):
            continue
        if m.group()[0] == ".":
            before = text[start:at]
            last = re.split(r"\s", before.strip())[-1] if before.strip() else ""
            if last.replace(".", "").lower() in _ABBREVIATIONS or (last.isdigit() and before.strip() == last):
                continue
        if m.group()[0] in ".!?" and _YEAR_AFTER.match(text, end):
            continue
        if text[start:end].strip():
            spans.append((start, end, True))
            start = end
    if text[start:].strip():
        spans.append((start, len(text), False))
    elif spans:  # trailing whitespace belongs to the last sentence
        s, _, closed = spans[-1]
        spans[-1] = (s, len(text), closed)
    return spans


def is_english(sentence: str) -> bool:
    """English phrase rules apply unless the sentence is mostly CJK."""
    return len(_CJK.findall(sentence)) < 2


# ------------------------------------------------------------------ facts

_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"  # 1,234 · 4.5 · 0.14
                     r"(\s?%|\s?percent\b)?(?:st|nd|rd|th)?(?![A-Za-z0-9_])")
_VERSION = re.compile(r"(?<![A-Za-z0-9_.])v(\d+)(?![A-Za-z0-9_])")
_STARS = r"(?:/\s*(?:5|10)(?!\d|\.\d)|\s*out of (?:5|10|five|ten)\b|[- ]?stars?\b|-star\b)"
_SPELLED = {"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "half": 0.5}
_RATING = re.compile(r"(?<![A-Za-z0-9_.])(\d+(?:\.\d+)?|one|two|three|four|five)\s*" + _STARS, re.I)
_DENOMINATOR = re.compile(r"(?:/\s*(?:5|10)(?!\d|\.\d)|\bout of (?:5|10)\b)")


def _numbers_in(text: str) -> list[float]:
    out = []
    for m in re.finditer(r"\d+(?:,\d{3})*(?:\.\d+)?", text):
        try:
            out.append(float(m.group().replace(",", "")))
        except ValueError:
            pass
    return out


def _title_keys(title: str) -> set[str]:
    """The normalised title and, for "Run Lola Run (Lola rennt) (1998)" or
    "Seven (a.k.a. Se7en) (1995)", the part before the parenthesis."""
    keys = {norm(title), cjk_key(title)}  # a Chinese title is matched by its characters
    head = display_title(title).split(" (", 1)[0]
    if head and head != title:
        keys.add(norm(head))
    keys.discard("")
    return keys


@dataclass
class Facts:
    """What this turn's tool results hold, in the forms the rules need."""

    titles: set[str] = field(default_factory=set)  # every title a result names (normalised)
    raw_titles: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)  # any key -> canonical normalised title
    listed: set[str] = field(default_factory=set)  # offered items: recommendations, matches, logged lists
    subject: set[str] = field(default_factory=set)  # the explained item(s)
    positive: set[str] = field(default_factory=set)
    negative: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    reviewed: set[str] = field(default_factory=set)
    ratings: dict[str, set[float]] = field(default_factory=dict)
    ranks: dict[str, set[int]] = field(default_factory=dict)  # title -> its rank(s) in a list or explanation
    numbers: set[float] = field(default_factory=set)
    categories: dict[str, set[str]] = field(default_factory=dict)  # title -> its categories and tags (lowercase)
    co_occurrence: bool = False
    same_start: bool = False  # what people who started alike went on to do (retrieval/same_start.py)
    popularity: bool = False
    user_words: bool = False  # the user's own words (search/review text, a request text)
    reviews: bool = False
    trusted_text: str = ""
    trusted_raw: str = ""  # the same, unfolded (Chinese text folds to nothing)
    instructions: list[str] = field(default_factory=list)  # instruction-like untrusted text
    seeds: set[str] = field(default_factory=set)  # raw titles the user asked for "something like"; never recommended

    @property
    def rating_values(self) -> set[float]:
        return {v for vs in self.ratings.values() for v in vs}

    def canonical(self, key: str) -> str:
        return self.aliases.get(key, key)

    def show(self, key: str) -> str:
        """A normalised title as the results write it, for messages."""
        return next((display_title(t) for t in sorted(self.raw_titles) if norm(t) == key), key)

    @classmethod
    def from_results(cls, results: Iterable[Any]) -> "Facts":
        f = cls()
        trusted: list[str] = []
        untrusted: list[str] = []
        results = [r for r in results if r is not None]
        for r in results:
            f._walk(r, None, trusted, untrusted)
        for raw in f.raw_titles:
            canon = norm(raw)
            for k in _title_keys(raw):
                f.aliases.setdefault(k, canon)
        # "You rated Fight Club (1999) 5/5, ..." in the service's reason sentences
        for s in trusted:
            if "/5" not in s:
                continue
            for raw in f.raw_titles:
                for m in re.finditer(re.escape(raw) + r"\s*\(?(\d+(?:\.\d+)?)\s*/\s*5\b", s):
                    f._rate(norm(raw), float(m.group(1)))
            if re.search(r"\bpeople who liked\b", s):
                f.co_occurrence = True
        for s in trusted:
            if s.startswith("Popular:"):
                f.popularity = True
            if s.startswith("Fits your request"):
                f.user_words = True
        f.trusted_text = " " + " ".join(_fold(s) for s in trusted) + " "
        f.trusted_raw = "\n".join(trusted)
        f.instructions = [s for s in untrusted if instruction_like(s)]
        f.titles = {norm(t) for t in f.raw_titles} - {""}
        return f

    def alias_seeds_as_asked(self, question: str) -> None:
        """"something like Forest Gump": the question's misspelt form of a seed is
        an alias of the seed, so an answer calling "Forest Gump" a recommendation is
        caught like one calling "Forrest Gump (1994)" one."""
        if not self.seeds or not question:
            return
        asked = [_fold(m.group()) for m in _WORD.finditer(question)]
        for raw in self.seeds:
            canon = norm(raw)
            # as people write it: "The Matrix", not "Matrix, The (1999)"
            target = " ".join(w for w in norm(display_title(raw).rsplit(" (", 1)[0]).split()
                              if w not in _ARTICLES) or canon
            n = target.count(" ") + 1
            for size in {n - 1, n, n + 1} - {0}:
                for i in range(len(asked) - size + 1):
                    span = " ".join(asked[i : i + size])
                    if span not in self.aliases and difflib.SequenceMatcher(None, span, target).ratio() >= SEED_MATCH:
                        self.aliases[span] = canon

    def _rate(self, key: str, value: float) -> None:
        self.ratings.setdefault(key, set()).add(float(value))
        if value >= LIKED_RATING:
            self.positive.add(key)
        if value <= DISLIKED_RATING:
            self.negative.add(key)
        self.seen.add(key)

    def _walk(self, v: Any, key: str | None, trusted: list[str], untrusted: list[str]) -> None:
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, (int, float)):
            if key not in NOT_NUMBERS:
                self.numbers.add(abs(float(v)))
            return
        if isinstance(v, str):
            if key in UNTRUSTED_KEYS:
                untrusted.append(v)
            else:
                trusted.append(v)
                if key in ("why", "sentences") and v.startswith(SAME_START_LEAD):  # the service's own sentence
                    self.same_start = True
                if key not in NOT_NUMBERS:
                    self.numbers.update(_numbers_in(v))
            return
        if isinstance(v, (list, tuple)):
            self.numbers.add(float(len(v)))
            for x in v:
                self._walk(x, key, trusted, untrusted)
            return
        if not isinstance(v, Mapping):
            return
        title = v.get("title") if isinstance(v.get("title"), str) else None
        if title:
            self.raw_titles.add(title)
        t = norm(title) if title else ""
        if t and isinstance(v.get("categories"), (list, tuple)):
            self.categories.setdefault(t, set()).update(
                str(c).lower() for c in list(v["categories"]) + list(v.get("tags") or []) if isinstance(c, str))
        if t and isinstance(v.get("rank"), int) and not isinstance(v.get("rank"), bool):
            self.ranks.setdefault(t, set()).add(int(v["rank"]))
        for k, x in v.items():
            if k == "items" and isinstance(x, list):
                self.listed |= {norm(i["title"]) for i in x if isinstance(i, Mapping) and isinstance(i.get("title"), str)}
            elif k == "liked_items" and isinstance(x, list):
                self.positive |= {norm(i["title"]) for i in x if isinstance(i, Mapping) and i.get("title")}
                self.seen |= {norm(i["title"]) for i in x if isinstance(i, Mapping) and i.get("title")}
            elif k == "disliked_items" and isinstance(x, list):
                self.negative |= {norm(i["title"]) for i in x if isinstance(i, Mapping) and i.get("title")}
                self.seen |= {norm(i["title"]) for i in x if isinstance(i, Mapping) and i.get("title")}
            elif k in ("because_you_liked", "co_occurrence") and isinstance(x, list) and x:
                self.co_occurrence = True
                for e in x:
                    if isinstance(e, Mapping) and isinstance(e.get("title"), str):
                        et = norm(e["title"])
                        self.positive.add(et)
                        self.seen.add(et)
                        if e.get("type") == "rating" and isinstance(e.get("value"), (int, float)):
                            self._rate(et, float(e["value"]))
            elif k == "same_start" and isinstance(x, list):  # the user's own first items: seen, not necessarily liked
                self.same_start = self.same_start or bool(x)
                self.seen |= {norm(e["title"]) for e in x if isinstance(e, Mapping) and isinstance(e.get("title"), str)}
            elif k == "seed_item" and isinstance(x, Mapping) and isinstance(x.get("title"), str):
                self.seeds.add(x["title"])
            elif k == "events" and isinstance(x, list):
                for e in x:
                    if isinstance(e, Mapping):
                        self._event(e)
            elif k == "parts" and isinstance(x, Mapping):
                if _positive(x.get("co_occurrence")):
                    self.co_occurrence = True
                if _positive(x.get("popularity")):
                    self.popularity = True
                if _positive(x.get("same_start")):
                    self.same_start = True
            elif k == "popularity" and (_positive(x) or (isinstance(x, Mapping) and _positive(x.get("positive_interactions")))):
                self.popularity = True
            elif k == "params" and isinstance(x, Mapping) and x.get("intent"):
                self.user_words = True
            elif k == "intent" and isinstance(x, Mapping) and x.get("text"):
                self.user_words = True
            self._walk(x, k, trusted, untrusted)
        if t and "sentences" in v and "rank" in v:  # an explanation: this is the item it is about
            self.subject.add(t)
        if t and "kind" in v and "event_id" in v:  # feedback recorded this turn
            (self.positive if v["kind"] == "like" else self.negative).add(t)

    def _event(self, e: Mapping[str, Any]) -> None:
        kind = str(e.get("type") or "")
        text = e.get("text")
        if isinstance(text, str) and text.strip():
            self.user_words = True
        if kind == "review":
            self.reviews = True
        title = e.get("title") if isinstance(e.get("title"), str) else None
        if not title:
            return
        t = norm(title)
        if kind in SEEN_EVENTS:
            self.seen.add(t)
        if kind == "review":
            self.reviewed.add(t)
        if kind in POSITIVE_EVENTS:
            self.positive.add(t)
        if kind in NEGATIVE_EVENTS:
            self.negative.add(t)
        if kind == "rating" and isinstance(e.get("value"), (int, float)):
            self._rate(t, float(e["value"]))


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


# ------------------------------------------------------------------ instructions

_INSTRUCTION = [
    re.compile(r"\b(?:ignore|forget|disregard|override)\s+(?:all\s+|any\s+|of\s+)?(?:the\s+|your\s+|my\s+|these\s+|those\s+)?"
               r"(?:previous|prior|above|earlier|preceding|former|system|original|old)?\s*"
               r"(?:instructions?|rules|prompts?|directions|guidelines|guardrails)\b", re.I),
    re.compile(r"\byou\s+are\s+(?:now\s+)?(?:an?\s+|the\s+)?(?:operator|admin(?:istrator)?|root|developer|superuser|"
               r"system|support staff)\b", re.I),
    re.compile(r"\b(?:act|behave|respond)\s+as\s+(?:an?\s+|the\s+)?(?:operator|admin(?:istrator)?|root|developer|system)\b", re.I),
    re.compile(r"(?:^|[\n.!?]\s*)\s*(?:system|developer)\s*:", re.I),
    re.compile(r"\bSYSTEM\s*:"),
    re.compile(r"\b(?:new|updated|real|actual|secret|hidden)\s+instructions?\s*:", re.I),
    re.compile(r"\bsystem\s+prompt\b", re.I),
    re.compile(r"<\s*/?\s*(?:data|system|instructions?|im_start|im_end)\s*>|\[/?(?:INST|SYS)\]|<\|[a-z_]+\|>", re.I),
    re.compile(r"\b(?:jailbreak|developer mode|DAN mode)\b", re.I),
    re.compile(r"忽略(?:之前|以上|前面|先前|上面|所有|全部)?的?(?:所有|全部)?(?:指令|指示|规则|提示)"  # ignore ... instructions
               r"|你现在是(?:操作员|管理员|系统|开发者)|系统提示"),  # you are operator now; system prompt
]


def instruction_like(text: str) -> bool:
    return any(p.search(text or "") for p in _INSTRUCTION)


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[\u3400-\u9fff]|[^\W\u3400-\u9fff]+", (text or "").lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _without_data(prompt: str) -> str:
    return re.sub(r"<data>.*?</data>", " ", prompt or "", flags=re.S)


# ------------------------------------------------------------------ English phrase rules
