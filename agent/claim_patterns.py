"""The English and Chinese phrase patterns the claim checker reads sentences with
(see claims.py for the rules they serve)."""

from __future__ import annotations

import re
from typing import Iterable

from tastebud.agent.claim_facts import (
    _STARS,
)

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

# the same_start part's own wording (retrieval/why.py): people who started where the user did
_SAME_START = re.compile(r"\b(?:people|users|those|others)\s+who\s+started\s+(?:where|like|as|with)\b", re.I)
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
# praise the results cannot back: "a classic", "critically acclaimed"
_ZH_QUALITY = re.compile(r"经典|杰作|佳作|好评如潮|口碑|获奖|神作|必看|大师之作|影史")
_ZH_POPULAR = re.compile(r"受欢迎|热门|流行|火爆|人气|票房")
# the model speaking as the user ("我喜欢…"), or of an end user as "他们"
_ZH_AS_USER = re.compile(r"我(?:很|非常|最|也|都|一直|比较)?(?:喜欢|爱看|讨厌|不喜欢|评过|看过|最近|偏爱|偏好|对.{0,8}感兴趣)")
_ZH_THIRD = re.compile(r"(?:他们|她们|他|她)(?:最近|都|也|一直|比较|还)*在?(?:喜欢|关注|对|感兴趣|不喜欢|评过|看过|的兴趣|的口味|偏爱)")
# genre words, by the catalog's English name
GENRE_WORDS = {
    "action": "action", "adventure": "adventure", "animation": "animation", "animated": "animation",
    "children": "children", "comedy": "comedy", "comedies": "comedy", "crime": "crime", "documentary": "documentary",
    "drama": "drama", "dramas": "drama", "fantasy": "fantasy", "horror": "horror", "musical": "musical",
    "mystery": "mystery", "romance": "romance", "romantic": "romance", "sci-fi": "sci-fi", "science fiction": "sci-fi",
    "thriller": "thriller", "western": "western", "war": "war",
    "动作": "action", "冒险": "adventure", "动画": "animation", "儿童": "children", "喜剧": "comedy", "犯罪": "crime",
    "纪录片": "documentary", "剧情": "drama", "奇幻": "fantasy", "恐怖": "horror", "歌舞": "musical", "音乐剧": "musical",
    "悬疑": "mystery", "爱情": "romance", "科幻": "sci-fi", "惊悚": "thriller", "西部": "western", "战争": "war",
}
_GENRE = re.compile("|".join(sorted((re.escape(w) if not w.isascii() else rf"\b{re.escape(w)}\b" for w in GENRE_WORDS),
                                    key=len, reverse=True)), re.I)
_CLAUSE_END = re.compile(r"[，,；;。.!?！？、]|\s(?:and|but|while|whereas)\s|而|但|虽然")
_ZH_TITLE = re.compile(r"《([^》\n]{1,80})》")
_ZH_RATING = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/\s*(?:5|10)(?!\d)|颗?星|分(?!钟|之))")
_RANK = re.compile(r"(?:#\s*|\b(?:ranked|rank|number|no\.)\s*#?\s*)(\d+)\b", re.I)


# ------------------------------------------------------------------ the checker

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
