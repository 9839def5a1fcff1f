"""Opt-out of profiling (docs/design.md#privacy): the per-user record.

While a user has a row in `profiling_optouts`, refreshes (full, live, the
narrative queue) make no profile or narrative for them and remove what exists,
`lagging_users` and `is_lagging` never name them, and their recommendations are
popularity only. Their events and API keys are kept. Deleting the row (opting
back in) makes them lagging again, so the next refresh rebuilds the profile.
"""

from __future__ import annotations

import time
from typing import Iterable

from sqlalchemy import delete, select

from tastebud.profiles.migrations import narrative_queue, profile_heads, profile_versions, profiling_optouts
from tastebud.profiles.sql import insert_ignore
from tastebud.profiles.store import EventStore


def opted_out(store: EventStore, users: Iterable[str]) -> set[str]:
    """Those of `users` who opted out of profiling."""
    return _users_in(store, users, (profiling_optouts,))


def is_opted_out(store: EventStore, user_id: str) -> bool:
    return bool(opted_out(store, [user_id]))


def opt_out_record(store: EventStore, user_id: str) -> dict | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(profiling_optouts).where(profiling_optouts.c.user_id == user_id)).mappings().first()
    return dict(row) if row else None


def record_opt_out(store: EventStore, user_id: str, requested_by: str) -> bool:
    """Record the opt-out (idempotent: the first record's time is kept); True when new."""
    with store.transaction() as conn:
        exists = conn.execute(select(profiling_optouts.c.user_id)
                              .where(profiling_optouts.c.user_id == user_id)).first() is not None
        if not exists:
            conn.execute(insert_ignore(store.dialect, profiling_optouts), [{"user_id": user_id, "opted_out_at": int(time.time() * 1000),
                                 "requested_by": requested_by[:64]}])
    return not exists


def remove_opt_out(store: EventStore, user_id: str) -> bool:
    """Opt back in; True when there was an opt-out."""
    with store.transaction() as conn:
        return bool(conn.execute(delete(profiling_optouts).where(profiling_optouts.c.user_id == user_id)).rowcount)


def profile_rows_of(store: EventStore, users: Iterable[str]) -> set[str]:
    """Those of `users` with a profile version, head or narrative-queue row left."""
    return _users_in(store, users, (profile_heads, profile_versions, narrative_queue))


def _users_in(store: EventStore, users: Iterable[str], tables: tuple) -> set[str]:
    """Those of `users` with a row in any of `tables`, asked 500 ids at a time."""
    users = list(dict.fromkeys(users))
    found: set[str] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(users), 500):
            chunk = users[start:start + 500]
            for table in tables:
                found.update(conn.execute(select(table.c.user_id).distinct().where(table.c.user_id.in_(chunk))).scalars())
    return found
