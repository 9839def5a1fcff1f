"""The durable narrative queue: one row per user whose narrative should be
rewritten by the LLM. Shared by every process on the database: a row is
requested (before the user's computed refresh, so a crash loses nothing),
claimed with a lease by one worker, and then done, released for later, or
backed off after a failure. `not_before` serves both as the lease and as the
back-off: a row is due when it is NULL or in the past.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

from sqlalchemy import delete, func, or_, select, update

from tastebud.profiles.migrations import narrative_queue
from tastebud.profiles.sql import upsert
from tastebud.profiles.store import EventStore

MAX_ERROR_CHARS = 500


def _now_ms() -> int:
    return int(time.time() * 1000)


class NarrativeQueue:
    def __init__(self, store: EventStore):
        self.store = store

    def request(self, users: Sequence[str], now_ms: int | None = None) -> int:
        """Queue the users (a new request for a queued user moves its requested_at
        and keeps any back-off or lease); returns the request time, epoch ms."""
        now_ms = _now_ms() if now_ms is None else now_ms
        if users:
            stmt = upsert(self.store.dialect, narrative_queue, keys=["user_id"], update=["requested_at"])
            with self.store.transaction() as conn:
                conn.execute(stmt, [{"user_id": u, "requested_at": now_ms, "attempts": 0} for u in users])
        return now_ms

    def pending(self, limit: int) -> list[tuple[str, int, int | None]]:
        """(user, requested_at, not_before) of the oldest `limit` requests, leased or not."""
        q = narrative_queue
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(q.c.user_id, q.c.requested_at, q.c.not_before)
                                .order_by(q.c.requested_at).limit(limit)).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def claim(self, users: Sequence[str], lease_s: float) -> dict[str, int]:
        """Lease those of `users` that are due and not leased by another worker
        for `lease_s`; user -> the requested_at being served."""
        now_ms = _now_ms()
        q = narrative_queue
        claimed: list[str] = []
        with self.store.transaction() as conn:
            for user in users:
                taken = conn.execute(
                    update(q).where(q.c.user_id == user, or_(q.c.not_before.is_(None), q.c.not_before <= now_ms))
                    .values(not_before=now_ms + int(lease_s * 1000))
                ).rowcount
                if taken:
                    claimed.append(user)
            if not claimed:
                return {}
            return dict(conn.execute(select(q.c.user_id, q.c.requested_at).where(q.c.user_id.in_(claimed))).all())

    def release(self, user: str, delay_s: float) -> None:
        """Give a claimed row back, due again in `delay_s` (its attempts unchanged)."""
        with self.store.transaction() as conn:
            conn.execute(update(narrative_queue).where(narrative_queue.c.user_id == user)
                         .values(not_before=_now_ms() + int(delay_s * 1000)))

    def back_off(self, users: Sequence[str], error: str, base_s: float, max_s: float) -> dict[str, float]:
        """After a failure: each row waits base_s * 2**attempts (at most max_s)
        and counts one more attempt; user -> the delay in seconds."""
        q = narrative_queue
        delays: dict[str, float] = {}
        with self.store.transaction() as conn:
            rows = dict(conn.execute(select(q.c.user_id, q.c.attempts).where(q.c.user_id.in_(list(users)))).all())
            for user, attempts in rows.items():
                delays[user] = min(max_s, base_s * 2 ** attempts)
                conn.execute(update(q).where(q.c.user_id == user).values(
                    attempts=attempts + 1, last_error=error[:MAX_ERROR_CHARS],
                    not_before=_now_ms() + int(delays[user] * 1000)))
        return delays

    def done(self, served: Mapping[str, int]) -> dict[str, int]:
        """The narratives of `served` (user -> the requested_at claimed) are written:
        delete their rows, except those requested again since, which become due
        afresh (lease and attempts cleared); returns those, user -> requested_at."""
        q = narrative_queue
        users = list(served)
        if not users:
            return {}
        with self.store.transaction() as conn:
            for user, requested_at in served.items():
                conn.execute(delete(q).where(q.c.user_id == user, q.c.requested_at <= requested_at))
            newer = dict(conn.execute(select(q.c.user_id, q.c.requested_at).where(q.c.user_id.in_(users))).all())
            if newer:
                conn.execute(update(q).where(q.c.user_id.in_(list(newer))).values(not_before=None, attempts=0))
        return newer

    def drop(self, users: Sequence[str]) -> None:
        """Forget requests outright (a user with no events has nothing to narrate)."""
        if users:
            with self.store.transaction() as conn:
                conn.execute(delete(narrative_queue).where(narrative_queue.c.user_id.in_(list(users))))

    def depth(self) -> int:
        """Rows queued, leased and backing off included."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(narrative_queue)).scalar_one()
