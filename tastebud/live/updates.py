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
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from tastebud.live.computed import ComputedRefresh
from tastebud.live.item_side import ItemSideWorker
from tastebud.live.narratives import NarrativeWorker
from tastebud.live.support import Shared, now_ms
from tastebud.timefmt import iso_or_none

if TYPE_CHECKING:
    from tastebud.live.ports import LiveServices

log = logging.getLogger("tastebud.live")


class LiveUpdates:
    def __init__(self, services: "LiveServices", *, narratives: bool = True,
                 on_warmed: Callable[[], None] | None = None) -> None:
        """narratives: run the narrative worker in this process (the server
        passes `settings.serve_narratives`); without it no requests are queued
        from events, though an admin refresh may still queue them. on_warmed: see
        ComputedRefresh."""
        self.services = services
        self.narratives = narratives
        self._shared = Shared(services)
        self._narratives = NarrativeWorker(self._shared)
        self._computed = ComputedRefresh(self._shared, self._narratives.request if narratives else None, on_warmed)
        self._item_side = ItemSideWorker(self._shared)
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
        workers: list[tuple[str, Callable[[], None]]] = [("tastebud-live", self._computed.loop)]
        if self.narratives:
            workers.append(("tastebud-narratives", self._narratives.loop))
        if self._item_side.enabled:
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
            self._computed.flush()
            return
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("live updates: %s still running after %.1f s; queued work stays in the store",
                        ", ".join(alive), timeout)

    def _run_forever(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - a loop returns only on stop; anything else is a bug
            self._shared.book.error(name, exc)
            log.critical("live updates: thread %s died", name, exc_info=True)

    # ------------------------------------------------------------------ the callers' side
    def events_accepted(self, user_ids: Iterable[str]) -> None:
        """Mark users whose events were just stored; returns at once."""
        if self._shared.stopping.is_set():
            return  # their profiles are stale in the store: the next start or read catches up
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
        """What is pending, what was done, the last error."""
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
