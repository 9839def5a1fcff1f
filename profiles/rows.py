"""How stored rows become values and back: items and events as the store writes
them, and lenient reads of rows this version never writes (a direct SQLite write
can leave any type in a column)."""

from __future__ import annotations

import json
import logging
import math
from json.encoder import encode_basestring
from typing import Any, Sequence

from tastebud.profiles.events import Event, Item
from tastebud.profiles.migrations import items

log = logging.getLogger("tastebud.store")


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_encode_string = encode_basestring  # what _JSON uses for each string


def _json(value: Any) -> str:
    return _JSON.encode(value)


_ITEM_COLUMNS = ("item_id", "title", "description", "categories", "tags", "attributes", "updated_at", "is_stub")
assert _ITEM_COLUMNS == tuple(c.name for c in items.columns), "update _item_row with the items table"


def _json_strings(values: Sequence[str]) -> str:
    """_json of a list of strings, without the encoder's per-call overhead (same text)."""
    return "[" + ",".join(map(_encode_string, values)) + "]" if values else "[]"


def _item_row(item: Item) -> tuple:
    """An item as stored, in _ITEM_COLUMNS order."""
    return (
        item.item_id,
        item.title,
        item.description,
        _json_strings(item.categories),
        _json_strings(item.tags),
        _json(dict(item.attributes)) if item.attributes else "{}",
        item.updated_at,
        bool(item.is_stub),
    )


def _row_item(row: Any) -> Item:
    """A catalog row as an Item. A row this version did not write (an older one,
    a direct database write) may hold anything: unusable fields are read as empty,
    with a warning, so one bad row never fails a read; `tastebud doctor` finds it."""
    try:
        categories, tags, attributes = json.loads(row.categories), json.loads(row.tags), json.loads(row.attributes)
    except Exception:  # noqa: BLE001 - the strict read is the hot path; this is the rare one
        return _lenient_item(row)
    if (categories.__class__ is not list or tags.__class__ is not list or attributes.__class__ is not dict
            or not all(v.__class__ is str for v in categories) or not all(v.__class__ is str for v in tags)
            or not all(v is None or v.__class__ is str for v in (row.item_id, row.title, row.description))):
        return _lenient_item(row)
    return Item(
        item_id=row.item_id,
        title=row.title,
        description=row.description,
        categories=tuple(categories),
        tags=tuple(tags),
        attributes=attributes,
        updated_at=row.updated_at,
        is_stub=bool(row.is_stub),
    )


def _lenient_item(row: Any) -> Item:
    def text(value: Any) -> str | None:
        return value if value is None or isinstance(value, str) else None

    def strings(raw: Any) -> tuple[str, ...]:
        try:
            value = json.loads(raw)
        except (TypeError, ValueError, RecursionError):
            return ()
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    try:
        attributes = json.loads(row.attributes)
    except (TypeError, ValueError, RecursionError):
        attributes = {}
    item = Item(
        item_id=str(row.item_id),
        title=text(row.title),
        description=text(row.description),
        categories=strings(row.categories),
        tags=strings(row.tags),
        attributes=attributes if isinstance(attributes, dict) else {},
        updated_at=row.updated_at if isinstance(row.updated_at, int) else None,
        is_stub=bool(row.is_stub),
    )
    key = str(row.item_id)[:80]
    if key not in _LENIENT_WARNED and len(_LENIENT_WARNED) < 1000:  # once per item and process
        _LENIENT_WARNED.add(key)
        log.warning("catalog row %r has unusable fields; read with those fields empty (run: tastebud doctor)", key)
    return item


_LENIENT_WARNED: set[str] = set()


def _row_event(row: Any) -> Event:
    ts, value, text = row.ts, row.value, row.text
    if ts.__class__ is not int or (value is not None and value.__class__ is not float) or (
            text is not None and text.__class__ is not str):
        ts, value, text = _coerce_event_fields(ts, value, text)
    return Event(row.event_id, row.user_id, row.item_id, row.type, ts, value, text)


UNKNOWN_TS = -1  # an event time that cannot be read: before 1970, so every rule treats it as unusable


def usable_ts(ts: Any) -> int | None:
    """A stored event time as the reader takes it (an int, a float cut to one), None for
    one no rule may use: unreadable (read as UNKNOWN_TS) or before 1970 (ingestion
    refuses those, doctor flags them). For passes that read raw columns, not Events."""
    if isinstance(ts, bool):
        return None
    if isinstance(ts, int) or (isinstance(ts, float) and math.isfinite(ts)):
        return int(ts) if ts >= 0 else None
    return None
_COERCE_WARNED = False


def _coerce_event_fields(ts: Any, value: Any, text: Any) -> tuple[int, float | None, str | None]:
    """Fields of types this version never writes (SQLite keeps whatever a direct
    write gave it) read as unknown instead of failing every computation on the
    user: a time that is not a number is UNKNOWN_TS (rendered as unknown, left
    out of profiles), a value that is not a number and a text that is not a
    string are None. `tastebud doctor` finds and quarantines such rows."""
    global _COERCE_WARNED
    changed = False
    if ts.__class__ is not int:
        if isinstance(ts, int) and not isinstance(ts, bool):
            ts = int(ts)
        elif isinstance(ts, float) and math.isfinite(ts):
            ts, changed = int(ts), True
        else:
            ts, changed = UNKNOWN_TS, True
    if value is not None and value.__class__ is not float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        else:
            value, changed = None, True
    if text is not None and text.__class__ is not str:
        text, changed = (text if isinstance(text, str) else None), True
    if changed and not _COERCE_WARNED:
        _COERCE_WARNED = True
        log.warning("event rows with unusable field types read as unknown (run: tastebud doctor)")
    return ts, value, text
