"""Personal data in free text: find it, mask it.

Review, search, tag and chat text can hold e-mail addresses, phone numbers, card
numbers, Chinese resident ID numbers, street addresses and names. Every boundary
where user text leaves the event store (an LLM prompt, a narrative, a profile tag,
an embedded text, a log line) passes it through `mask` first (docs/design.md#privacy).

A pattern set, not a model: Presidio needs a spaCy model the registry does not hold
(and none for Chinese). Phone numbers go through Google's libphonenumber
(`phonenumbers`, offline metadata) plus the Chinese mobile and landline shapes;
cards must pass Luhn and carry a card network's leading digit; ID numbers must pass
the GB 11643 checksum and hold a real birth date. Names are found only after a
self-introduction cue ("my name is", "我叫"), so a film talk's "Tom Hanks was
great" keeps its actor. Measured on bench/data/pii_labelled.jsonl (`bench/pii.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Iterable

KINDS = ("email", "phone", "card", "id_number", "address", "name")
# Earlier kinds win an overlap: their checks (checksums, '@') are the strictest.
_PRIORITY = ("email", "id_number", "card", "phone", "address", "name")


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


def find(text: str, keep: Iterable[str] = ()) -> list[Span]:
    """The PII spans of `text`, in order, none overlapping. A span inside one of the
    `keep` phrases (catalog titles such as "My Name Is Khan") is not PII."""
    if not text or not _MAY_HOLD_PII.search(text):
        return []
    spans = list(_find_cached(text))
    kept = [(m.start(), m.end()) for phrase in keep if phrase and len(phrase) > 3
            for m in re.finditer(re.escape(phrase), text)] if spans else []
    return [s for s in spans if not any(a <= s.start and s.end <= b for a, b in kept)]


def mask(text: str, keep: Iterable[str] = ()) -> str:
    """`text` with each PII span replaced by its kind: 'call 13812345678' -> 'call [phone]'."""
    return _replace(text, lambda span: f"[{span.kind}]", keep)


def remove(text: str) -> str:
    """`text` without its PII spans (for keyword extraction, where '[phone]' would become a tag);
    text without any comes back unchanged."""
    if not find(text):
        return text
    return re.sub(r"[ \t]{2,}", " ", _replace(text, lambda span: " ")).strip()


def _replace(text: str, token, keep: Iterable[str] = ()) -> str:
    spans = find(text, keep) if isinstance(text, str) else []
    if not spans:
        return text
    out, last = [], 0
    for span in spans:
        out.append(text[last:span.start])
        out.append(token(span))
        last = span.end
    out.append(text[last:])
    return "".join(out)


@lru_cache(maxsize=4096)
def _find_cached(text: str) -> tuple[Span, ...]:
    candidates = [*_emails(text), *_id_numbers(text), *_cards(text), *_phones(text), *_addresses(text), *_names(text)]
    candidates.sort(key=lambda s: (_PRIORITY.index(s.kind), -(s.end - s.start), s.start))
    kept: list[Span] = []
    for span in candidates:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return tuple(sorted(kept, key=lambda s: s.start))


# A digit, an '@', a Chinese house-number word or a self-introduction cue: text
# without any of them holds none of the kinds, and most text is like that.
_MAY_HOLD_PII = re.compile(
    r"[0-9@号栋]|name|call me|this is|i'm|i am|我叫|名字|我是|本人|姓名", re.IGNORECASE
)

# --- e-mail -------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9])")


def _emails(text: str) -> list[Span]:
    return [Span("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]


# --- Chinese resident ID (GB 11643-1999) --------------------------------------

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-8][0-9]{5}(?:18|19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx](?![0-9A-Za-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number_is_valid(number: str) -> bool:
    """An 18-character ID with a real birth date and the mod-11 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born > date.today():
        return False
    check = "10X98765432"[sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS)) % 11]
    return number[17].upper() == check


def _id_numbers(text: str) -> list[Span]:
    return [Span("id_number", m.start(), m.end()) for m in _ID_NUMBER.finditer(text) if id_number_is_valid(m.group())]


# --- payment cards --------------------------------------------------------------

# Digit groups joined by single spaces or dashes; not after '+' (a phone's country code),
# not glued to a letter (a code, or an ID number's check character X).
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z+])[0-9]+(?:[ \-][0-9]+)*(?![0-9A-Za-z])")


def luhn_is_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card_prefix_ok(digits: str) -> bool:
    """A card network's leading digits: 3 (Amex, JCB, Diners), 4 (Visa), 5, 6
    (Mastercard, Maestro, Discover, UnionPay), or Mastercard's 2221-2720."""
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


def _cards(text: str) -> list[Span]:
    out = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in re.finditer(r"[0-9]+", run.group())]
        # The longest stretch of whole groups that is a card: a run may carry a year or a count on either side.
        found = None
        for width in range(len(groups), 0, -1):
            for first in range(len(groups) - width + 1):
                start, end = groups[first][0], groups[first + width - 1][1]
                digits = re.sub(r"[ \-]", "", text[start:end])
                if 13 <= len(digits) <= 19 and _card_prefix_ok(digits) and luhn_is_valid(digits):
                    found = Span("card", start, end)
                    break
            if found:
                break
        if found:
            out.append(found)
    return out


# --- phone numbers ----------------------------------------------------------------

_REGIONS = ("US", "GB", "CN")  # how numbers without a +country code are read
_CN_MOBILE = re.compile(r"(?<![0-9])(?:(?:\+|00)86[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}(?![0-9])")
_CN_LANDLINE = re.compile(r"(?<![0-9])0[1-9][0-9]{1,2}-[0-9]{7,8}(?![0-9])")


# Seven digits or more in one stretch of phone punctuation: the least any number
# the matcher accepts holds. Text without one skips the (slower) matcher.
_PHONE_LIKE = re.compile(r"[0-9](?:[ \-.()/+]{0,3}[0-9]){6}")


def _phones(text: str) -> list[Span]:
    out = [Span("phone", m.start(), m.end()) for p in (_CN_MOBILE, _CN_LANDLINE) for m in p.finditer(text)]
    if not _PHONE_LIKE.search(text):
        return out
    import phonenumbers  # 60 ms to import; only texts with a long digit run pay it

    for region in _REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            out.append(Span("phone", match.start, match.end))
    return out


# --- street addresses -----------------------------------------------------------------

_EN_STREET_SUFFIX = (
    "Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|"
    "Close|Crescent|Square|Sq|Highway|Hwy|Parkway|Pkwy|Alley|Row"
)
_EN_ADDRESS = re.compile(
    rf"\b[0-9]{{1,5}}[A-Za-z]?,? (?:[A-Z][a-z]+ ){{1,3}}(?:{_EN_STREET_SUFFIX})\b\.?(?: (?:NW|NE|SW|SE|N|S|E|W)\b)?"
)
# Chinese place words: any CJK character but the little words a sentence puts before
# an address (我住在…, 寄到…, 地址是…), so the span starts at the place name.
_ZH_PLACE = r"(?:(?![我你他她的是在住到寄送于从往把被给请址])[\u4e00-\u9fff])"
_ZH_NUMBER = r"[0-9一二三四五六七八九十百零〇]+"
_ZH_ADDRESS = re.compile(
    rf"(?P<admin>(?:{_ZH_PLACE}{{2,8}}?(?:省|自治区|市|区|县|镇|乡))*)"
    rf"(?P<street>{_ZH_PLACE}{{1,10}}?(?:大道|大街|路|街|巷|胡同|弄)(?:{_ZH_NUMBER}段)?)?"
    rf"{_ZH_NUMBER}(?:号楼|号院|号|栋|幢|弄)"
    rf"(?:[0-9]+(?:栋|幢|号楼|楼|单元|层|室))*"
)


def _addresses(text: str) -> list[Span]:
    out = [Span("address", m.start(), m.end()) for m in _EN_ADDRESS.finditer(text)]
    for m in _ZH_ADDRESS.finditer(text):
        admin_parts = len(re.findall(r"省|自治区|市|区|县|镇|乡", m.group("admin")))
        if m.group("street") or admin_parts >= 2:
            out.append(Span("address", m.start(), m.end()))
    return out


# --- names after a self-introduction ----------------------------------------------------

_NAME_WORD = r"[A-Z](?:[a-z]+(?:[A-Z][a-z]+)?|['’][A-Z][a-z]+)(?:-[A-Z][a-z]+)?"
# "my name is Ana": one capitalised word is enough after a cue that only introduces a name.
_EN_NAME_STRONG = re.compile(
    rf"\b(?i:my name is|my name's|name\s*:|call me)\s+(?P<name>{_NAME_WORD}(?: {_NAME_WORD})?)"
)
# "I'm …", "this is …" also introduce titles ("I'm Not There", "This Is Spinal Tap"):
# only a first and a last name that are not common words count.
_EN_NAME_WEAK = re.compile(rf"\b(?:I'm|I’m|I am|[Tt]his is)\s+(?P<name>{_NAME_WORD} {_NAME_WORD})\b")
_COMMON_WORDS = frozenset(
    """a an the this that not no so just really very still here there back home out in on at up down off over
    sorry glad happy sad tired done sure okay ok fine new old big little good bad great going looking thinking
    watching trying getting feeling lost gone dead alive legend number one two ten all always never only also
    your you my me we us it is was be love hate mad free ready fed bored""".split()
)
# The most common Chinese surnames (compound ones first), so "我是科幻迷" is no name.
_ZH_SURNAMES = (
    "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|长孙|令狐|夏侯|"
    "[王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝]"
)
_ZH_GIVEN = r"(?:(?![的是在和了就也都要想喜看说不很把被给吗呢吧啊])[\u4e00-\u9fff])"
# Cues that only introduce a name: the name may run into the next words.
_ZH_NAME_STRONG = re.compile(rf"(?:我叫|我的名字是|我的名字叫|名字是|姓名[:：]?|本人)\s*(?P<name>(?:{_ZH_SURNAMES}){_ZH_GIVEN}{{1,2}})")
# "我是…" also says what one is (我是科幻迷, 我是成龙的粉丝): the name must end at punctuation.
_ZH_NAME_WEAK = re.compile(
    rf"我是(?:客户|会员|用户)?\s*(?P<name>(?:{_ZH_SURNAMES}){_ZH_GIVEN}{{1,2}})(?=[，。！？、,.!?;；:：\s]|$)"
)


def _names(text: str) -> list[Span]:
    out = []
    for m in _EN_NAME_STRONG.finditer(text):
        words = m.group("name").split(" ")
        if words[0].lower() in _COMMON_WORDS:
            continue
        if len(words) == 2 and words[1].lower() in _COMMON_WORDS:
            out.append(Span("name", m.start("name"), m.start("name") + len(words[0])))
        else:
            out.append(Span("name", m.start("name"), m.end("name")))
    for m in _EN_NAME_WEAK.finditer(text):
        if not any(w.lower() in _COMMON_WORDS or (len(w) > 5 and w.endswith("ing")) for w in m.group("name").split(" ")):
            out.append(Span("name", m.start("name"), m.end("name")))
    for pattern in (_ZH_NAME_STRONG, _ZH_NAME_WEAK):
        out.extend(Span("name", m.start("name"), m.end("name")) for m in pattern.finditer(text))
    return out
