"""Interest states kept in a long-running process (the live updater), in step
with the event store.

A user's state is built from their whole history on first touch, then fed only
the events stored since (by seq). It is rebuilt from the store, the repair path,
whenever it may have missed something: the user's event count in the store is
not what the state has seen (a late commit below the last seq, a deleted row),
the catalog changed one of the user's items, the config changed, or the clock
went back past events already used. A restart just starts empty, so no profile
ever rests on a state that missed events.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Mapping

from sqlalchemy import func, select

from tastebud.profiles.events import Item
from tastebud.profiles.interest import InterestConfig, InterestProfile
from tastebud.profiles.interest_state import InterestState, StateOutOfDate
from tastebud.profiles.migrations import events
from tastebud.profiles.store import EventStore, _row_event

MAX_USERS = 2000  # states kept, least recently used dropped (a heavy user's state is a few MB)


class IncrementalProfiles:
    """Callers hold the user's lock (one writer per user); the cache itself is thread-safe."""

    def __init__(self, max_users: int = MAX_USERS) -> None:
        self.max_users = max_users
        self._states: OrderedDict[str, tuple[InterestState, int]] = OrderedDict()  # user -> (state, last seq)
        self._lock = threading.Lock()
        # built: from the whole history (first touch, or a repair: "rebuilt" counts those)
        self.counts = {"built": 0, "updated": 0, "rebuilt": 0}

    def profile(self, store: EventStore, user_id: str, items: Mapping[str, Item],
                config: InterestConfig) -> tuple[InterestProfile, int]:
        """The user's profile and the last event seq it covers."""
        with self._lock:
            kept = self._states.pop(user_id, None)
        profile = None
        if kept is not None and kept[0].config == config:
            state, last_seq = kept
            try:
                state.adopt_catalog(items)
                rows, total = self._rows_since(store, user_id, last_seq)
                if state.events_seen + len(rows) != total:
                    raise StateOutOfDate("the store holds events the state never saw")
                state.add(_row_event(r) for r in rows)
                last_seq = max((r.seq for r in rows), default=last_seq)
                profile = state.profile(last_seq)
                self.counts["updated"] += 1
            except StateOutOfDate:
                self.counts["rebuilt"] += 1
        if profile is None:
            state, last_seq = self._build(store, user_id, items, config)
            profile = state.profile(last_seq)
            self.counts["built"] += 1
        with self._lock:
            self._states[user_id] = (state, last_seq)
            while len(self._states) > self.max_users:
                self._states.popitem(last=False)
        return profile, last_seq

    def forget(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._states.clear()
            else:
                self._states.pop(user_id, None)

    @staticmethod
    def _build(store: EventStore, user_id: str, items: Mapping[str, Item],
               config: InterestConfig) -> tuple[InterestState, int]:
        rows, _ = IncrementalProfiles._rows_since(store, user_id, 0)
        state = InterestState(user_id, config, items)
        state.add(_row_event(r) for r in rows)
        return state, max((r.seq for r in rows), default=0)

    @staticmethod
    def _rows_since(store: EventStore, user_id: str, seq: int) -> tuple[list, int]:
        """The user's rows after `seq`, and how many rows the user has, read together."""
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(events).where(events.c.user_id == user_id, events.c.seq > seq).order_by(events.c.seq)
            ).all()
            total = conn.execute(select(func.count()).select_from(events).where(events.c.user_id == user_id)).scalar_one()
        return rows, total
