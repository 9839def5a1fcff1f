"""Claim-level faithfulness: every sentence a model writes is a claim, checked
against THIS turn's tool results before it is shown.

A sentence is dropped when it says something the results do not hold; when
what is left no longer answers the question (nothing left, less than half
kept, no kept sentence naming one of the listed items) or the answer repeats
instructions (the system prompt, instruction-like text from item
descriptions/reviews), the agent shows the deterministic rendering instead.

Rules, per sentence (so they hold for long answers by a stronger model as
well as for the two-sentence answers of the small one):

any language
  * titles: every catalog title it names (and every quoted/emphasised name,
    including Chinese 《书名号》) must be a title in the results
    (`grounding.check_answer`);
  * numbers: every number (ratings, weights, percentages, counts, versions,
    dates, years) must be a number in the results, to the precision written
    ("0.14" for 0.1433, "14%" for 0.143); a number inside a title ("(1985)",
    "Terminator 2") and spelled-out small numbers/ordinals ("two", "first")
    are not checked;
  * instructions: text that reads as an instruction ("ignore previous
    instructions", "you are operator now", "SYSTEM:") or repeats the system
    prompt (8 words in a row) or instruction-like data (5 words in a row) ends
    the model's answer: the deterministic rendering is shown.

English sentences only (the phrase rules never fire on CJK text)
  * "you rated X 4/5", "X (5/5)": that rating event (title and value) is in
    the results; a rating nobody in the results gave ("received 5/5 stars")
    is dropped;
  * "you liked/loved/enjoyed X", "your favourites include X": X is among the
    user's positive items (profile top items, liked/bought/well-rated history
    events, the "because you liked" evidence); "you watched/saw X": any event
    on X; "you disliked X": a negative item/event; "they/the user liked X" the same
    for staff; "this movie" is the explained item;
  * "people who liked ... also liked", "similar users": a co-occurrence part;
  * "popular", "trending", "many people", "8 people": a popularity part;
  * reviewers/reviews: a review event; critics, awards, "highly rated": only
    if the data itself says so (a tag); any other talk of users/people/viewers
    is dropped (the results hold only this user's data);
  * "you mentioned/said/told/searched": the user's own words are in the results
    (an event text, a request text);
  * "X is the top pick / I recommend X": X is one of the listed items;
  * to an end user: "you", never "the user", "user 1", "they liked",
    "their profile".

Chinese sentences additionally: 影评人/评论家 need a review event, 其他用户/很多人
need co-occurrence or popularity evidence, 你提到/你说过 need the user's words,
and to an end user 该用户/用户1 is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from tastebud.agent.grounding import (
    UNTRUSTED_KEYS,
    Grounding,
    TitleIndex,
    _fold,
    check_answer,
    display_title,
    norm,
)

LIKED_RATING = 3.5
DISLIKED_RATING = 2.0
POSITIVE_EVENTS = frozenset({"like", "purchase", "add_to_cart"})
NEGATIVE_EVENTS = frozenset({"dislike", "skip"})
SEEN_EVENTS = frozenset({"view", "click", "rating", "review", "purchase", "like", "dislike", "add_to_cart"})
NOT_NUMBERS = frozenset({"request_id", "event_id", "session_id"})  # ids: hex, not facts
SYSTEM_ECHO_WORDS = 8
DATA_ECHO_WORDS = 5

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"[0-9A-Za-zÀ-ÿ]+(?:['’][A-Za-zÀ-ÿ]+)?")
_ARTICLES = frozenset({"the", "a", "an"})
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
    keys = {norm(title)}
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
    co_occurrence: bool = False
    popularity: bool = False
    user_words: bool = False  # the user's own words (search/review text, a request text)
    reviews: bool = False
    trusted_text: str = ""
    instructions: list[str] = field(default_factory=list)  # instruction-like untrusted text

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
        f.instructions = [s for s in untrusted if instruction_like(s)]
        f.titles = {norm(t) for t in f.raw_titles} - {""}
        return f

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
            elif k == "events" and isinstance(x, list):
                for e in x:
                    if isinstance(e, Mapping):
                        self._event(e)
            elif k == "parts" and isinstance(x, Mapping):
                if _positive(x.get("co_occurrence")):
                    self.co_occurrence = True
                if _positive(x.get("popularity")):
                    self.popularity = True
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

_SUBJECT = r"(?P<subj>\b(?:you|(?:the|this) user|user\s+#?(?=[\w-]*\d)[\w-]+|they|he|she))\b"
_AUX = (r"(?:(?:'ve|’ve|'re|’re)|\s+(?:have|has|had|did|do|does|are|were|also|really|both|all|previously|already|recently|"
        r"once|especially|particularly|truly|clearly|obviously|absolutely|definitely|highly|consistently|often|"
        r"always|even|just|mostly|strongly|greatly|seem\s+to|seemed\s+to|apparently|evidently))*")
_NEG = r"(?P<neg>\s*n['’]t|\s+not|\s+never)?"
_VERBS = {
    "positive": r"liked|loved|enjoyed|adored|appreciated|like|love|enjoy|adore|likes|loves|enjoys|prefer|prefers|preferred|"
                r"favou?red|were a fan of|are a fan of|a fan of|big fans? of|fans? of",
    "seen": r"watched|saw|seen|viewed|bought|purchased|rented|streamed",
    "rated": r"rated|gave|scored|rate|rates|gives",
    "reviewed": r"reviewed|reviews|wrote a review of",
    "negative": r"disliked|hated|dislike|dislikes|hate|hates|skipped|avoided|avoid|avoids",
    "words": r"mentioned|said|told|wrote|written|noted|stated|expressed|shared|indicated|searched|"
             r"talked about|brought up|described",
}
_VERB_RE = {cls: re.compile(f"(?:{pat})", re.I) for cls, pat in _VERBS.items()}


def _verb_class(verb: str) -> str:
    return next((cls for cls, rx in _VERB_RE.items() if rx.fullmatch(verb)), "seen")


_CLAIM = re.compile(_SUBJECT + _AUX + _NEG + _AUX + r"\s+(?P<verb>" + "|".join(_VERBS.values()) + r")\b", re.I)
_NOT_A_CLAIM_BEFORE = re.compile(r"\b(?:if|whether|unless|did|do|does|would|will|could|should|might|may|can|"
                                 r"recommend|suggest|hope|let|help)\s*$", re.I)
_FAVOURITE_AFTER = re.compile(r"\byour\s+(?:\w+\s+){0,2}?(?:favou?rites?|top[- ]rated|highest[- ]rated|best[- ]loved|"
                              r"most[- ]loved)\b(?:\s+(?:movies|films|titles))?"
                              r"(?:\s*(?:include|includes|including|are|is|like|such as|:|,|—|-))?", re.I)
_FAVOURITE_BEFORE = re.compile(r"^\s*,?\s*(?:is|are|was|were)\s+(?:one\s+|some\s+|among\s+|two\s+)?(?:of\s+)?your\s+"
                               r"(?:\w+\s+)?(?:favou?rites?|top[- ]rated|most[- ]loved)", re.I)
_YOUR_LOVE = re.compile(r"\byour\s+(?:love|fondness|liking|enjoyment|appreciation|passion)\s+(?:of|for)\b", re.I)
_RELATIVE = re.compile(r"[\s,(]*(?:which|that|whom)\s*$", re.I)
_THIS = re.compile(r"^\s+(?:this|that)(?:\s+(?:movie|film|title|one|pick|recommendation|item))?\b(?!\s+\w+\s+(?:was|is)\b)", re.I)
_GAP_BREAK = re.compile(r"\b(?:because|so|since|which|that|but|while|when|it|this|these|those|them|they|he|she|you|your|"
                        r"was|is|were|are|recommended|people|users|viewers|fans|others|and then|as well|also liked)\b", re.I)
_RATED = r"(?:\(\s*\d+(?:\.\d+)?\s*" + _STARS + r"\s*\)|\d+(?:\.\d+)?\s*" + _STARS + r"|\(\s*[a-z_]{1,12}\s*\))"
_LIST_SEP = re.compile(r"^\s*(?:" + _RATED + r")?\s*,?\s*(?:and|or|&|as well as|plus|along with)?\s*$", re.I)
_LIST_TAIL = re.compile(r"^\s*(?:" + _RATED + r")?\s*(?:[,.;:!?)\]—–]|\s-\s|and\b|or\b|&|$)", re.I)

_CO_OCCURRENCE = re.compile(
    r"\b(?:people|users|viewers|fans|others|audiences?|members|folks|customers|moviegoers|everyone)\s+(?:who|that|with)\b"
    r"|\bthose\s+who\b"
    r"|\bsimilar\s+(?:users|people|viewers|tastes?|audiences?|members|customers|profiles?)\b"
    r"|\b(?:users|people|viewers|fans|others|moviegoers)\s+(?:like|similar\s+to)\s+you\b"
    r"|\bfans\s+of\b|\blike-minded\b|\b(?:also|often|frequently)\s+(?:liked|enjoyed|watched|loved|rated|bought|picked)\s+by\b"
    r"|\bco-?occurrence\b|\bpeople\s+(?:also|often)\s+(?:liked|watched|enjoyed)\b", re.I)
_POPULARITY = re.compile(
    r"\bpopular(?:ity)?\b|\btrending\b|\bwidely\s+(?:watched|liked|loved|seen|enjoyed|popular)\b|\bcrowd[- ]pleas\w*"
    r"|\bmany\s+(?:people|users|viewers|fans|others|moviegoers)\b|\b(?:lots|a\s+lot)\s+of\s+(?:people|users|viewers|fans)\b"
    r"|\b\d[\d,]*\s+(?:other\s+)?(?:people|users|viewers|fans|others|members)\b|\bmost[- ](?:watched|viewed|liked|popular)\b"
    r"|\bwell[- ](?:liked|loved)\b|\bbeloved\b|\bfan[- ]favou?rite\b", re.I)
_REVIEW = re.compile(r"\b(?:reviewers?|reviews|reviewed|reviewing)\b"
                     r"|\b(?:a|the|their|his|her|your|one|user's)\s+review\b(?!\s+of\s+(?:your|these|the|this))", re.I)
_REPUTATION = re.compile(
    r"\b(?:critics?|critically|acclaimed|award[- ]winning|awards?|oscars?|academy award|highly[- ]rated|top[- ]rated|"
    r"best[- ]rated|well[- ]reviewed|cult classic|imdb|rotten tomatoes|metacritic|box office|"
    r"received\s+(?:\w+\s+){0,2}(?:ratings?|reviews|praise)|rave reviews|average rating)\b", re.I)
_OTHERS = re.compile(
    r"\b(?:other\s+users|users|other\s+people|people|others|viewers|audiences?|moviegoers|fans|everyone|everybody|"
    r"the\s+public|the\s+community|the\s+crowd|cinephiles|folks|other\s+customers|customers|reviewers?|critics?)\b", re.I)
_OTHERS_OK = re.compile(r"\bamong\s+others\b|\bpeople\s+like\s+you\b", re.I)
_RATING_ATTRIBUTED = re.compile(
    r"\b(?:you|the user|this user|user\s+#?\w+|they|he|she)(?:'ve|’ve|\s+(?:have|has|had|also|both|all|previously|once|did))*"
    r"\s+(?:rated|gave|scored|rate|give)\b|\byour\s+(?:own\s+)?ratings?\b|\bby\s+you\b|\bfrom\s+you\b", re.I)
_ROLE = re.compile(
    r"\b(?:the|this|that)\s+(?:user|customer|member|subscriber|reviewer)(?![\w-])|\buser\s+#?\d+\b"
    r"|\b(?:their|his|her)\s+(?:\w+\s+){0,2}?(?:tastes?|profile|history|ratings?|favou?rites?|interests?|preferences?|"
    r"watchlist|viewing|likes|dislikes|activity|list|requests?|mood)\b"
    r"|\b(?:they|he|she)\b" + _AUX + r"(?:\s*n['’]t|\s+not|\s+never)?" + _AUX
    + r"\s+(?:liked|loved|enjoyed|like|love|enjoy|likes|loves|enjoys|watched|saw|seen|rated|gave|prefer|prefers|preferred|"
      r"tend|tends|seem|seems|mentioned|said|searched|disliked|hated|gravitate|gravitates|"
      r"would enjoy|might enjoy|will enjoy|may enjoy)\b", re.I)
_PEOPLE_SUBJECT = re.compile(r"\b(?:people|users|viewers|fans|others|audiences?|moviegoers|critics|reviewers)\b", re.I)
_RECOMMENDED_AFTER = re.compile(
    r"\b(?:I(?:'d|’d| would)?\s+(?:recommend|suggest)|recommend(?:ed|ations?)?(?:\s+for\s+you)?(?:\s+(?:is|are|include|includes))?\s*:"
    r"|top\s+(?:\w+\s+)?(?:picks?|recommendations?|titles?|choices?|matches)(?:\s+for\s+you)?(?:\s+(?:is|are|include|includes|would\s+be))?\s*:?"
    r"|(?:^|[.:;,]\s*)(?:try|watch|check\s+out)|you\s+(?:should|could|might|may|would)\s+(?:try|watch|enjoy|like|love|check\s+out))(?=\s)", re.I)
_RECOMMENDED_BEFORE = re.compile(
    r"^\s*,?\s*(?:is|are|was|were|came|comes|ranks?|ranked)\s+(?:also\s+)?(?:both\s+)?(?:the\s+|your\s+|my\s+|a\s+|an\s+)?"
    r"(?:top|first|second|third|#\d+|number\s+\w+|best|highest[- ]ranked|recommended|suggested|picked|"
    r"(?:top\s+|good\s+|great\s+|strong\s+)?(?:pick|match|recommendation|suggestion)s?)\b", re.I)

# Chinese (and other CJK text): a few phrase rules beyond titles and numbers
_ZH_CRITICS = re.compile(r"影评人|评论家|影评|评论者|评论员|专业评分|豆瓣|烂番茄")
_ZH_PEOPLE = re.compile(r"其他用户|别的用户|其他观众|很多人|许多人|大家都|观众们|网友|用户们|用户评分|用户给|其他人|相似的用户|类似的用户|喜欢.{0,12}的人也")
_ZH_WORDS = re.compile(r"你(?:之前|曾经|刚才|刚刚|已经|也)?(?:提到|说过|说到|告诉|写过|表示过|搜索过)")
_ZH_ROLE = re.compile(r"该用户|这位用户|此用户|这个用户|用户\s*\d+")
_ZH_TITLE = re.compile(r"《([^》\n]{1,80})》")
_ZH_RATING = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/\s*(?:5|10)(?!\d)|颗?星|分(?!钟|之))")
_RANK = re.compile(r"(?:#\s*|\b(?:ranked|rank|number|no\.)\s*#?\s*)(\d+)\b", re.I)


# ------------------------------------------------------------------ the checker

@dataclass
class ClaimReport:
    """What the claim check made of one answer."""

    sentences: list[str]
    dropped: list[dict[str, str]]
    kept_text: str
    ungrounded: list[str]
    fallback: str | None = None  # why the deterministic rendering is shown instead

    @property
    def keep(self) -> bool:
        return self.fallback is None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checked": len(self.sentences), "dropped": list(self.dropped)}
        if self.fallback:
            out["fallback"] = self.fallback
        return out


class ClaimChecker:
    """Checks a model's answer sentence by sentence against this turn's tool
    results (`results`: the list, or a callable giving it, since the
    tool-calling driver adds results while the model streams).

    `audience`: "user" (an end user: the answer must say "you") or "staff".
    `instructions`: the system prompt(s) the model was given (data blocks are
    ignored), which the answer must not repeat."""

    def __init__(self, results: Sequence[Any] | Callable[[], Sequence[Any]], index: TitleIndex | None,
                 question: str = "", audience: str = "user", instructions: str | Sequence[str] = ""):
        self._results = results
        self.index = index
        self.question = question or ""
        self.audience = audience
        prompts = [instructions] if isinstance(instructions, str) else list(instructions)
        self._prompt_grams: set[tuple[str, ...]] = set()
        for p in prompts:
            self._prompt_grams |= _grams(_without_data(p), SYSTEM_ECHO_WORDS)
        self._cache: tuple[int, list[Any], Facts] | None = None

    # ------------------------------------------------------------ inputs
    @property
    def results(self) -> list[Any]:
        r = self._results() if callable(self._results) else self._results
        return [x for x in r if x is not None]

    @property
    def facts(self) -> Facts:
        results = self.results
        key = sum(id(r) for r in results) + len(results)
        if self._cache is None or self._cache[0] != key or len(self._cache[1]) != len(results):
            self._cache = (key, results, Facts.from_results(results))
        return self._cache[2]

    # ------------------------------------------------------------ titles in text
    def title_spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, normalised title) of the titles a text names: catalog
        titles of 2+ words, and result titles (by any of their forms) of any
        length, each starting with a capital or digit; a following "(1985)"
        is part of the span."""
        facts = self.facts
        catalog = self.index.by_norm if self.index is not None else {}
        max_words = max([self.index.max_words if self.index is not None else 1]
                        + [k.count(" ") + 1 for k in facts.aliases]) + 1
        words = [(m.group().replace("’", "'"), m.start(), m.end()) for m in _WORD.finditer(text)]
        folded = [_fold(w) for w, _, _ in words]
        out: list[tuple[int, int, str]] = []
        i = 0
        while i < len(words):
            found = None
            for n in range(min(max_words, len(words) - i), 0, -1):
                run = folded[i : i + n]
                skip = 1 if n > 1 and run[0] in _ARTICLES else 0
                key = " ".join(run[skip:])
                if not key:
                    continue
                in_results = key in facts.aliases
                if not in_results and not (key in catalog and n - skip >= 2):
                    continue
                first = words[i + skip][0]
                if not (first[:1].isupper() or first[:1].isdigit()):
                    continue
                found = (i, i + n, facts.canonical(key))
                break
            if found:
                start, end = words[found[0]][1], words[found[1] - 1][2]
                m = _YEAR_AFTER.match(text, end)
                if m:
                    end = m.end()
                elif text[end : end + 1] in "?!" and end + 1 <= len(text):
                    # "Who Framed Roger Rabbit?", "Airplane!": punctuation that is part of the title
                    if any(r.startswith(text[start : end + 1]) for r in facts.raw_titles):
                        end += 1
                out.append((start, end, found[2]))
                i = found[1]
            else:
                i += 1
        return out

    def split(self, text: str) -> list[tuple[int, int, bool]]:
        return split_sentences(text, [(s, e) for s, e, _ in self.title_spans(text)])

    # ------------------------------------------------------------ one sentence
    def check_sentence(self, sentence: str) -> Grounding:
        """The sentence's problems: .grounded is False when it must be dropped;
        .ungrounded the titles outside the results; .reasons all problems."""
        sentence = sentence.strip()
        if not sentence:
            return Grounding(True, [])
        facts = self.facts
        reasons: list[str] = []
        fatal = False
        # instructions, whatever the language
        if instruction_like(sentence):
            reasons.append("instruction-like text")
            fatal = True
        if self._prompt_grams and _grams(sentence, SYSTEM_ECHO_WORDS) & self._prompt_grams:
            reasons.append("repeats the system prompt")
            fatal = True
        if facts.instructions and self._echoes_data_instructions(sentence, facts):
            reasons.append("repeats instruction-like text from the data")
            fatal = True
        # titles
        titles = check_answer(sentence, self.results, self.index, self.question)
        ungrounded = list(titles.ungrounded)
        for m in _ZH_TITLE.finditer(sentence):
            name = m.group(1).strip()
            key = norm(name)
            if not (key and (key in facts.aliases or any(f" {key} " in f" {t} " for t in facts.titles))):
                if name not in ungrounded:
                    ungrounded.append(name)
        if ungrounded:
            reasons.append("title not in the results: " + ", ".join(ungrounded))
        spans = self.title_spans(sentence)
        # numbers
        reasons += self._numbers(sentence, spans, facts)
        if is_english(sentence):
            reasons += self._english(sentence, spans, facts)
        else:
            reasons += self._chinese(sentence, facts)
        g = Grounding(not reasons, ungrounded)
        g.reasons = _unique(reasons)
        g.fatal = fatal
        return g

    def _echoes_data_instructions(self, sentence: str, facts: Facts) -> bool:
        grams = _grams(sentence, DATA_ECHO_WORDS)
        return bool(grams) and any(grams & _grams(s, DATA_ECHO_WORDS) for s in facts.instructions)

    def _numbers(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        inside = lambda at: any(s <= at < e for s, e, _ in spans)  # noqa: E731
        bad: list[str] = []
        masked = _DENOMINATOR.sub(lambda m: " " * len(m.group()), sentence)
        for m in _NUMBER.finditer(masked):
            if inside(m.start()):
                continue
            whole, decimals, percent = m.group(1), m.group(2), m.group(3)
            if not _number_in(float(whole.replace(",", "") + (f".{decimals}" if decimals else "")),
                              len(decimals or ""), bool(percent), facts.numbers):
                bad.append(m.group().strip())
        for m in _VERSION.finditer(sentence):
            if not inside(m.start()) and float(m.group(1)) not in facts.numbers:
                bad.append(m.group())
        return [f"number not in the results: {', '.join(_unique(bad))}"] if bad else []

    # ------------------------------------------------------------ English rules
    def _english(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        reasons: list[str] = []
        reasons += self._ratings(sentence, spans, facts)
        reasons += self._ranks(sentence, spans, facts)
        claimed, governed = self._who_did_what(sentence, spans, facts)
        reasons += claimed
        reasons += self._others(sentence, facts)
        reasons += self._recommended(sentence, spans, facts, governed)
        if self.audience == "user":
            m = _ROLE.search(sentence)
            if m and not (m.group().lower().startswith(("they", "their", "he", "she", "his", "her"))
                          and _PEOPLE_SUBJECT.search(sentence[: m.start()])):
                reasons.append(f"speaks of the user in the third person ({m.group().strip()!r}); say \"you\"")
        return reasons

    def _ratings(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        reasons = []
        for m in _RATING.finditer(sentence):
            raw = m.group(1).lower()
            value = _SPELLED.get(raw) if raw in _SPELLED else float(raw)
            if any(s <= m.start() < e for s, e, _ in spans):
                continue
            title = _adjacent_title(sentence, m.start(), m.end(), spans)
            said = m.group().strip()
            if title is not None:
                if value not in facts.ratings.get(title, set()):
                    reasons.append(f"rating not in the results: {facts.show(title)} {said}")
            elif not _RATING_ATTRIBUTED.search(sentence):
                reasons.append(f"a rating nobody in the results gave: {said}")
            elif value not in facts.rating_values:
                reasons.append(f"rating not in the results: {said}")
        return reasons

    def _ranks(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        """"Aliens was #8": the rank a result gives that title."""
        reasons = []
        for m in _RANK.finditer(sentence):
            if any(s <= m.start() < e for s, e, _ in spans):
                continue
            title = _adjacent_title(sentence, m.start(), m.end(), spans)
            if title is not None and title in facts.ranks and int(m.group(1)) not in facts.ranks[title]:
                reasons.append(f"rank not in the results: {facts.show(title)} {m.group().strip()}")
        return reasons

    def _who_did_what(self, sentence: str, spans: list[tuple[int, int, str]],
                      facts: Facts) -> tuple[list[str], set[str]]:
        """(problems, titles the sentence says the user or other people acted on)."""
        reasons: list[str] = []
        governed: set[str] = set()
        for m in _CO_OCCURRENCE.finditer(sentence):
            after = re.match(r"\s+(?:\w+\s+){0,2}?(?:liked|loved|enjoyed|watched|rated|bought)\b", sentence[m.end():])
            if after:
                governed |= set(_list_after(sentence, m.end() + after.end(), spans))
        for m in _CLAIM.finditer(sentence):
            subj = m.group("subj").lower()
            if _NOT_A_CLAIM_BEFORE.search(sentence[: m.start()]):
                continue
            if subj in ("they", "he", "she") and _PEOPLE_SUBJECT.search(sentence[: m.start()]):
                continue  # "people who liked X ... they": not the user
            aux = m.group(0)[len(m.group("subj")) : m.start("verb") - m.start()].lower()
            if re.search(r"\b(?:are|were)\b|['’]re", aux) and not re.search(r"fan", m.group("verb"), re.I):
                continue  # "you are watching", "they are liked by": not a past act of the user
            verb = m.group("verb").lower()
            kind = _verb_class(verb)
            negated = bool(m.group("neg"))
            who = "you" if subj == "you" else subj
            if kind == "words":
                if not negated and not facts.user_words:
                    reasons.append(f"\"{who} {verb}\": the results hold nothing the user said")
                continue
            objects = self._objects(sentence, m.end(), m.start(), spans, facts)
            governed |= set(objects)
            if negated:
                if kind == "positive":
                    kind = "negative"
                else:
                    continue
            for key in objects:
                ok = {"positive": facts.positive, "negative": facts.negative, "seen": facts.seen | facts.positive,
                      "rated": set(facts.ratings), "reviewed": facts.reviewed}[kind]
                if key not in ok:
                    said = f"{who} {'did not ' if negated else ''}{verb}"
                    reasons.append(f"\"{said} {facts.show(key)}\": not in the user's events in the results")
        for m in list(_FAVOURITE_AFTER.finditer(sentence)) + list(_YOUR_LOVE.finditer(sentence)):
            for key in _list_after(sentence, m.end(), spans, max_gap_words=3):
                governed.add(key)
                if key not in facts.positive:
                    reasons.append(f"\"your favourite {facts.show(key)}\": not among the user's liked items in the results")
        for s, e, key in spans:
            if _FAVOURITE_BEFORE.match(sentence[e:]):
                governed.add(key)
                if key not in facts.positive:
                    reasons.append(f"\"{facts.show(key)} is your favourite\": not among the user's liked items in the results")
        return reasons, governed

    def _objects(self, sentence: str, at: int, subject_at: int, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        """The titles a verb at `at` governs: the list right after it, "this
        movie" (the explained item), or the title before "which you ..."."""
        found = _list_after(sentence, at, spans)
        if found:
            return found
        if _THIS.match(sentence[at:]):
            return sorted(facts.subject)
        before = sentence[:subject_at]
        rel = _RELATIVE.search(before)
        if rel:
            for s, e, key in reversed(spans):
                if e <= rel.start() + 1 and not sentence[e : rel.start()].strip(" ,("):
                    return [key]
        return []

    def _others(self, sentence: str, facts: Facts) -> list[str]:
        reasons = []
        covered: list[tuple[int, int]] = []
        for m in _CO_OCCURRENCE.finditer(sentence):
            covered.append(m.span())
            if not facts.co_occurrence:
                reasons.append(f"\"{m.group().strip()}\": the results hold no co-occurrence evidence")
        for m in _POPULARITY.finditer(sentence):
            covered.append(m.span())
            if not facts.popularity:
                reasons.append(f"\"{m.group().strip()}\": the results hold no popularity evidence")
        for m in _REPUTATION.finditer(sentence):
            covered.append(m.span())
            word = _fold(m.group()).strip()
            if f" {word}" not in facts.trusted_text:
                reasons.append(f"\"{m.group().strip()}\": no critics, awards or public ratings in the results")
        for m in _REVIEW.finditer(sentence):
            covered.append(m.span())
            if not facts.reviews:
                reasons.append(f"\"{m.group()}\": the results hold no review")
        for m in _OTHERS_OK.finditer(sentence):
            covered.append(m.span())
        for m in _OTHERS.finditer(sentence):
            if any(s <= m.start() < e for s, e in covered):
                continue
            if re.match(r"review|critic", m.group(), re.I):
                continue  # judged above
            reasons.append(f"\"{m.group()}\": the results hold no data of other users")
        return reasons

    def _recommended(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts,
                     governed: set[str]) -> list[str]:
        """"A and B are the top picks", "I recommend A": A and B are listed items
        (titles the user or similar people acted on are not what is recommended)."""
        offered = facts.listed | facts.subject
        if not offered:
            return []
        named: list[str] = []
        for m in _RECOMMENDED_AFTER.finditer(sentence):
            named += _list_after(sentence, m.end(), spans, max_gap_words=3)
        for k, (s, e, key) in enumerate(spans):
            if _RECOMMENDED_BEFORE.match(sentence[e:]):
                named.append(key)
                # "A and B are the top picks": the whole list before the verb
                j = k
                while j > 0 and _LIST_SEP.match(sentence[spans[j - 1][1] : spans[j][0]]) \
                        and spans[j - 1][2] not in governed:
                    j -= 1
                    named.append(spans[j][2])
        bad = [k for k in _unique(named) if k not in offered and k not in governed]
        return [f"said to be recommended but not in the list: {', '.join(facts.show(k) for k in bad)}"] if bad else []

    def _chinese(self, sentence: str, facts: Facts) -> list[str]:
        reasons = []
        for m in _ZH_RATING.finditer(sentence):
            if "你" not in sentence and "您" not in sentence:
                reasons.append(f"a rating nobody in the results gave: {m.group()}")
            elif float(m.group(1)) not in facts.rating_values:
                reasons.append(f"rating not in the results: {m.group()}")
        m = _ZH_CRITICS.search(sentence)
        if m and not facts.reviews:
            reasons.append(f"\"{m.group()}\": no reviews or critics in the results")
        m = _ZH_PEOPLE.search(sentence)
        if m and not (facts.co_occurrence or facts.popularity):
            reasons.append(f"\"{m.group()}\": the results hold no data of other users")
        m = _ZH_WORDS.search(sentence)
        if m and not facts.user_words:
            reasons.append(f"\"{m.group()}\": the results hold nothing the user said")
        if self.audience == "user":
            m = _ZH_ROLE.search(sentence)
            if m:
                reasons.append(f"speaks of the user in the third person ({m.group()!r}); say \"you\"")
        return reasons

    # ------------------------------------------------------------ a whole answer
    def review(self, answer: str) -> ClaimReport:
        """Check every sentence; keep the supported ones, or say why the
        deterministic rendering must be shown instead."""
        text = answer or ""
        facts = self.facts
        kept: list[str] = []
        sentences: list[str] = []
        dropped: list[dict[str, str]] = []
        ungrounded: list[str] = []
        fatal: str | None = None
        kept_titles: set[str] = set()
        for s, e, _ in self.split(text):
            piece = text[s:e]
            sentence = piece.strip()
            if not sentence:
                continue
            if not re.search(r"\w", sentence):  # a lone "-" or "**": nothing claimed
                kept.append(piece)
                continue
            sentences.append(sentence)
            g = self.check_sentence(sentence)
            ungrounded += [u for u in g.ungrounded if u not in ungrounded]
            if g.grounded:
                kept.append(piece)
                kept_titles |= {key for _, _, key in self.title_spans(sentence)}
            else:
                dropped.append({"sentence": sentence, "reason": "; ".join(g.reasons)})
                if getattr(g, "fatal", False) and fatal is None:
                    fatal = g.reasons[0]
        kept_text = "".join(kept).strip()
        report = ClaimReport(sentences, dropped, kept_text, ungrounded)
        # across sentence boundaries, too
        if fatal is None and self._prompt_grams and _grams(text, SYSTEM_ECHO_WORDS) & self._prompt_grams:
            fatal = "repeats the system prompt"
        if fatal is None and facts.instructions and self._echoes_data_instructions(text, facts):
            fatal = "repeats instruction-like text from the data"
        n_kept = len(sentences) - len(dropped)
        if fatal:
            report.fallback = fatal
        elif not sentences:
            report.fallback = "no answer"
        elif dropped and n_kept == 0:
            report.fallback = "no supported sentence left"
        elif dropped and 2 * n_kept < len(sentences):
            report.fallback = "less than half of the sentences are supported"
        elif dropped and facts.listed and not (kept_titles & facts.listed):
            report.fallback = "no kept sentence names a listed item"
        return report


# ------------------------------------------------------------------ helpers

def _unique(xs: Iterable[str]) -> list[str]:
    out: list[str] = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def _number_in(value: float, decimals: int, percent: bool, data: set[float]) -> bool:
    candidates = [(value, decimals)]
    if percent:
        candidates.append((value / 100.0, decimals + 2))
    for v, dec in candidates:
        tol = 1e-9 if dec == 0 else 0.5 * 10 ** (-dec) + 1e-9
        if any(abs(d - v) <= tol for d in data):
            return True
    return False


def _adjacent_title(sentence: str, start: int, end: int, spans: list[tuple[int, int, str]]) -> str | None:
    """The title a rating belongs to: right before it ("Fight Club (1999) 5/5",
    "Fight Club (5/5)", "gave Fight Club 5 stars") or right after it
    ("5/5 for Fight Club")."""
    for s, e, key in reversed(spans):
        if e <= start and re.fullmatch(r"[\s(:,\-–—]*(?:(?:a|an|the|with|at|of|as|was|were|is|got|rated|gave|given|scored|"
                                       r"received|earned|has|had|solid|perfect|full)\s+){0,3}[\s(]*",
                                       sentence[e:start]):
            return key
        if e <= start:
            break
    for s, e, key in spans:
        if s >= end and re.fullmatch(r"\)?\s*(?:to|for|on)\s+", sentence[end:s]):
            return key
    return None


def _list_after(sentence: str, at: int, spans: list[tuple[int, int, str]], max_gap_words: int = 4) -> list[str]:
    """The titles listed right after position `at`: a few filler words ("films
    like", "both"), then titles joined by commas/"and", ratings allowed between."""
    after = [(s, e, k) for s, e, k in spans if s >= at]
    if not after:
        return []
    s0, e0, k0 = after[0]
    gap = sentence[at:s0]
    words = re.findall(r"[\w'’-]+", gap)
    if len(words) > max_gap_words or _GAP_BREAK.search(gap) or re.search(r"[.;:!?]", gap.replace("...", "")):
        if not re.fullmatch(r"\s*(?:[:,—-]\s*)?", gap):
            return []
    out = [k0]
    prev_end = e0
    for s, e, k in after[1:]:
        # "A, B and C" is a list; "since you liked A, B was recommended" is not
        if not _LIST_SEP.match(sentence[prev_end:s]) or not _LIST_TAIL.match(sentence[e:]):
            break
        out.append(k)
        prev_end = e
    return out
