"""The row rules of `tastebud doctor` (tastebud.profiles.doctor): which value rules a
stored event or catalog row breaks, and how such a row is written out as the JSONL
record the quarantine keeps (so `tastebud quarantine fix/retry` can read it back).

These judge rows already in the store, which may hold values an older version
accepted or a direct database write left behind; ingestion's own checks are in
tastebud.profiles.events.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

from tastebud.profiles.events import EVENT_TYPES, ITEMLESS_TYPES, MAX_ID_LENGTH, MAX_VALUE, PREFERENCE_TYPES, ValueRules
from tastebud.timefmt import is_renderable, iso_or_none

TEXT_TYPES = frozenset({"review", "search", "tag"})  # events that are their text (ingestion requires it)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _ts_problem(ts: Any, latest: int, what: str = "timestamp") -> str | None:
    if ts is None:
        return f"{what} missing"
    if isinstance(ts, bool) or not isinstance(ts, int):
        return f"{what} is not an integer ({_short(ts)})"
    if ts < 0:
        return f"{what} before 1970 ({ts} ms)"
    if ts > latest:
        when = iso_or_none(ts) if is_renderable(ts) else None
        return f"{what} in the future ({when})" if when else f"{what} past year 9999 ({ts} ms)"
    return None


def event_problems(row: Mapping[str, Any], rules: ValueRules, latest: int) -> list[str]:
    """The value rules a stored event row breaks (empty when none)."""
    reasons: list[str] = []
    problem = _ts_problem(row["ts"], latest)
    if problem:
        reasons.append(problem)
    value = row["value"]
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            reasons.append(f"value is not a number ({_short(value)})")
        elif not math.isfinite(value):
            reasons.append(f"value is not finite ({value})")
        elif row["type"] == "rating" and not rules.rating_min <= value <= rules.rating_max:
            reasons.append(f"rating {value:g} outside the scale {rules.rating_min:g}-{rules.rating_max:g}")
        elif row["type"] != "rating" and not -MAX_VALUE <= value <= MAX_VALUE:
            reasons.append(f"value {value:g} outside ±{MAX_VALUE:g}")
    text = row["text"]
    if text is not None:
        if not isinstance(text, str):
            reasons.append(f"text is not a string ({type(text).__name__})")
        elif len(text) > rules.max_text_chars:
            reasons.append(f"text longer than {rules.max_text_chars} characters ({len(text)})")
    for name in ("event_id", "user_id", "item_id"):
        ident = row[name]
        if ident is None:
            if name != "item_id":
                reasons.append(f"{name} missing")
        elif not isinstance(ident, str):
            reasons.append(f"{name} is not a string ({type(ident).__name__})")
        elif not ident.strip():
            reasons.append(f"{name} is empty")
        elif len(ident) > MAX_ID_LENGTH:
            reasons.append(f"{name} longer than {MAX_ID_LENGTH} characters ({len(ident)})")
    type_ = row["type"]
    if type_ not in EVENT_TYPES:
        reasons.append(f"unknown event type {_short(type_)}")
    elif type_ == "rating" and value is None:
        reasons.append("rating event without a value")
    if text is None and type_ in TEXT_TYPES:
        reasons.append(f"{type_} event without text")
    if row["item_id"] is None and type_ in EVENT_TYPES and type_ not in ITEMLESS_TYPES:
        if type_ not in PREFERENCE_TYPES:
            reasons.append(f"missing item_id for a {type_} event")
        elif text is None:
            reasons.append(f"a {type_} event needs an item_id, or a text naming a category")
    return reasons


def _json_list_problem(raw: Any, what: str) -> str | None:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return f"{what} is not a JSON list ({_short(raw)})"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"{what} is not a JSON list of strings ({_short(raw)})"
    return None


def item_problems(row: Mapping[str, Any], rules: ValueRules, latest: int) -> list[str]:
    """The rules a stored catalog row breaks (empty when none)."""
    reasons: list[str] = []
    item_id = row["item_id"]
    if not isinstance(item_id, str):
        reasons.append(f"item_id is not a string ({type(item_id).__name__})")
    elif len(item_id) > MAX_ID_LENGTH:
        reasons.append(f"item_id longer than {MAX_ID_LENGTH} characters ({len(item_id)})")
    for name in ("title", "description"):
        text = row[name]
        if text is None:
            continue
        if not isinstance(text, str):
            reasons.append(f"{name} is not a string ({type(text).__name__})")
        elif len(text) > rules.max_text_chars:
            reasons.append(f"{name} longer than {rules.max_text_chars} characters ({len(text)})")
    for name in ("categories", "tags"):
        problem = _json_list_problem(row[name], name)
        if problem:
            reasons.append(problem)
    try:
        attributes = json.loads(row["attributes"])
    except (TypeError, ValueError, RecursionError):
        attributes = None
    if not isinstance(attributes, dict):
        reasons.append(f"attributes is not a JSON object ({_short(row['attributes'])})")
    if row["updated_at"] is not None:
        problem = _ts_problem(row["updated_at"], latest, "updated_at")
        if problem:
            reasons.append(problem)
    return reasons


def jsonable(value: Any) -> Any:
    """A stored value as plain JSON: non-finite floats and bytes become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'inf', 'nan': a retry rejects them with the usual reason
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def event_raw(row: Mapping[str, Any]) -> str:
    """The event row as one JSONL record in the field names ingestion reads."""
    record = {"event_id": row["event_id"], "user_id": row["user_id"], "item_id": row["item_id"], "type": row["type"],
              "timestamp": row["ts"], "value": row["value"], "text": row["text"], "seq": row["seq"]}
    return json.dumps({k: jsonable(v) for k, v in record.items()}, ensure_ascii=False, allow_nan=False)


def item_raw(row: Mapping[str, Any]) -> str:
    """The catalog row as one JSONL record (lists as stored, parsed when they parse)."""
    record: dict[str, Any] = {}
    for name in ("item_id", "title", "description", "categories", "tags", "attributes", "updated_at"):
        value = row[name]
        if name in ("categories", "tags", "attributes") and isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                pass
        record[name] = value
    return json.dumps(record, ensure_ascii=False, allow_nan=False, default=jsonable)


def event_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """The stored event row as plain JSON values (the `row` of a finding)."""
    return {k: jsonable(row[k]) for k in ("seq", "event_id", "user_id", "item_id", "type", "ts", "value", "text")}
