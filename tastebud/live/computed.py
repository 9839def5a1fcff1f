"""The computed refresh (no LLM): users with new events are coalesced (a set
under a condition) and refreshed in small batches; the refresher's profile
hook writes their profile vectors to Chroma in the same step. `ensure_fresh`
does the same for one user synchronously when the store says its profile is
behind its events, so a read never misses the caller's own writes, whichever
process took them.

(Profile vectors are averages of item vectors, computed in that step with no
model call; requests derive the same vectors from the item side themselves,
so nothing waits on Chroma: retrieval/profile_vectors.py.)
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tastebud.live.support import Shared, now_ms, percentiles
from tastebud.profiles.interest import InterestConfig
from tastebud.timefmt import iso_or_none

if TYPE_CHECKING:
    from tastebud.profiles.refresh import Refresher, RefreshReport

log = logging.getLogger("tastebud.live")

LIVE_BATCH = 16  # users per computed refresh (one transaction): small, so a read waiting on one of them is not kept long
WARM_CHUNK = 16  # users per warm-up step; a marked user waits for at most one step
LAG_WINDOW = 2000  # recent lags kept for the percentiles in stats()
RETENTION_CHECK_S = 60.0  # with retention_days set, events past it are looked for this often


class ComputedRefresh:
    def __init__(self, shared: Shared, request_narratives: Callable[[Sequence[str]], None] | None,
                 on_warmed: Callable[[], None] | None = None) -> None:
        """request_narratives: queues narratives for users about to be refreshed
        (None: this process queues none from events); on_warmed: called in this
        thread when the warm list has been worked off (the server freezes its heap)."""
        self.on_warmed = on_warmed
        self.shared = shared
        self.request_narratives = request_narratives
        self._cond = threading.Condition()
        self._dirty: dict[str, float] = {}  # user -> when the first of their new events was accepted (monotonic s)
        self._busy = 0
        self._lag_ms: deque[float] = deque(maxlen=LAG_WINDOW)
        self._last_at: int | None = None
        self._retention_at = 0.0  # monotonic s of the next retention pass
        self._to_warm: deque[str] = deque()  # users whose interest states are built ahead of their next event

    # ------------------------------------------------------------------ callers
    def mark(self, users: Sequence[str]) -> None:
        now = time.monotonic()
        users = self.shared.mine(users)
        with self._cond:
            for user in users:
                self._dirty.setdefault(user, now)
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def ensure_fresh(self, user_id: str) -> None:
        if not self.shared.services.store.is_lagging(user_id):
            return
        try:
            report = self.refresh_lagging([user_id])
        except Exception as exc:
            self.shared.book.error("ensure_fresh", exc)
            raise
        if report is not None:
            self.shared.book.count(ensure_fresh_refreshes=1)

    def expire(self, force: bool = False) -> dict[str, Any] | None:
        """Retention (settings.retention_days): at most every RETENTION_CHECK_S (or now,
        with `force`), delete the events past it and rebuild the users' profiles
        under their locks; their narratives are requested again."""
        days = self.shared.settings.retention_days
        if not days or (not force and time.monotonic() < self._retention_at):
            return None
        self._retention_at = time.monotonic() + RETENTION_CHECK_S
        refresher = self.refresher()
        refresher.incremental = self.shared.interest_states
        out = refresher.apply_retention(days, items=self.shared.catalog.get(), hold=self.shared.locks.hold,
                                        request_narratives=self.request_narratives)
        if out.get("events"):
            log.info("retention: deleted %d events older than %g days; rebuilt %d profiles, removed %d",
                     out["events"], days, out["profiles_rebuilt"], out["profiles_removed"])
            self.shared.book.count(retention_deleted_events=out["events"])
        return out

    def _retention_wait(self) -> float | None:
        if not self.shared.settings.retention_days:
            return None
        return max(0.05, self._retention_at - time.monotonic())

    def refresh_now(self, users: Sequence[str] | None, all_users: bool,
                    queue_narratives: Callable[[Sequence[str]], None] | None) -> dict[str, Any]:
        """Admin: refresh the given users, all, or else the stale ones, now;
        their narratives are queued first through `queue_narratives`, if given.
        Retention, when set, runs first."""
        start = time.perf_counter()
        self.expire(force=True)
        refresher = self.refresher()
        chosen = refresher.select_users(list(users) if users else None, all_users=all_users)
        if queue_narratives is not None and chosen:
            queue_narratives(chosen)
        totals: Counter[str] = Counter()
        for offset in range(0, len(chosen), LIVE_BATCH):
            chunk = chosen[offset : offset + LIVE_BATCH]
            with self.shared.locks.hold(chunk):
                report = refresher.refresh(chunk, narratives=False, items=self.shared.catalog.get())
            totals.update(new_versions=report.new_versions, unchanged=report.unchanged)
        self.shared.book.count(admin_refreshed_users=len(chosen))
        return {"users": len(chosen), "new_versions": totals["new_versions"], "unchanged": totals["unchanged"],
                "seconds": round(time.perf_counter() - start, 3)}

    def stats(self, counts: dict[str, int]) -> dict[str, Any]:
        with self._cond:
            pending, lag = len(self._dirty) + self._busy, percentiles(self._lag_ms)
        return {
            "pending_users": pending,
            "refreshed_users": counts.get("live_refreshed_users", 0),
            "new_versions": counts.get("live_new_versions", 0),
            "batches": counts.get("live_batches", 0),
            "ensure_fresh_refreshes": counts.get("ensure_fresh_refreshes", 0),  # of refreshed_users
            "interest_states": dict(self.shared.interest_states.counts),  # built (first touch or repair), updated, warmed
            "warming_users": len(self._to_warm),  # still to be warmed ahead of their next event
            "admin_refreshed_users": counts.get("admin_refreshed_users", 0),
            "last_refresh_at": iso_or_none(self._last_at),
            "lag_ms": lag,  # event accepted -> profile and its vectors saved, by the live thread
        }

    # ------------------------------------------------------------------ the thread
    def loop(self) -> None:
        """Takes up users whose events outran their profile (a crash, another
        process), then batches of marked users until stopped and flushed; while
        none are marked, warms the interest states of the most recently active users."""
        store = self.shared.services.store
        try:
            stale = store.lagging_users()
            self._to_warm.extend(self.shared.mine(store.recent_users(self.shared.interest_states.max_users)))
        except Exception as exc:
            self.shared.book.error("live", exc)
            stale = []
        if stale:
            log.info("live updates: %d users have events newer than their profile; refreshing them", len(stale))
            self.mark(stale)
        stopping = self.shared.stopping
        while True:
            try:
                self.expire()
            except Exception as exc:
                self.shared.book.error("retention", exc)
            batch: dict[str, float] = {}
            with self._cond:
                while not self._dirty and not self._to_warm and not stopping.is_set():
                    wait = self._retention_wait()
                    if not self._cond.wait(wait) and wait is not None and self._retention_wait() <= 0.05:
                        break  # time for a retention pass
                if self._dirty:
                    users = list(itertools.islice(self._dirty, LIVE_BATCH))
                    batch = {user: self._dirty.pop(user) for user in users}
                    self._busy = len(batch)
                elif stopping.is_set():
                    return  # stopping, and everything is flushed
            if not batch:
                self._warm_some()
                continue
            try:
                self._refresh_batch(batch)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()

    def _warm_some(self) -> None:
        """One chunk of the warm list: marked users wait at most this long."""
        chunk = [self._to_warm.popleft() for _ in range(min(WARM_CHUNK, len(self._to_warm)))]
        if not chunk:
            return
        try:
            with self.shared.locks.hold(chunk):
                self.shared.interest_states.warm(self.shared.services.store, chunk, self.shared.catalog.get(),
                                                 InterestConfig.from_settings(self.shared.settings))
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation: the users are built on first touch
            self.shared.book.error("warm", exc)
            self._to_warm.clear()
        if not self._to_warm and self.on_warmed is not None:
            self.on_warmed()

    def flush(self) -> None:
        """Without the thread (never started): refresh the marked users here."""
        with self._cond:
            pending, self._dirty = self._dirty, {}
        users = list(pending)
        for offset in range(0, len(users), LIVE_BATCH):
            self._refresh_batch({u: pending[u] for u in users[offset : offset + LIVE_BATCH]})

    # ------------------------------------------------------------------ the work
    def refresher(self) -> "Refresher":
        """The Refresher without the LLM; its profile hooks run for users whose
        locks the caller holds."""
        refresher = self.shared.services.refresher(narratives=False)
        refresher.hooks = [self.shared.current_versions_only(h, lock=False) for h in refresher.hooks]
        return refresher

    def refresh_lagging(self, users: Sequence[str]) -> "RefreshReport | None":
        """Refresh those of `users` whose profile is behind their events, one
        writer per user in this process (the store settles races between processes)."""
        shared = self.shared
        with shared.locks.hold(users):
            stale = shared.services.store.lagging_users(users)
            if not stale:
                return None
            if self.request_narratives is not None:
                self.request_narratives(stale)  # before the refresh: a crash in between loses nothing
            refresher = self.refresher()
            refresher.incremental = shared.interest_states  # event by event; a state found out of date is rebuilt
            report = refresher.refresh(stale, narratives=False, items=shared.catalog.get())
        shared.book.count(live_refreshed_users=report.users, live_new_versions=report.new_versions, live_batches=1)
        self._last_at = now_ms()
        return report

    def _refresh_batch(self, batch: dict[str, float]) -> None:
        """batch: user -> when their events were first accepted."""
        try:
            self._note_lag(batch, self.refresh_lagging(list(batch)))
            return
        except Exception as exc:
            if len(batch) == 1:
                self.shared.book.error("live", exc)
                return
            log.warning("live updates: a batch of %d users failed (%s); retrying one by one", len(batch), exc)
        for user, since in batch.items():  # one bad user must not hold back the others
            try:
                self._note_lag({user: since}, self.refresh_lagging([user]))
            except Exception as exc:
                self.shared.book.error("live", exc, user)

    def _note_lag(self, batch: dict[str, float], report: "RefreshReport | None") -> None:
        """The lag of the users this thread refreshed (profile and vectors saved); a user
        another writer had already brought up to date is not this thread's to count."""
        done = time.monotonic()
        refreshed = report.versions if report is not None else {}
        with self._cond:
            self._lag_ms.extend((done - since) * 1000 for user, since in batch.items() if user in refreshed)
