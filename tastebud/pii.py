"""Personal data in free text: find it, mask it.

Review, search, tag and chat text can hold e-mail addresses, phone numbers, card
numbers, Chinese resident ID numbers, street addresses and names. Every boundary
where user text leaves the event store (an LLM prompt, a narrative, a profile tag,
an embedded text, a log line) passes it through `mask` first (docs/design.md#privacy).

A pattern set, not a model: Presidio needs a spaCy model the registry does not hold
(and none for Chinese). Phone numbers go through Google's libphonenumber
(`phonenumbers`, offline metadata) plus the Chinese mobile and landline shapes;
cards must pass Luhn and carry a card network's leading digit; ID numbers must pass
the GB 11643 checksum and hold a real birth date. Names (tastebud/pii_names.py)
are found only next to a cue: a self-introduction ("my name is", "我叫"), an
honorific ("Mr. X", "张先生"), a closing ("Thanks, Mark", "——赵晓峰"); so a film
talk's "Tom Hanks was great" keeps its actor. Log records are masked by
tastebud/logmask.py. Measured on bench/data/pii_labelled.jsonl (`bench/pii.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Iterable

from tastebud import pii_names

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
    if not text or not (_MAY_HOLD_PII.search(text) or pii_names.CUES.search(text)):
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


# A digit, an '@' or a Chinese house-number word (or one of pii_names.CUES): text
# without any of them holds none of the kinds, and most text is like that.
_MAY_HOLD_PII = re.compile(r"[0-9@号栋]")

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


# --- names (tastebud/pii_names.py) ----------------------------------------------------------


def _names(text: str) -> list[Span]:
    return [Span("name", start, end) for start, end in pii_names.find(text)]
