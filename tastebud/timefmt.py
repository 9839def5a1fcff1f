"""Rendering stored epoch-millisecond timestamps: the one place that does it, and it never raises.

Stored data is not always what today's validation would accept: an older
version, or a direct database write, may have left a timestamp past year 9999,
before 1970, or not a number at all. A read must still answer, so a value that
cannot be shown is rendered as "unknown" (None in JSON, `MISSING` in text)
and a warning names it once per process; `tastebud doctor` finds and
quarantines such rows.

Renderable: 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z. Earlier instants
are representable by `datetime` but are not valid tastebud data (ingestion
rejects them), so they are shown as unknown rather than as a guess.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger("tastebud.timefmt")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_MS = 0
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant `datetime` holds
MISSING = "-"  # how text output shows a timestamp that is absent or cannot be rendered
HUMAN_FORMAT = "%Y-%m-%d %H:%M UTC"

_WARNED: set[str] = set()
_WARN_LIMIT = 1000  # distinct values warned about per process; past it, warnings stop (one says so)


def _warn(ms: Any) -> None:
    try:
        key = repr(ms)[:60]
    except Exception:  # noqa: BLE001 - a value whose repr fails is still only a warning
        key = f"<{type(ms).__name__}>"
    if key in _WARNED or len(_WARNED) > _WARN_LIMIT:
        return
    _WARNED.add(key)
    if len(_WARNED) > _WARN_LIMIT:
        log.warning("more unrenderable timestamps; no further warnings (run: tastebud doctor)")
        return
    log.warning("stored timestamp %s is out of range; shown as unknown (run: tastebud doctor)", key)


def is_renderable(ms: Any) -> bool:
    """Whether `ms` is an epoch-millisecond value these functions render as a time."""
    if ms is None or isinstance(ms, bool):
        return False
    if isinstance(ms, float):
        if not math.isfinite(ms):
            return False
    elif not isinstance(ms, int):
        return False
    return MIN_MS <= ms <= MAX_MS


def to_datetime(ms: Any) -> datetime | None:
    """The UTC datetime of epoch milliseconds; None (and a warning) when absent or unrenderable."""
    if ms is None:
        return None
    if not is_renderable(ms):
        _warn(ms)
        return None
    try:
        return EPOCH + timedelta(milliseconds=ms)
    except (OverflowError, ValueError, TypeError):  # pragma: no cover - excluded by is_renderable
        _warn(ms)
        return None


def iso_or_none(ms: Any) -> str | None:
    """ISO-8601 UTC with a Z ("2024-03-01T12:00:00Z"), as `tastebud.profiles.events.iso`
    writes it, or None when absent or unrenderable. Never raises."""
    dt = to_datetime(ms)
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def human_time(ms: Any, missing: str | None = MISSING) -> str | None:
    """"2024-03-01 12:00 UTC" for people (CLI tables, chat tools), or `missing`
    when absent or unrenderable. Never raises."""
    dt = to_datetime(ms)
    return missing if dt is None else dt.strftime(HUMAN_FORMAT)
