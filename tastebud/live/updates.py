"""Live updates: profiles follow events within a second, narratives follow in
the background, the item side follows slowly.

Up to three daemon threads per process, all fed from the event store, so
several processes (API workers, a CLI daemon) can share one database:

- **live** (`computed.py`): the computed refresh of users with new events, and
  `ensure_fresh` for read-your-writes. Negative feedback needs none of this:
  the recommender filters from the user's events, read at request time.
- **narratives** (`narratives.py`): the durable queue, debounced, leased, backed off.
- **item side** (`item_side.py`): rebuilt after enough events or time, swapped in.

Ingestion never waits for any of it: `events_accepted` only marks users. The
workers take their services as a `LiveServices` (`ports.py`); the composition
root `tastebud.app.App` is one.

Roles (`settings.live_role`): `all` runs everything in this process. With
several API workers, `serve` runs one `live` process (the computed refresh,
narratives and retention, following the store: `follow.py`) and its workers as
`worker`: they keep the item side they serve from and `ensure_fresh` for
read-your-writes, and answer `stats()` from the file the live process writes.
A worker's request threads and a live thread shared one GIL, and the live
thread got about 40% of it under load (docs/design.md#serve-under-load).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from tastebud.live.computed import ComputedRefresh
from tastebud.live.follow import StoreFollower, merge_live_stats, published_stats, stats_dir, write_stats
from tastebud.live.item_side import ItemSideWorker
from tastebud.live.narratives import NarrativeWorker
from tastebud.live.support import Shared, now_ms
from tastebud.profiles.narrative_queue import NarrativeQueue
from tastebud.timefmt import iso_or_none

if TYPE_CHECKING:
    from tastebud.live.ports import LiveServices

log = logging.getLogger("tastebud.live")

ROLES = ("all", "worker", "live")


class LiveUpdates:
    def __init__(self, services: "LiveServices", *, narratives: bool = True,
                 on_warmed: Callable[[], None] | None = None, role: str = "all",
                 build_item_side: Callable[[int], None] | None = None, shard: tuple[int, int] | None = None) -> None:
        """narratives: run the narrative worker in this process (the server
        passes `settings.serve_narratives`; never in a `worker`); without it no
        requests are queued from events, though an admin refresh may still queue
        them. on_warmed: see ComputedRefresh. role: all, worker or live (above).
        build_item_side: see ItemSideWorker (the live process's). shard (i, n): a `live`
        process of n refreshes only its users (crc32 of the id, as `refresh --shard`);
        the first of them alone builds the item side."""
        if role not in ROLES:
            raise ValueError(f"unknown live role {role!r}; expected one of {ROLES}")
        self.services = services
        self.role = role
        self.narratives = narratives and role != "worker"
        self._shared = Shared(services, shard if role == "live" else None)
        self._narratives = NarrativeWorker(self._shared)
        request: Callable[[Sequence[str]], Any] | None = self._narratives.request if self.narratives else None
        if role == "worker" and narratives:  # a read's refresh here queues the narrative the live process writes
            request = NarrativeQueue(services.store).request
        self._computed = ComputedRefresh(self._shared, request, on_warmed)
        self._item_side = ItemSideWorker(self._shared, role, build_item_side)
        self.stats_path = stats_dir(services.settings.home) / ("live-stats.json" if shard is None or role != "live"
                                                               else f"live-stats-{shard[0]}of{shard[1]}.json")
        self._follower = StoreFollower(services.store, self._computed.mark, self._publish) if role == "live" else None
        self._started = False
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the threads; queued narrative work and users whose events outran
        their profile (a crash, another process) are taken up again."""
        if self._started:
            return
        self._started = True
        self._shared.catalog.get()  # read once here rather than in the first request that refreshes a user
        workers: list[tuple[str, Callable[[], None]]] = []
        if self._follower is not None:  # from the store's end: what came before is the computed loop's catch-up
            self._follower.start_at_end()
            workers.append(("tastebud-follow", self._follow))
        if self.role != "worker":
            workers.append(("tastebud-live", self._computed.loop))
        if self.narratives:
            workers.append(("tastebud-narratives", self._narratives.loop))
        builds = self.role != "live" or self._item_side.build_elsewhere is not None \
            or self.services.recommendations.cache_dir is not None  # a live process's side serves no request
        if self._item_side.enabled and builds and (self._shared.shard is None or self._shared.shard[0] == 0):
            self._item_side.mark_current()
            workers.append(("tastebud-item-side", self._item_side.loop))
        for name, target in workers:
            thread = threading.Thread(target=self._run_forever, args=(name, target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, flush pending computed refreshes (they are cheap), let
        an in-flight narrative batch finish or time out, join the threads. Queued
        narratives stay in the table for the next start."""
        self._shared.stopping.set()
        self._computed.wake()
        self._narratives.wake()
        if not self._started:
            if self.role != "worker":
                self._computed.flush()
            return
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("live updates: %s still running after %.1f s; queued work stays in the store",
                        ", ".join(alive), timeout)

    def _follow(self) -> None:
        assert self._follower is not None
        self._follower.loop(self._shared.stopping, lambda exc: self._shared.book.error("follow", exc))
        self._publish()  # the last figures, as stopped

    def _publish(self) -> None:
        try:
            shard = self._shared.shard
            write_stats(self.stats_path, {**self.stats(), "shard": f"{shard[0]}/{shard[1]}" if shard else None})
        except OSError as exc:
            self._shared.book.error("follow", exc, with_traceback=False)

    def _run_forever(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - a loop returns only on stop; anything else is a bug
            self._shared.book.error(name, exc)
            log.critical("live updates: thread %s died", name, exc_info=True)

    # ------------------------------------------------------------------ the callers' side
    def events_accepted(self, user_ids: Iterable[str]) -> None:
        """Mark users whose events were just stored; returns at once."""
        if self._shared.stopping.is_set() or self.role == "worker":
            return  # stale in the store: the live process, the next start or a read catches up
        users = [str(u) for u in dict.fromkeys(user_ids) if u]
        if users:
            self._computed.mark(users)

    def ensure_fresh(self, user_id: str) -> None:
        """Read-your-writes: if the store has events of this user newer than their
        profile (whichever process took them), refresh the user now."""
        self._computed.ensure_fresh(user_id)

    def drop_user(self, user_id: str) -> None:
        """Forget what this process keeps in memory of the user's profile (an opt-out)."""
        self._shared.interest_states.forget(user_id)

    def refresh(self, users: Sequence[str] | None, all_users: bool, narratives: bool) -> dict[str, Any]:
        """Admin: the computed refresh now (given users, all, or else the stale
        ones); narratives, if asked for, are queued for the narrative worker."""
        out = self._computed.refresh_now(users, all_users, self._narratives.request if narratives else None)
        seconds = out.pop("seconds")
        return {**out, "narratives_queued": out["users"] if narratives else 0,
                "narrative_worker": self.narratives and self._started and not self._shared.stopping.is_set(),
                "seconds": seconds}

    def stats(self) -> dict[str, Any]:
        """What is pending, what was done, the last error (a `worker`: the live
        process's, from its file, with this worker's own refreshes for reads)."""
        if self.role == "worker":
            return self._stats_of_live_process()
        counts, last_error = self._shared.book.snapshot()
        queue_depth = events_since_rebuild = None
        try:
            queue_depth = self._narratives.queue.depth()
            events_since_rebuild = self._item_side.events_since_rebuild()
        except Exception as exc:  # noqa: BLE001 - status must answer even when the store does not
            last_error = {"where": "stats", "message": f"{type(exc).__name__}: {exc}", "at": iso_or_none(now_ms())}
        return {
            "running": self._started and not self._shared.stopping.is_set(),
            "live": self._computed.stats(counts),
            "narratives": {"enabled": self.narratives, "queue_depth": queue_depth,
                           **self._narratives.stats(counts)},
            "item_side": self._item_side.stats(counts, events_since_rebuild),
            "errors": counts.get("errors", 0),
            "last_error": last_error,
        }

    def _stats_of_live_process(self) -> dict[str, Any]:
        counts, last_error = self._shared.book.snapshot()
        found, published = published_stats(self.stats_path.parent)  # a stopped one is listed, not counted
        out: dict[str, Any] = dict(published[0]) if published else {"running": False, "live": {}, "narratives": {}}
        if len(published) > 1:  # several live processes (shards): totals, and the worst lag of any
            out["live"] = merge_live_stats([s.get("live", {}) for s in published])
        out["live_processes"] = [{"pid": s.get("pid"), "shard": s.get("shard"), "current": s in published,
                                  "written_at": iso_or_none(int(s["written_at"] * 1000)) if s.get("written_at") else None}
                                 for s in found]
        for key in ("pid", "written_at", "shard"):  # one process's, said per process above
            out.pop(key, None)
        out.setdefault("live", {})["ensure_fresh_refreshes_here"] = counts.get("ensure_fresh_refreshes", 0)
        out["item_side"] = self._item_side.stats(counts, None)
        if counts.get("errors"):  # this worker's own (ensure_fresh, item side)
            out["worker_errors"], out["worker_last_error"] = counts["errors"], last_error
        return out
