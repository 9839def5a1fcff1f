"""Retention (docs/design.md#privacy): with `retention_days` set, events older
than now - N days are deleted at refresh time, with a forget's care on SQLite
(secure_delete, the WAL truncated), and the profiles that rested on them are
rebuilt by the caller: computed parts from the events left, the narrative
rewritten (template now, the LLM when it runs), and every older profile version
that cites a removed event deleted, so no tag, evidence list or narrative keeps
pointing at evidence that is gone. Users left without any event lose their
profile entirely.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, select

from tastebud.profiles.erasure import scrub_sqlite
from tastebud.profiles.migrations import events, profile_heads, profile_versions
from tastebud.profiles.store import EventStore

DAY_MS = 86_400_000


@dataclass
class Expiry:
    cutoff_ms: int
    events: int = 0
    removed: dict[str, set[str]] = field(default_factory=dict)  # user -> event ids deleted

    @property
    def users(self) -> list[str]:
        return sorted(self.removed)


def cutoff_ms(days: float, now_ms: int | None = None) -> int:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return now_ms - int(days * DAY_MS)


def expire_events(store: EventStore, days: float, now_ms: int | None = None, chunk: int = 2000) -> Expiry:
    """Delete events with ts < now - days; returns which, per user."""
    out = Expiry(cutoff_ms(days, now_ms))
    while True:
        with store.transaction() as conn:
            rows = conn.execute(select(events.c.seq, events.c.user_id, events.c.event_id)
                                .where(events.c.ts < out.cutoff_ms).order_by(events.c.ts).limit(chunk)).all()
            if not rows:
                break
            if store.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            store._lock_users(conn, {r.user_id for r in rows})
            conn.execute(delete(events).where(events.c.seq.in_([r.seq for r in rows])))
        for r in rows:
            out.removed.setdefault(r.user_id, set()).add(r.event_id)
        out.events += len(rows)
        if len(rows) < chunk:
            break
    if out.events and store.dialect == "sqlite":
        scrub_sqlite(store)
    return out


def _cites(text: str, ids: set[str]) -> bool:
    """Whether a stored profile (JSON) names one of the event ids as a value."""
    found = False

    def walk(value: object) -> None:
        nonlocal found
        if found:
            return
        if isinstance(value, str):
            found = value in ids
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(text))
    return found


def drop_citing_versions(store: EventStore, removed: dict[str, set[str]]) -> int:
    """Delete the profile versions (not the head's) that cite a removed event in
    their data or their trigger ids; returns how many. Run after the rebuild, so
    each user's head is the new version that cites none."""
    doomed: list[tuple[str, int]] = []
    users = sorted(removed)
    with store.engine.connect() as conn:
        for start in range(0, len(users), 200):
            chunk = users[start:start + 200]
            heads = dict(conn.execute(select(profile_heads.c.user_id, profile_heads.c.version)
                                      .where(profile_heads.c.user_id.in_(chunk))).all())
            rows = conn.execute(select(profile_versions.c.user_id, profile_versions.c.version, profile_versions.c.data,
                                       profile_versions.c.trigger_event_ids)
                                .where(profile_versions.c.user_id.in_(chunk))).all()
            for r in rows:
                if r.version != heads.get(r.user_id) and (
                        _cites(r.trigger_event_ids, removed[r.user_id]) or _cites(r.data, removed[r.user_id])):
                    doomed.append((r.user_id, r.version))
    if doomed:
        with store.transaction() as conn:
            if store.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            for user, version in doomed:
                conn.execute(delete(profile_versions).where(and_(profile_versions.c.user_id == user,
                                                                 profile_versions.c.version == version)))
        if store.dialect == "sqlite":
            scrub_sqlite(store)
    return len(doomed)
