"""Events and catalog items: the shapes tastebud stores, and the row validation
every entry point (files, stdin, the API) shares.

Validation is hand-rolled rather than a pydantic model per row because it runs
100k+ times per ingest; the rules are few and each failure must name its reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from math import isfinite as _isfinite
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Mapping

from tastebud import pii as _pii
from tastebud.timefmt import iso_or_none

EVENT_TYPES = frozenset(
    {"view", "click", "add_to_cart", "purchase", "rating", "review", "like", "dislike", "skip", "search", "tag"}
)
ITEMLESS_TYPES = frozenset({"search"})
# A like/dislike without an item is a stated preference: its text names a category
# or tag ("Horror"), e.g. "not interested in horror any more".
PREFERENCE_TYPES = frozenset({"like", "dislike"})
NEGATIVE_TYPES = frozenset({"dislike", "skip"})
_TEXT_TYPES = frozenset({"review", "search", "tag"})
MAX_ID_LENGTH = 64  # the width of the id columns (VARCHAR(64) on PostgreSQL)
MAX_VALUE = 1e9  # a non-rating value (a price, a quantity) is bounded too


class RowError(ValueError):
    """One row is unusable; the message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class ValueRules:
    """The bounds every accepted value lies in, shared by files, stdin and the API.

    Timestamps lie between the Unix epoch and now + `future_skew_ms` (clock skew
    between a sender and us); ratings on the catalog's scale; texts are strings
    of at most `max_text_chars`. One out-of-range row used to capture a user's
    mean rating or recency anchor, and a year-9999 timestamp broke every read.
    """

    rating_min: float = 0.5
    rating_max: float = 5.0
    future_skew_ms: int = 86_400_000
    max_text_chars: int = 10_000
    store_raw_text: bool = True  # false: event text is stored with its PII masked (tastebud/pii.py)

    @classmethod
    def from_settings(cls, settings: Any) -> "ValueRules":
        return cls(rating_min=settings.rating_min, rating_max=settings.rating_max,
                   future_skew_ms=int(settings.future_skew_s * 1000), max_text_chars=settings.max_text_chars,
                   store_raw_text=getattr(settings, "store_raw_text", True))

    def latest_ms(self) -> int:
        """The latest timestamp accepted now."""
        return int(time.time() * 1000) + self.future_skew_ms

    def check_ts(self, ts: int, raw: Any) -> int:
        if ts < 0:
            raise RowError(f"timestamp before 1970 {_short(raw)}")
        if ts > self.latest_ms():
            raise RowError(f"timestamp in the future {_short(raw)}")
        return ts

    def check_rating(self, value: float, raw: Any) -> float:
        if not (self.rating_min <= value <= self.rating_max):
            raise RowError(f"rating {_short(raw)} outside the scale {self.rating_min:g}-{self.rating_max:g}")
        return value

    def check_text(self, text: str | None, what: str = "text") -> str | None:
        if text is not None and len(text) > self.max_text_chars:
            raise RowError(f"{what} longer than {self.max_text_chars} characters")
        return text


DEFAULT_RULES = ValueRules()


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    item_id: str | None
    type: str
    ts: int  # epoch milliseconds, UTC
    value: float | None = None
    text: str | None = None

    @property
    def timestamp(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.ts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "type": self.type,
            "timestamp": iso(self.ts),
            "value": self.value,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    title: str | None = None
    description: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    updated_at: int | None = None  # epoch ms
    is_stub: bool = False

    def text_for_embedding(self) -> str:
        parts = [self.title or self.item_id]
        if self.categories:
            parts.append("Categories: " + ", ".join(self.categories))
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags[:20]))
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)


def iso(ts_ms: int) -> str | None:
    """ISO-8601 UTC, or None for a value no datetime can hold (see tastebud.timefmt)."""
    return iso_or_none(ts_ms)


_MS_THRESHOLD = 100_000_000_000  # epoch seconds pass this only in the year 5138
_MAX_MS = 253402300799000  # 9999-12-31T23:59:59Z
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_HALF_MS = timedelta(microseconds=500)


def parse_timestamp(raw: Any) -> int:
    """ISO-8601 or epoch seconds/milliseconds -> epoch ms UTC. Naive ISO means UTC.

    Fractions round to the nearest millisecond in exact arithmetic: a float
    product like 1079337347.472 * 1000 lands just below the integer, and
    truncating it stored one event in 150 a millisecond early.
    """
    if raw.__class__ is str and raw.isdecimal():
        # Fast path for the common digits-only epoch.
        try:
            number = int(raw)
        except ValueError:  # more digits than int() will parse
            raise RowError(f"timestamp out of range {raw[:40]!r}") from None
        ms = number if number >= _MS_THRESHOLD else number * 1000
        if ms > _MAX_MS:
            raise RowError(f"timestamp in the future {raw[:40]!r}")
        return ms
    if raw is None or raw == "":
        raise RowError("missing timestamp")
    if isinstance(raw, bool):
        raise RowError(f"unparsable timestamp {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise RowError(f"timestamp before 1970 {_short(raw)}")
        ms = raw if raw >= _MS_THRESHOLD else raw * 1000
        if ms > _MAX_MS:
            raise RowError(f"timestamp in the future {_short(raw)}")
        return ms
    if isinstance(raw, float):
        number = raw
        text = repr(raw)
    else:
        text = str(raw).strip()
        if not text:
            raise RowError("missing timestamp")
        try:
            number = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise RowError(f"unparsable timestamp {text[:40]!r}") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            try:
                ms = (dt - _EPOCH + _HALF_MS) // _ONE_MS
            except OverflowError:  # an offset pushed it past year 1 or 9999
                ms = -1 if dt.year < 1970 else _MAX_MS + 1
            if ms < 0:
                raise RowError(f"timestamp before 1970 {text[:40]!r}")
            if ms > _MAX_MS:
                raise RowError(f"timestamp in the future {text[:40]!r}")
            return ms
    if not math.isfinite(number) or number < 0:
        raise RowError(f"unparsable timestamp {_short(raw)}")
    if number * (1 if number >= _MS_THRESHOLD else 1000) > _MAX_MS:
        raise RowError(f"timestamp in the future {_short(raw)}")
    try:
        exact = Decimal(text)  # the digits as written, not their binary approximation
    except InvalidOperation:
        exact = Decimal(number)
    ms = exact if number >= _MS_THRESHOLD else exact * 1000
    return int(ms.to_integral_value(ROUND_HALF_UP))


def _text(raw: Any, what: str = "text") -> str | None:
    """Text is a string; a JSON number is accepted as its digits, anything else
    (an object, a list, true) is an error rather than its Python repr."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise RowError(f"{what} must be a string, got {type(raw).__name__}")
        raw = _ident(raw) or ""
    text = raw.strip()
    return text or None


def _ident(raw: Any) -> str | None:
    """Ids are strings; a float like 1.0 from JSON is normalised to '1'."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, (dict, list)):
        raise RowError(f"id must be a scalar, got {type(raw).__name__}")
    try:
        text = str(raw).strip()
    except ValueError:  # an integer too long to print
        raise RowError("id is not a usable value") from None
    return text or None


def _number(raw: Any, what: str) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise RowError(f"non-numeric {what} {_short(raw)}")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise RowError(f"non-numeric {what} {_short(raw)}") from None
    if not math.isfinite(value):
        raise RowError(f"non-numeric {what} {_short(raw)}")
    return value


def _short(raw: Any) -> str:
    """A value for an error message: at most 40 characters, never an error itself."""
    try:
        return repr(str(raw)[:40])
    except ValueError:
        return "(a huge number)"



_ID_HASH = hashlib.blake2b(digest_size=12)  # copied per id: cheaper than a fresh constructor call


def stable_event_id(user_id: str, item_id: str | None, type_: str, ts: int, value: float | None, text: str | None) -> str:
    """Same fields, same id: re-ingesting a file without ids adds nothing."""
    key = f"{user_id}\x1f{item_id or ''}\x1f{type_}\x1f{ts}\x1f{'' if value is None else repr(value)}\x1f{text or ''}"
    digest = _ID_HASH.copy()
    digest.update(key.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


EVENT_FIELDS = ("user_id", "type", "item_id", "timestamp", "value", "text", "event_id")


def event_fields(row: Mapping[str, Any], rules: ValueRules = DEFAULT_RULES
                 ) -> tuple[str, str, str | None, str, int, float | None, str | None]:
    """Validate one raw mapping into a tuple in Event field order."""
    get = row.get
    return event_values(get("user_id"), get("type"), get("item_id"), get("timestamp"), get("value"),
                        get("text"), get("event_id"), rules)


def event_values(user_id: Any, type_: Any, item_id: Any, timestamp: Any, value: Any, text: Any,
                 event_id: Any, rules: ValueRules = DEFAULT_RULES
                 ) -> tuple[str, str, str | None, str, int, float | None, str | None]:
    """The event rules, on raw values in EVENT_FIELDS order; returns a tuple in Event field order.

    This is the ingestion hot path (100k+ rows per file), so the common case of
    clean strings is handled inline and no Event object is built; anything
    else falls through to the general helpers, so the rules stay the same.
    """
    raw = user_id
    user_id = raw.strip() if raw.__class__ is str else _ident(raw)
    if not user_id:
        raise RowError("missing user_id")
    if len(user_id) > MAX_ID_LENGTH:
        raise RowError(f"user_id longer than {MAX_ID_LENGTH} characters")
    raw = type_
    if raw.__class__ is str and raw in EVENT_TYPES:
        type_ = raw
    else:
        type_ = _text(raw)
        if type_ is None:
            raise RowError("missing type")
        type_ = type_.lower()
        if type_ not in EVENT_TYPES:
            raise RowError(f"unknown event type {type_[:30]!r}")
    raw = item_id
    item_id = (raw.strip() if raw.__class__ is str else _ident(raw)) or None
    if item_id is None:
        if type_ not in ITEMLESS_TYPES and type_ not in PREFERENCE_TYPES:
            raise RowError(f"missing item_id for a {type_} event")
    elif len(item_id) > MAX_ID_LENGTH:
        raise RowError(f"item_id longer than {MAX_ID_LENGTH} characters")
    raw = timestamp
    if raw.__class__ is str and len(raw) <= 11 and raw.isdecimal():
        ts = int(raw) * 1000  # epoch seconds (11 digits stay below _MS_THRESHOLD)
    else:
        ts = parse_timestamp(raw)
    if ts > rules.latest_ms() or ts < 0:
        rules.check_ts(ts, raw)  # raises with the reason
    raw = value
    if raw.__class__ is str and raw:
        try:
            value = float(raw)
        except ValueError:
            value = _number(raw, "rating" if type_ == "rating" else "value")  # raises with the reason
        if not _isfinite(value):
            _number(raw, "rating" if type_ == "rating" else "value")
    elif raw is None or raw == "":
        value = None
        if type_ == "rating":
            raise RowError("rating event without a value")
    else:
        value = _number(raw, "rating" if type_ == "rating" else "value")
    if value is not None:
        if type_ == "rating":
            if not (rules.rating_min <= value <= rules.rating_max):
                rules.check_rating(value, raw)  # raises with the reason
        elif not -MAX_VALUE <= value <= MAX_VALUE:
            raise RowError(f"value {_short(raw)} outside ±{MAX_VALUE:g}")
    raw = text
    text = None if raw is None else (raw.strip() or None) if raw.__class__ is str else _text(raw)
    if text is not None and len(text) > rules.max_text_chars:
        rules.check_text(text)
    if text is None and type_ in _TEXT_TYPES:
        raise RowError(f"{type_} event without text")
    if text is not None and not rules.store_raw_text:
        text = _pii.mask(text)
    if item_id is None and text is None and type_ in PREFERENCE_TYPES:
        raise RowError(f"a {type_} event needs an item_id, or a text naming a category")
    raw = event_id
    event_id = None if raw is None else raw.strip() if raw.__class__ is str else _ident(raw)
    if not event_id:
        event_id = stable_event_id(user_id, item_id, type_, ts, value, text)
    elif len(event_id) > MAX_ID_LENGTH:
        raise RowError(f"event_id longer than {MAX_ID_LENGTH} characters")
    return (event_id, user_id, item_id, type_, ts, value, text)


def parse_event(row: Mapping[str, Any], rules: ValueRules = DEFAULT_RULES) -> Event:
    """Validate one raw mapping (CSV row or JSON object) into an Event."""
    return Event(*event_fields(row, rules))


def _list(raw: Any, what: str) -> tuple[str, ...]:
    """Lists arrive as JSON arrays or '|'-separated strings (the MovieLens habit)."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                raw = json.loads(stripped)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise RowError(f"bad JSON in {what}: {getattr(exc, 'msg', 'nested too deeply')}") from None
        else:
            parts = [part.strip() for part in stripped.split("|")]
            return tuple(dict.fromkeys(part for part in parts if part))
    if not isinstance(raw, (list, tuple)):
        raise RowError(f"{what} must be a list")
    out: dict[str, None] = {}
    for part in raw:
        if isinstance(part, (dict, list)):
            raise RowError(f"{what} must be a list of strings")
        text = _text(part)
        if text:
            out[text] = None
    return tuple(out)


MAX_TITLE_CHARS = 1000


def parse_item(row: Mapping[str, Any], rules: ValueRules = DEFAULT_RULES) -> Item:
    get = row.get
    item_id = _ident(get("item_id"))
    if item_id is None:
        raise RowError("missing item_id")
    if len(item_id) > MAX_ID_LENGTH:
        raise RowError(f"item_id longer than {MAX_ID_LENGTH} characters")
    categories, tags, attributes = get("categories"), get("tags"), get("attributes") or {}
    escaped = any(v.__class__ is str and "\\u" in v for v in (categories, tags, attributes))
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes) if attributes.strip() else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            raise RowError(f"bad JSON in attributes: {getattr(exc, 'msg', 'nested too deeply')}") from None
    if not isinstance(attributes, dict):
        raise RowError("attributes must be an object")
    updated = get("updated_at")
    title = _text(get("title"), "title")
    if title is not None and len(title) > MAX_TITLE_CHARS:
        raise RowError(f"title longer than {MAX_TITLE_CHARS} characters")
    description = rules.check_text(_text(get("description"), "description"), "description")
    updated_at = None
    if updated not in (None, ""):
        updated_at = rules.check_ts(parse_timestamp(updated), updated)
    item = Item(
        item_id=item_id,
        title=title,
        description=description,
        categories=_list(categories, "categories"),
        tags=_list(tags, "tags"),
        attributes=attributes,
        updated_at=updated_at,
    )
    if escaped:
        reason = unstorable([item.categories, item.tags, item.attributes])
        if reason:
            raise RowError(reason)
    return item


def unstorable(obj: Any) -> str | None:
    """Why a parsed value cannot be stored, if it cannot: JSON escapes can spell
    half a surrogate pair, which no database stores, or a NUL, which PostgreSQL
    text refuses. Readers check this so that both backends accept the same rows."""
    if isinstance(obj, str):
        if "\x00" in obj:
            return "contains a NUL character"
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return "bad JSON: lone surrogate escape"
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            reason = unstorable(k) or unstorable(v)
            if reason:
                return reason
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            reason = unstorable(v)
            if reason:
                return reason
    return None
