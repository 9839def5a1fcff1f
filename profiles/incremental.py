"""Interest states kept in a long-running process (the live updater), in step
with the event store.

A user's state is built from their whole history on first touch, then fed only
the events stored since (by seq). It is rebuilt from the store, the repair path,
whenever it may have missed something: the user's event count in the store is
not what the state has seen (a late commit below the last seq, a deleted row),
the catalog changed one of the user's items, the config changed, or the clock
went back past events already used. A restart starts empty, so no profile
ever rests on a state that missed events; the live updater then warms the most
recently active users' states in the background (`warm`), so their next events
cost an update, not a replay of their history.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Mapping, Sequence

from sqlalchemy import and_, func, or_, select

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
        self.counts = {"built": 0, "updated": 0, "rebuilt": 0, "warmed": 0}

    def profile(self, store: EventStore, user_id: str, items: Mapping[str, Item],
                config: InterestConfig) -> tuple[InterestProfile, int]:
        """The user's profile and the last event seq it covers."""
        return self.profile_many(store, [user_id], items, config)[user_id]

    def profile_many(self, store: EventStore, users: Sequence[str], items: Mapping[str, Item],
                     config: InterestConfig) -> dict[str, tuple[InterestProfile, int]]:
        """profile() for a batch of users: their new rows and counts are read in two
        queries for the batch, not two per user (each round trip also waits for the GIL
        behind the request threads)."""
        with self._lock:
            kept = {u: self._states.pop(u) for u in dict.fromkeys(users) if u in self._states}
        kept = {u: held for u, held in kept.items() if held[0].config == config}
        rows_of, totals = self._rows_since_many(store, {u: last for u, (_, last) in kept.items()})
        out: dict[str, tuple[InterestProfile, int]] = {}
        for user in dict.fromkeys(users):
            profile = None
            if user in kept:
                state, last_seq = kept[user]
                try:
                    state.adopt_catalog(items)
                    rows = rows_of.get(user, [])
                    if state.events_seen + len(rows) != totals.get(user, 0):
                        raise StateOutOfDate("the store holds events the state never saw")
                    state.add(_row_event(r) for r in rows)
                    last_seq = max((r.seq for r in rows), default=last_seq)
                    profile = state.profile(last_seq)
                    self.counts["updated"] += 1
                except StateOutOfDate:
                    self.counts["rebuilt"] += 1
            if profile is None:
                state, last_seq = self._build(store, user, items, config)
                profile = state.profile(last_seq)
                self.counts["built"] += 1
            with self._lock:
                self._states[user] = (state, last_seq)
                while len(self._states) > self.max_users:
                    self._states.popitem(last=False)
            out[user] = (profile, last_seq)
        return out

    def warm(self, store: EventStore, users: list[str], items: Mapping[str, Item], config: InterestConfig) -> int:
        """Build the states of those of `users` not held yet, from one read; callers
        hold the users' locks. Warmed states go to the eviction end, behind every
        state a live event touched. Returns how many were built."""
        with self._lock:
            todo = [u for u in users if u not in self._states]
        if not todo:
            return 0
        with store.engine.connect() as conn:
            rows = conn.execute(select(events).where(events.c.user_id.in_(todo))
                                .order_by(events.c.user_id, events.c.seq)).all()
        by_user: dict[str, list] = {u: [] for u in todo}
        for r in rows:
            by_user[r.user_id].append(r)
        built = 0
        for user in todo:
            if not by_user[user]:
                continue
            state = self._state_from(user, by_user[user], items, config)
            with self._lock:
                if user in self._states or len(self._states) >= self.max_users:
                    continue
                self._states[user] = state
                self._states.move_to_end(user, last=False)
                built += 1
        self.counts["warmed"] += built
        return built

    def forget(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._states.clear()
            else:
                self._states.pop(user_id, None)

    @staticmethod
    def _build(store: EventStore, user_id: str, items: Mapping[str, Item],
               config: InterestConfig) -> tuple[InterestState, int]:
        with store.engine.connect() as conn:
            rows = conn.execute(select(events).where(events.c.user_id == user_id).order_by(events.c.seq)).all()
        return IncrementalProfiles._state_from(user_id, rows, items, config)

    @staticmethod
    def _state_from(user_id: str, rows: list, items: Mapping[str, Item],
                    config: InterestConfig) -> tuple[InterestState, int]:
        """rows: all the user's rows, in seq order."""
        state = InterestState(user_id, config, items)
        state.add(_row_event(r) for r in rows)
        return state, max((r.seq for r in rows), default=0)

    @staticmethod
    def _rows_since_many(store: EventStore, since: Mapping[str, int]) -> tuple[dict[str, list], dict[str, int]]:
        """Each user's rows after their seq (in seq order), then each user's row count.
        Rows first: a row committed in between shows in the count only, and the state
        is rebuilt (never the other way round, which would hide a row)."""
        if not since:
            return {}, {}
        rows_of: dict[str, list] = {u: [] for u in since}
        with store.engine.connect() as conn:
            after = or_(*(and_(events.c.user_id == u, events.c.seq > seq) for u, seq in since.items()))
            for r in conn.execute(select(events).where(after).order_by(events.c.user_id, events.c.seq)).all():
                rows_of[r.user_id].append(r)
            totals = dict(conn.execute(select(events.c.user_id, func.count()).where(events.c.user_id.in_(list(since)))
                                       .group_by(events.c.user_id)).all())
        return rows_of, totals
