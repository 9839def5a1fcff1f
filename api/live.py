"""Live updates for `tastebud serve`: profiles follow events within a second,
narratives follow in the background, the item side follows slowly.

Three daemon threads per server process, all fed from the event store, so
several API processes can share one database:

- **live**: coalesces users with new events (a set under a condition) and
  runs the computed refresh (no LLM) in small batches; the App's profile hook
  writes their profile vectors to Chroma in the same step. `ensure_fresh` does
  the same for one user synchronously when the store says its profile is
  behind its events, so a read never misses the caller's own writes,
  whichever process took them. Negative feedback needs none of this: the
  recommender filters from the user's events, read at request time.
  (Vectors are not deferred to a thread of their own: a request for a user
  whose vectors lag their profile version encodes them on the fly, so a
  deferred sync made requests pay for the same encoding twice; measured with
  bench/serve.py, most of the server's CPU went there.)
- **narratives**: a durable queue (`narrative_queue`, one row per user). A
  user's row is written before their computed refresh, so a crash never loses
  the request; the worker waits `narrative_debounce_s` after the user's latest
  request (a burst is one narrative), leases a batch of `llm.concurrency`
  rows (vLLM batches them; the embedded server takes one at a time), runs the
  Refresher with the LLM and deletes the rows it covered. Failures back off;
  a model that errs or times out leaves the deterministic template.
- **item side**: co-occurrence and popularity move slowly, so they are rebuilt
  after `item_side_refresh_events` new events or `item_side_refresh_s`
  seconds, off-lock, and swapped in; new catalog items are embedded first.

Ingestion never waits for any of it: `events_accepted` only marks users.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import delete, func, or_, select, update

from tastebud.profiles.migrations import events, items, narrative_queue, profile_heads
from tastebud.timefmt import iso_or_none

if TYPE_CHECKING:
    from tastebud.profiles.refresh import Refresher, RefreshReport
    from tastebud.app import App

log = logging.getLogger("tastebud.live")

LIVE_BATCH = 8  # users per computed refresh: small, so a read waiting on one of them is not kept long
CATALOG_TTL_S = 60.0  # the catalog kept for refreshes is read again after this, or when it grows
LAG_WINDOW = 2000  # recent lags kept for the percentiles in stats()
NARRATIVE_RESCAN_S = 10.0  # how often the table is read for work of other processes and retries
NARRATIVE_MAX_BACKOFF_S = 300.0
ITEM_SIDE_POLL_S = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50": round(pick(0.50), 1), "p95": round(pick(0.95), 1)}


class _UserLocks:
    """One lock per user being refreshed in this process, made on demand and
    dropped when nobody holds or waits for it. Batches take theirs in sorted
    order, so two batches never deadlock."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # user -> [lock, holders and waiters]

    @contextmanager
    def hold(self, users: Iterable[str]) -> Iterator[None]:
        ordered = sorted(set(users))
        with self._guard:
            entries = []
            for user in ordered:
                entry = self._locks.setdefault(user, [threading.Lock(), 0])
                entry[1] += 1
                entries.append(entry)
        acquired = []
        try:
            for entry in entries:
                entry[0].acquire()
                acquired.append(entry)
            yield
        finally:
            for entry in acquired:
                entry[0].release()
            with self._guard:
                for user, entry in zip(ordered, entries):
                    entry[1] -= 1
                    if entry[1] == 0:
                        del self._locks[user]


class LiveUpdates:
    def __init__(self, app: "App", *, narratives: bool = True) -> None:
        """narratives: run the narrative worker in this process (the server
        passes `settings.serve_narratives`); without it no requests are queued
        from events, though an admin refresh may still queue them."""
        self.app = app
        self.settings = app.settings
        self.narratives = narratives
        self._user_locks = _UserLocks()
        self._stopping = threading.Event()
        self._started = False
        self._threads: list[threading.Thread] = []
        # live: users with new events -> when the first of them was accepted (monotonic s)
        self._live = threading.Condition()
        self._dirty: dict[str, float] = {}
        self._live_busy = 0
        self._live_lag_ms: deque[float] = deque(maxlen=LAG_WINDOW)
        # narratives: user -> when it is due (epoch s); the table holds the rest
        self._narr = threading.Condition()
        self._narr_due: dict[str, float] = {}
        self._narr_overflow = False
        self._narr_rescan_at = 0.0
        self._narr_in_flight = 0
        self._narr_refresher: "Refresher | None" = None
        self._narr_refresher_items = -1
        # item side
        self._side_marks: tuple[int, int] | None = None
        self._side_built_at: float | None = None
        self._side_build_s: float | None = None
        # stats
        self._stats_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_error: dict[str, Any] | None = None
        self._last_live_at: int | None = None
        # the catalog, kept: reading a heavy user's items costs more than the rest of their refresh
        self._catalog_lock = threading.Lock()
        self._catalog_items: dict[str, Any] | None = None
        self._catalog_count = -1
        self._catalog_read_at = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the threads; queued narrative work and users whose events outran
        their profile (a crash, another process) are taken up again."""
        if self._started:
            return
        self._started = True
        self._catalog()  # read once here rather than in the first request that refreshes a user
        if self.settings.item_side_refresh_events > 0 or self.settings.item_side_refresh_s > 0:
            # the served item side is at least this fresh (it is built lazily from here on)
            self._side_marks, self._side_built_at = self._catalog_marks(), time.time()
        workers: list[tuple[str, Callable[[], None]]] = [("tastebud-live", self._live_loop)]
        if self.narratives:
            workers.append(("tastebud-narratives", self._narrative_loop))
        if self.settings.item_side_refresh_events > 0 or self.settings.item_side_refresh_s > 0:
            workers.append(("tastebud-item-side", self._item_side_loop))
        for name, target in workers:
            thread = threading.Thread(target=self._run_forever, args=(name, target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, flush pending computed refreshes (they are cheap), let
        an in-flight narrative batch finish or time out, join the threads. Queued
        narratives stay in the table for the next start."""
        self._stopping.set()
        for cond in (self._live, self._narr):
            with cond:
                cond.notify_all()
        if not self._started:
            self._flush_unstarted()
            return
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("live updates: %s still running after %.1f s; queued work stays in the store", ", ".join(alive), timeout)

    def _flush_unstarted(self) -> None:
        with self._live:
            pending, self._dirty = self._dirty, {}
        users = list(pending)
        for offset in range(0, len(users), LIVE_BATCH):
            self._refresh_batch({u: pending[u] for u in users[offset : offset + LIVE_BATCH]})

    def _run_forever(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - a loop returns only on stop; anything else is a bug
            self._record_error(name, exc)
            log.critical("live updates: thread %s died", name, exc_info=True)

    # ------------------------------------------------------------------ the API's calls
    def events_accepted(self, user_ids: Iterable[str]) -> None:
        """Mark users whose events were just stored; returns at once."""
        if self._stopping.is_set():
            return  # their profiles are stale in the store: the next start or read catches up
        users = [str(u) for u in dict.fromkeys(user_ids) if u]
        if not users:
            return
        now = time.monotonic()
        with self._live:
            for user in users:
                self._dirty.setdefault(user, now)
            self._live.notify()

    def ensure_fresh(self, user_id: str) -> None:
        """Read-your-writes: if the store has events of this user newer than their
        profile (whichever process took them), refresh the user now."""
        if not self.app.store.is_stale(user_id):
            return
        try:
            report = self._refresh_computed([user_id])
        except Exception as exc:
            self._record_error("ensure_fresh", exc)
            raise
        if report is not None:
            self._count(ensure_fresh_refreshes=1)

    def refresh(self, users: Sequence[str] | None, all_users: bool, narratives: bool) -> dict[str, Any]:
        """Admin: the computed refresh now (given users, all, or else the stale
        ones); narratives, if asked for, are queued for the narrative worker."""
        start = time.perf_counter()
        refresher = self._computed_refresher()
        chosen = refresher.select_users(list(users) if users else None, all_users=all_users)
        if narratives and chosen:
            self._request_narratives(chosen)
        totals: Counter[str] = Counter()
        for offset in range(0, len(chosen), LIVE_BATCH):
            chunk = chosen[offset : offset + LIVE_BATCH]
            with self._user_locks.hold(chunk):
                report = refresher.refresh(chunk, narratives=False, items=self._catalog())
            totals.update(new_versions=report.new_versions, unchanged=report.unchanged)
        self._count(admin_refreshed_users=len(chosen))
        return {
            "users": len(chosen),
            "new_versions": totals["new_versions"],
            "unchanged": totals["unchanged"],
            "narratives_queued": len(chosen) if narratives else 0,
            "narrative_worker": self.narratives and self._started and not self._stopping.is_set(),
            "seconds": round(time.perf_counter() - start, 3),
        }

    def stats(self) -> dict[str, Any]:
        """For /v1/status: what is pending, what was done, the last error."""
        with self._live:
            pending_users = len(self._dirty) + self._live_busy
            live_lag = _percentiles(self._live_lag_ms)
        with self._narr:
            in_memory, in_flight = len(self._narr_due), self._narr_in_flight
        with self._stats_lock:
            counts = dict(self._counts)
            last_error = dict(self._last_error) if self._last_error else None
        queue_depth = events_since_build = None
        try:
            with self.app.store.engine.connect() as conn:
                queue_depth = conn.execute(select(func.count()).select_from(narrative_queue)).scalar_one()
            if self._side_marks is not None:
                events_since_build = self._catalog_marks()[0] - self._side_marks[0]
        except Exception as exc:  # noqa: BLE001 - status must answer even when the store does not
            last_error = {"where": "stats", "message": f"{type(exc).__name__}: {exc}", "at": iso_or_none(_now_ms())}
        return {
            "running": self._started and not self._stopping.is_set(),
            "live": {
                "pending_users": pending_users,
                "refreshed_users": counts.get("live_refreshed_users", 0),
                "new_versions": counts.get("live_new_versions", 0),
                "batches": counts.get("live_batches", 0),
                "ensure_fresh_refreshes": counts.get("ensure_fresh_refreshes", 0),  # of refreshed_users
                "admin_refreshed_users": counts.get("admin_refreshed_users", 0),
                "last_refresh_at": iso_or_none(self._last_live_at),
                "lag_ms": live_lag,  # event accepted -> profile and its vectors saved, by the live thread
            },
            "narratives": {
                "enabled": self.narratives,
                "queue_depth": queue_depth,
                "in_memory": in_memory,
                "in_flight": in_flight,
                "processed": counts.get("narratives_processed", 0),
                "llm": counts.get("narratives_llm", 0),
                "template": counts.get("narratives_template", 0),
                "kept": counts.get("narratives_kept", 0),
                "llm_errors": counts.get("narrative_llm_errors", 0),
                "failed_batches": counts.get("narrative_failed_batches", 0),
            },
            "item_side": {
                "rebuilds": counts.get("item_side_rebuilds", 0),
                "age_s": round(time.time() - self._side_built_at, 1) if self._side_built_at else None,
                "events_since_rebuild": events_since_build,
                "last_build_s": self._side_build_s,
            },
            "errors": counts.get("errors", 0),
            "last_error": last_error,
        }

    # ------------------------------------------------------------------ computed refresh
    def _computed_refresher(self) -> "Refresher":
        """The Refresher without the LLM; its profile hooks run for users whose
        locks the caller holds."""
        refresher = self.app.refresher(narratives=False)
        refresher.hooks = [self._current_versions_only(h, lock=False) for h in refresher.hooks]
        return refresher

    def _current_versions_only(self, hook: Callable[[list[dict[str, Any]]], None], lock: bool
                               ) -> Callable[[list[dict[str, Any]]], None]:
        """A profile hook that skips versions older than the user's head: the live
        and narrative threads may finish out of order, and Chroma should end up
        with the newest profile's vectors. With `lock`, it takes the users' locks
        (the narrative thread does not hold them during its long LLM calls)."""

        def current(profiles: list[dict[str, Any]]) -> None:
            users = [p["user_id"] for p in profiles]
            with self.app.store.engine.connect() as conn:
                heads = dict(conn.execute(
                    select(profile_heads.c.user_id, profile_heads.c.version).where(profile_heads.c.user_id.in_(users))
                ).all())
            newest = [p for p in profiles if int(p.get("version") or 0) >= heads.get(p["user_id"], 0)]
            if newest:
                hook(newest)

        def run(profiles: list[dict[str, Any]]) -> None:
            if lock:
                with self._user_locks.hold(p["user_id"] for p in profiles):
                    current(profiles)
            else:
                current(profiles)

        return run

    def _refresh_computed(self, users: Sequence[str]) -> "RefreshReport | None":
        """Refresh those of `users` whose profile is behind their events, one
        writer per user in this process (the store settles races between processes)."""
        with self._user_locks.hold(users):
            stale = self.app.store.stale_users(users)
            if not stale:
                return None
            if self.narratives:
                self._request_narratives(stale)  # before the refresh: a crash in between loses nothing
            report = self._computed_refresher().refresh(stale, narratives=False, items=self._catalog())
        self._count(live_refreshed_users=report.users, live_new_versions=report.new_versions, live_batches=1)
        self._last_live_at = _now_ms()
        return report

    def _item_count(self) -> int:
        with self.app.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(items)).scalar_one()

    def _catalog(self) -> dict[str, Any]:
        """The whole catalog, read again when it grew or after CATALOG_TTL_S (edits)."""
        count = self._item_count()
        with self._catalog_lock:
            if (self._catalog_items is None or count != self._catalog_count
                    or time.monotonic() - self._catalog_read_at > CATALOG_TTL_S):
                self._catalog_items = self.app.store.items_by_id()
                self._catalog_count, self._catalog_read_at = len(self._catalog_items), time.monotonic()
            return self._catalog_items

    def _live_loop(self) -> None:
        try:
            stale = self.app.store.stale_users()
        except Exception as exc:
            self._record_error("live", exc)
            stale = []
        if stale:
            log.info("live updates: %d users have events newer than their profile; refreshing them", len(stale))
            now = time.monotonic()
            with self._live:
                for user in stale:
                    self._dirty.setdefault(user, now)
        while True:
            with self._live:
                while not self._dirty and not self._stopping.is_set():
                    self._live.wait()
                if not self._dirty:
                    return  # stopping, and everything is flushed
                users = list(itertools.islice(self._dirty, LIVE_BATCH))
                batch = {user: self._dirty.pop(user) for user in users}
                self._live_busy = len(batch)
            try:
                self._refresh_batch(batch)
            finally:
                with self._live:
                    self._live_busy = 0
                    self._live.notify_all()

    def _refresh_batch(self, batch: dict[str, float]) -> None:
        """batch: user -> when their events were first accepted."""
        try:
            self._refresh_computed(list(batch))
            self._note_live_lag(batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                self._record_error("live", exc)
                return
            log.warning("live updates: a batch of %d users failed (%s); retrying one by one", len(batch), exc)
        for user, since in batch.items():  # one bad user must not hold back the others
            try:
                self._refresh_computed([user])
                self._note_live_lag({user: since})
            except Exception as exc:
                self._record_error("live", exc, user)

    def _note_live_lag(self, batch: dict[str, float]) -> None:
        done = time.monotonic()
        with self._live:
            self._live_lag_ms.extend((done - since) * 1000 for since in batch.values())

    # ------------------------------------------------------------------ narratives
    def _request_narratives(self, users: Sequence[str]) -> None:
        """Upsert queue rows (a new request moves requested_at, keeping any backoff)
        and remember as many as fit in memory; the table keeps the rest."""
        now_ms = _now_ms()
        store = self.app.store
        if store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(narrative_queue)
        stmt = stmt.on_conflict_do_update(index_elements=[narrative_queue.c.user_id],
                                          set_={"requested_at": stmt.excluded.requested_at})
        with store.transaction() as conn:
            conn.execute(stmt, [{"user_id": u, "requested_at": now_ms, "attempts": 0} for u in users])
        due = now_ms / 1000 + self.settings.narrative_debounce_s
        with self._narr:
            for user in users:
                if user in self._narr_due or len(self._narr_due) < self.settings.narrative_queue_size:
                    self._narr_due[user] = due  # a later request pushes the narrative back: bursts coalesce
                else:
                    self._narr_overflow = True
            self._narr.notify()

    def _narrative_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                now = time.time()
                with self._narr:
                    rescan = now >= self._narr_rescan_at or (
                        self._narr_overflow and len(self._narr_due) < self.settings.narrative_queue_size // 2)
                if rescan:
                    self._rescan_queue()
                    self._narr_rescan_at = now + NARRATIVE_RESCAN_S
                with self._narr:
                    due = sorted((t, u) for u, t in self._narr_due.items() if t <= now)
                    if not due:
                        wake = min([self._narr_rescan_at, *self._narr_due.values()])
                        self._narr.wait(timeout=min(NARRATIVE_RESCAN_S, max(0.05, wake - now)))
                        continue
                batch_size = max(1, self.app.llm.concurrency)  # may start the embedded server, once
                with self._narr:
                    batch = [u for _, u in due[:batch_size] if u in self._narr_due]
                    for user in batch:
                        del self._narr_due[user]
                    self._narr_in_flight = len(batch)
                try:
                    self._write_narratives(batch)
                finally:
                    with self._narr:
                        self._narr_in_flight = 0
                failures = 0
            except Exception as exc:
                failures += 1
                self._record_error("narratives", exc)
                self._stopping.wait(min(NARRATIVE_MAX_BACKOFF_S, 2.0 ** failures))

    def _rescan_queue(self) -> None:
        """Rows in the table but not in memory: left by a restart, queued while
        memory was full, backed off, or queued by another process."""
        size = self.settings.narrative_queue_size
        with self.app.store.engine.connect() as conn:
            rows = conn.execute(
                select(narrative_queue.c.user_id, narrative_queue.c.requested_at, narrative_queue.c.not_before)
                .order_by(narrative_queue.c.requested_at).limit(size)
            ).all()
        debounce = self.settings.narrative_debounce_s
        with self._narr:
            for user, requested_at, not_before in rows:
                if user in self._narr_due:
                    continue
                if len(self._narr_due) >= size:
                    break
                self._narr_due[user] = max(requested_at / 1000 + debounce, (not_before or 0) / 1000)
            self._narr_overflow = len(rows) >= size

    def _lease_s(self) -> float:
        """How long a taken row is ours: two LLM calls per user, each bounded by llm_timeout."""
        return 2 * self.settings.llm_timeout + 60

    def _claim(self, users: Sequence[str]) -> dict[str, int]:
        """Lease the rows that are due and not leased by another worker; user -> requested_at."""
        now_ms = _now_ms()
        q = narrative_queue
        claimed: list[str] = []
        with self.app.store.transaction() as conn:
            for user in users:
                taken = conn.execute(
                    update(q).where(q.c.user_id == user, or_(q.c.not_before.is_(None), q.c.not_before <= now_ms))
                    .values(not_before=now_ms + int(self._lease_s() * 1000))
                ).rowcount
                if taken:
                    claimed.append(user)
            rows = conn.execute(select(q.c.user_id, q.c.requested_at).where(q.c.user_id.in_(claimed))).all() if claimed else []
        return dict(rows)

    def _narrative_refresher(self) -> "Refresher":
        """Built again when the catalog grows (the grounding checker knows its titles)."""
        n_items = self._item_count()
        if self._narr_refresher is None or n_items != self._narr_refresher_items:
            refresher = self.app.refresher(narratives=True)
            refresher.hooks = [self._current_versions_only(h, lock=True) for h in refresher.hooks]
            self._narr_refresher, self._narr_refresher_items = refresher, n_items
        return self._narr_refresher

    def _write_narratives(self, batch: list[str]) -> None:
        claimed = self._claim(batch)
        if len(claimed) < len(batch):  # leased elsewhere or backing off: the table says when
            self._narr_rescan_at = 0.0
        if not claimed:
            return
        store = self.app.store
        q = narrative_queue
        with store.engine.connect() as conn:
            has_profile = set(conn.execute(
                select(profile_heads.c.user_id).where(profile_heads.c.user_id.in_(list(claimed)))
            ).scalars())
        ready = [u for u in batch if u in has_profile]
        for user in [u for u in claimed if u not in has_profile]:
            if store.user_exists(user):  # its computed profile is on the way: come back after it
                self._release(user, requeue_in=max(1.0, self.settings.narrative_debounce_s))
            else:
                with store.transaction() as conn:
                    conn.execute(delete(q).where(q.c.user_id == user))
        if not ready:
            return
        try:
            report = self._narrative_refresher().refresh(ready, narratives=True, items=self._catalog())
        except Exception as exc:
            self._count(narrative_failed_batches=1)
            self._record_error("narratives", exc)
            self._back_off(ready, exc)
            return
        self._count(narratives_processed=len(ready), narratives_llm=report.narratives_llm,
                    narratives_template=report.narratives_template, narratives_kept=report.narratives_kept,
                    narrative_llm_errors=len(report.narrative_errors))
        for user, error in report.narrative_errors.items():
            self._record_error("narratives", error, user, with_traceback=False)
        with store.transaction() as conn:
            for user in ready:  # a request newer than the one we served keeps its row
                conn.execute(delete(q).where(q.c.user_id == user, q.c.requested_at <= claimed[user]))
            newer = conn.execute(select(q.c.user_id, q.c.requested_at).where(q.c.user_id.in_(ready))).all()
            if newer:
                conn.execute(update(q).where(q.c.user_id.in_([u for u, _ in newer])).values(not_before=None, attempts=0))
        with self._narr:
            for user, requested_at in newer:
                self._narr_due[user] = max(self._narr_due.get(user, 0.0),
                                           requested_at / 1000 + self.settings.narrative_debounce_s)

    def _release(self, user: str, requeue_in: float) -> None:
        with self.app.store.transaction() as conn:
            conn.execute(update(narrative_queue).where(narrative_queue.c.user_id == user)
                         .values(not_before=_now_ms() + int(requeue_in * 1000)))
        with self._narr:
            self._narr_due[user] = time.time() + requeue_in

    def _back_off(self, users: Sequence[str], exc: BaseException) -> None:
        q = narrative_queue
        message = f"{type(exc).__name__}: {exc}"[:500]
        base = max(1.0, self.settings.narrative_debounce_s)
        with self.app.store.transaction() as conn:
            rows = dict(conn.execute(select(q.c.user_id, q.c.attempts).where(q.c.user_id.in_(list(users)))).all())
            for user, attempts in rows.items():
                delay = min(NARRATIVE_MAX_BACKOFF_S, base * 2 ** attempts)
                conn.execute(update(q).where(q.c.user_id == user).values(
                    attempts=attempts + 1, last_error=message, not_before=_now_ms() + int(delay * 1000)))
                with self._narr:
                    self._narr_due[user] = time.time() + delay

    # ------------------------------------------------------------------ item side
    def _catalog_marks(self) -> tuple[int, int]:
        """(last event seq, number of items): what the item side is behind on."""
        with self.app.store.engine.connect() as conn:
            last_seq = conn.execute(select(func.max(events.c.seq))).scalar() or 0
            n_items = conn.execute(select(func.count()).select_from(items)).scalar_one()
        return last_seq, n_items

    def _item_side_loop(self) -> None:
        every_events = self.settings.item_side_refresh_events
        every_s = self.settings.item_side_refresh_s
        poll = min(ITEM_SIDE_POLL_S, every_s) if every_s > 0 else ITEM_SIDE_POLL_S
        while not self._stopping.wait(poll):
            try:
                marks = self._catalog_marks()
                assert self._side_marks is not None and self._side_built_at is not None
                new_events = marks[0] - self._side_marks[0]
                new_items = marks[1] != self._side_marks[1]
                if not (new_events > 0 or new_items):
                    continue
                by_count = every_events > 0 and new_events >= every_events
                by_time = every_s > 0 and time.time() - self._side_built_at >= every_s
                if by_count or by_time:
                    self._rebuild_item_side(marks, new_items)
            except Exception as exc:
                self._record_error("item_side", exc)
                self._stopping.wait(min(60.0, max(poll, 5.0)))

    def _rebuild_item_side(self, marks: tuple[int, int], new_items: bool) -> None:
        from tastebud.retrieval.service import sync_item_vectors

        start = time.perf_counter()
        if new_items:  # embedded before the swap, so the new side has their vectors
            sync_item_vectors(self.app.store, self.app.vectors)
        self.app.recommendations.refresh_side()
        self._side_marks, self._side_built_at = marks, time.time()
        self._side_build_s = round(time.perf_counter() - start, 3)
        self._count(item_side_rebuilds=1)
        log.info("live updates: item side rebuilt in %.2f s (events up to seq %d, %d items)",
                 self._side_build_s, marks[0], marks[1])

    # ------------------------------------------------------------------ bookkeeping
    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            self._counts.update(deltas)

    def _record_error(self, where: str, error: BaseException | str, user: str | None = None,
                      with_traceback: bool = True) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if user is not None:
            message = f"user {user}: {message}"
        if with_traceback and isinstance(error, BaseException):
            log.error("live updates (%s): %s", where, message, exc_info=error)
        else:
            log.warning("live updates (%s): %s", where, message)
        with self._stats_lock:
            self._counts["errors"] += 1
            self._last_error = {"where": where, "message": message[:500], "at": iso_or_none(_now_ms())}
