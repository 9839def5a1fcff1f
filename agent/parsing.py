"""What the router (tastebud.agent.router) reads in a message without the LLM:
its intent, as the nearest of a handful of example utterances per intent by the
sentence embedder, and its arguments by patterns: ordinals, counts, user
mentions, the categories wanted or not, and the content words.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tastebud import pii
from tastebud.agent.grounding import tokens

# intent -> (tool, examples). Five-ish plain utterances each, as people say them.
INTENTS: dict[str, tuple[str | None, list[str]]] = {
    "recommend": ("recommend", [
        "recommend me something to watch tonight", "what should I watch next?", "give me some movie suggestions",
        "suggest something like Toy Story", "I want something funny to watch", "any good films for me?",
    ]),
    "explain": ("explain", [
        "why was this recommended to me?", "why did you suggest that one?", "explain why item 318 was recommended",
        "what made you pick this film for me?", "why was it in my list?",
    ]),
    "profile": ("get_profile", [
        "what do you know about my tastes?", "show me my profile", "what are my interests?",
        "describe my taste in movies", "what kind of movies do I like?",
    ]),
    "history": ("get_history", [
        "what have I watched recently?", "show my history", "list my recent ratings", "what did I rate last?",
        "show the latest events of this user",
    ]),
    "search": ("search_items", [
        "find movies about space travel", "search for heist films", "is there a film about dinosaurs?",
        "look up movies with robots", "which films are set in Paris?",
    ]),
    "like": ("record_feedback", [
        "I loved it", "that was great", "I really liked the first one", "thumbs up for that movie",
        "add it to my favourites", "record that I like this movie",
    ]),
    "dislike": ("record_feedback", [
        "I'm tired of horror", "not interested in that one", "I hated that movie", "don't show me this again",
        "no more romantic comedies please",
    ]),
    "log": ("recommendation_log", [
        "what was recommended to this user last week?", "show the last recommendation list",
        "which items were shown to the user?", "show the recommendation log", "what did we recommend before?",
    ]),
    "refresh": ("refresh_profiles", [
        "refresh the profiles", "update this user's profile now", "rebuild stale profiles",
        "recompute all profiles", "refresh profile for user 5",
    ]),
    "status": ("status", [
        "system status", "how many users and items are there?", "is everything healthy?",
        "show the store statistics", "how many events have been ingested?",
    ]),
    "help": (None, [
        "what can you do?", "help", "how do I use this?", "hello", "who are you?",
    ]),
    "out_of_scope": (None, [
        "what's the weather like tomorrow?", "tell me a joke", "who won the game last night?",
        "what's the latest news?", "how are you today?", "what is the capital of France?", "write me a poem",
    ]),
}
MIN_SIMILARITY = 0.3

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "last": -1, "top": 1}
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
            "ten": 10, "a couple of": 2, "a few": 3}
_ORDINAL = re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)\b"
                      r"|\b(\d{1,2})(?:st|nd|rd|th)\b|#\s*(\d{1,2})\b|\b(?:number|no\.?)\s*(\d{1,2})\b", re.I)
_USER = re.compile(r"\b(?:user|customer|member)\s*(?:id\s*)?#?\s*([A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)\b", re.I)
# "users 3, 8 and 11"
_USERS = re.compile(r"\b(?:users|customers|members)\s*(?:ids?\s*)?((?:\d+\s*(?:,\s*(?:and\s+)?|\band\b|&)\s*)+\d+)\b", re.I)
# a count before the thing counted, with up to two describing words between: "3 sci-fi movies", "two war films"
_COUNT = re.compile(r"\b(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)\s+(?:[\w-]+\s+){0,2}?"
                    r"(?:movies|films|items|things|picks|suggestions|recommendations|titles|ones|options|"
                    r"comedies|dramas|thrillers|westerns|musicals|documentaries|cartoons|romcoms|classics|"
                    r"[a-z-]+ (?:movies|films|flicks)|flicks)\b", re.I)
_TOP = re.compile(r"\btop\s+(\d{1,2})\b", re.I)
# "say five of them", "maybe six of those"
_OF_THEM = re.compile(r"\b(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)\s+of\s+(?:them|those)\b", re.I)
_NEGATORS = ("not", "no", "without", "can't stand", "cannot stand", "cant stand", "can't bear", "loathe", "detest", "except", "excluding", "avoid", "skip", "tired of", "sick of", "hate", "no more",
             "anything but", "other than", "instead of", "dislike", "don't", "dont", "never", "no longer", "done with",
             "bored of", "bored with", "fed up with", "stop")

_CATEGORY_SYNONYMS = {
    "scary": "Horror", "romantic": "Romance", "romcom": "Romance", "romcoms": "Romance", "animated": "Animation",
    "cartoon": "Animation", "cartoons": "Animation", "kids": "Children", "kid": "Children", "family": "Children",
    "scifi": "Sci-Fi", "sci fi": "Sci-Fi", "science fiction": "Sci-Fi", "noir": "Film-Noir", "docs": "Documentary",
    "documentaries": "Documentary", "comedies": "Comedy", "musicals": "Musical", "war films": "War",
}

# words that carry no "what kind of thing" meaning in a request
_BOILER = set("""
a about after again all also an and any anything are as at be been before best but can could did do does doing for
from get give go good got great have having help i i'd i'll i'm im in into is it it's its just kind let lets like
look looking me might more most movie movies film films my need new next now of on one ones or other please
recommend recommendation recommendations right see shall should show so some something somethin stuff suggest
suggestion suggestions than that the them then there these thing things this tonight to today up us very want
wanna watch watching we what whats what's which with would you your yours find search searching titles title
item items pick picks options tell list few couple maybe perhaps evening weekend night
""".split())


class IntentMatcher:
    """Nearest example utterance by cosine with the sentence embedder."""

    _cache: dict[int, tuple[list[str], np.ndarray]] = {}

    def __init__(self, embedder: Any, intents: dict[str, tuple[str | None, list[str]]] = INTENTS):
        self.embedder = embedder
        self.intents = intents
        key = id(embedder) ^ hash(tuple((k, tuple(v[1])) for k, v in intents.items()))
        if key not in self._cache:
            labels = [name for name, (_, ex) in intents.items() for _ in ex]
            texts = [e for _, (_, ex) in intents.items() for e in ex]
            self._cache[key] = (labels, np.asarray(embedder.encode(texts), dtype=np.float32))
        self.labels, self.matrix = self._cache[key]

    def scores(self, text: str) -> dict[str, float]:
        vec = np.asarray(self.embedder.encode([pii.mask(text)])[0], dtype=np.float32)  # no PII is embedded
        sims = self.matrix @ vec
        out: dict[str, float] = {}
        for label, s in zip(self.labels, sims):
            out[label] = max(out.get(label, -1.0), float(s))
        return out

    def best(self, text: str, allowed: set[str] | None = None) -> tuple[str, float]:
        scores = self.scores(text)
        ranked = sorted(((s, k) for k, s in scores.items() if allowed is None or k in allowed), reverse=True)
        return (ranked[0][1], ranked[0][0]) if ranked else ("help", 0.0)


# the words that pick a tool or an argument, for typo repair ("recomend me a comdy")
_KEYWORDS = sorted(set("""
recommend recommendation recommendations suggest suggestion suggestions profile history search explain refresh
status comedy comedies horror action adventure animation children documentary drama fantasy musical mystery
romance romantic thriller western crime science fiction movies films something interests favourites watched
recently rated ratings similar instead another something anything
""".split()))


def correct_typos(text: str) -> str:
    """Words of five letters or more that are close (difflib ratio 0.85) to a routing
    keyword are read as that keyword; everything else is left as written."""
    import difflib

    def fix(m: "re.Match[str]") -> str:
        word = m.group(0)
        low = word.lower()
        if len(low) < 5 or low in _KEYWORDS or low in _BOILER:
            return word
        got = difflib.get_close_matches(low, _KEYWORDS, n=1, cutoff=0.85)
        return got[0] if got else word

    return re.sub(r"[A-Za-z]+", fix, text)


def ordinal(text: str) -> int | None:
    m = _ORDINAL.search(text)
    if not m:
        return None
    if m.group(1):
        return _ORDINALS[m.group(1).lower()]
    return int(next(g for g in m.groups()[1:] if g))


def count(text: str) -> int | None:
    m = _COUNT.search(text) or _TOP.search(text) or _OF_THEM.search(text)
    if not m:
        return None
    raw = m.group(1).lower()
    n = _NUMBERS.get(raw) or (int(raw) if raw.isdigit() else None)
    return max(1, min(20, n)) if n else None


def user_mentions(text: str) -> list[str]:
    found = [m.group(1) for m in _USER.finditer(text)]
    for m in _USERS.finditer(text):
        found += re.findall(r"\d+", m.group(1))
    return list(dict.fromkeys(found))


def residual(text: str, extra: set[str] = frozenset()) -> str:
    """The content words of a message, in order (what a request is about)."""
    words = [w for w in tokens(text) if w.lower() not in _BOILER and w.lower() not in extra and not w.isdigit()]
    return " ".join(words)


def categories_in(text: str, categories: list[str]) -> tuple[list[str], list[str]]:
    """(wanted, unwanted) categories named in the text; unwanted when a negator
    ("not", "no more", "tired of", ...) comes within a few words before."""
    low = " " + " ".join(tokens(text.lower().replace("-", " "))) + " "
    found: list[tuple[int, str]] = []
    variants: dict[str, str] = {}
    for c in categories:
        base = " ".join(tokens(c.lower().replace("-", " ")))
        if not base or base.startswith("no genres"):
            continue
        for v in {base, base + "s", base.rstrip("y") + "ies" if base.endswith("y") else base + "s", base.replace(" ", "")}:
            variants[v] = c
    for k, v in _CATEGORY_SYNONYMS.items():
        if v in categories:
            variants[k] = v
    for v, c in sorted(variants.items(), key=lambda kv: -len(kv[0])):
        pos = low.find(f" {v} ")
        if pos >= 0 and all(c != f for _, f in found):
            found.append((pos, c))
    wanted, unwanted = [], []
    for pos, c in sorted(found):
        before = low[max(0, pos - 40):pos]
        if any(f" {n} " in before + " " for n in _NEGATORS):
            unwanted.append(c)
        else:
            wanted.append(c)
    return wanted, unwanted
