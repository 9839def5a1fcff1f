"""What the three live workers share: per-user locks, the kept catalog, the
counters and last error behind `stats()`, and the hook wrapper that keeps
Chroma on each user's newest profile."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from sqlalchemy import func, select

from tastebud.profiles.incremental import IncrementalProfiles
from tastebud.profiles.refresh import in_shard
from tastebud.profiles.migrations import events, items
from tastebud.timefmt import iso_or_none

if TYPE_CHECKING:
    from tastebud.live.ports import LiveServices
    from tastebud.profiles.store import EventStore

log = logging.getLogger("tastebud.live")

CATALOG_TTL_S = 60.0  # the catalog kept for refreshes is read again after this, or when it grows

ProfileHook = Callable[[list[dict[str, Any]]], None]


def now_ms() -> int:
    return int(time.time() * 1000)


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50": round(pick(0.50), 1), "p95": round(pick(0.95), 1)}


class UserLocks:
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


class Book:
    """Counters and the last error, for stats()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_error: dict[str, Any] | None = None

    def count(self, **deltas: int) -> None:
        with self._lock:
            self._counts.update(deltas)

    def error(self, where: str, error: BaseException | str, user: str | None = None,
              with_traceback: bool = True) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if user is not None:
            message = f"user {user}: {message}"
        if with_traceback and isinstance(error, BaseException):
            log.error("live updates (%s): %s", where, message, exc_info=error)
        else:
            log.warning("live updates (%s): %s", where, message)
        with self._lock:
            self._counts["errors"] += 1
            self._last_error = {"where": where, "message": message[:500], "at": iso_or_none(now_ms())}

    def snapshot(self) -> tuple[dict[str, int], dict[str, Any] | None]:
        with self._lock:
            return dict(self._counts), dict(self._last_error) if self._last_error else None


def item_count(store: "EventStore") -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items)).scalar_one()


def freeze_heap() -> None:
    """Keep what a long-running worker holds out of the cyclic GC's sight. It holds
    about a million objects (item side, catalog, 1,600 per warmed interest state),
    and each full collection over them stalled the worker, every request and
    refresh with it, for 0.9-1.1 s, every ~30 s at 300 events/s (measured with
    gc.callbacks in `tastebud serve` under bench/serve.py). So: collect, freeze what
    is left, and from then on freeze the survivors of every full collection, so the
    next one scans only what was kept since (states grow with every event).
    Frozen objects are still freed by reference counting; what is lost is the
    collection of cycles among them: an object alive at a freeze that later ends in
    a reference cycle is never freed. Interest states, the bulk, have none
    (forgetting 300 warmed states freed 480k objects by reference counting; a
    collection after it found no garbage); `gc.get_freeze_count()` shows the rest."""
    gc.collect()
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def process_stats() -> dict[str, Any]:
    """What a long run of a server worker is watched for: its memory, and what the
    frozen heap holds (freeze_heap never frees cycles among frozen objects, so a
    soak run watches both grow or level off)."""
    rss = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass  # not Linux: leave it out rather than guess
    generations = gc.get_stats()
    return {"pid": os.getpid(), "rss_bytes": rss,
            "gc": {"frozen": gc.get_freeze_count(), "tracked_by_generation": list(gc.get_count()),
                   "collections_by_generation": [g["collections"] for g in generations],
                   "freezes_survivors": _freeze_survivors in gc.callbacks}}


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def catalog_marks(store: "EventStore") -> tuple[int, int]:
    """(last event seq, number of items): what the item side is behind on."""
    with store.engine.connect() as conn:
        last_seq = conn.execute(select(func.max(events.c.seq))).scalar() or 0
        n_items = conn.execute(select(func.count()).select_from(items)).scalar_one()
    return last_seq, n_items


class Catalog:
    """The whole catalog, kept: reading a heavy user's items costs more than the
    rest of their refresh. Read again when it grew or after CATALOG_TTL_S (edits)."""

    def __init__(self, store: "EventStore") -> None:
        self.store = store
        self._lock = threading.Lock()
        self._items: dict[str, Any] | None = None
        self._count = -1
        self._read_at = 0.0

    def get(self) -> dict[str, Any]:
        count = item_count(self.store)
        with self._lock:
            if (self._items is None or count != self._count
                    or time.monotonic() - self._read_at > CATALOG_TTL_S):
                self._items = self.store.items_by_id()
                self._count, self._read_at = len(self._items), time.monotonic()
            return self._items


class Shared:
    """What every worker of one LiveUpdates holds: the services, locks, the
    stop flag, the book and the catalog."""

    def __init__(self, services: "LiveServices", shard: tuple[int, int] | None = None) -> None:
        """shard (i, n): this process refreshes only the users `in_shard` (a live process
        of several; the others take the rest)."""
        self.services = services
        self.shard = shard
        self.settings = services.settings
        self.locks = UserLocks()
        self.stopping = threading.Event()
        self.book = Book()
        self.catalog = Catalog(services.store)
        self.interest_states = IncrementalProfiles()  # the live refresh updates these; admin refreshes recompute

    def mine(self, users: Iterable[str]) -> list[str]:
        return [u for u in users if in_shard(u, self.shard)]

    def current_versions_only(self, hook: ProfileHook, lock: bool) -> ProfileHook:
        """A profile hook that skips versions older than the user's head: the live
        and narrative threads may finish out of order, and Chroma should end up
        with the newest profile's vectors. With `lock`, it takes the users' locks
        (the narrative thread does not hold them during its long LLM calls)."""

        def current(profiles: list[dict[str, Any]]) -> None:
            heads = self.services.profiles.head_versions([p["user_id"] for p in profiles])
            newest = [p for p in profiles if int(p.get("version") or 0) >= heads.get(p["user_id"], 0)]
            if newest:
                hook(newest)

        def run(profiles: list[dict[str, Any]]) -> None:
            if lock:
                with self.locks.hold(p["user_id"] for p in profiles):
                    current(profiles)
            else:
                current(profiles)

        return run
