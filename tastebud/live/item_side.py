"""The item side (co-occurrence, popularity) moves slowly: it is rebuilt after
`item_side_refresh_events` new events or `item_side_refresh_s` seconds,
off-lock, and swapped in; new catalog items are embedded first.

Beside a live process (role `worker`), a worker does not build: the live process
publishes each side it builds to the home's cache and the workers load it
(without a disk cache, PostgreSQL, each worker builds its own as before)."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from tastebud.live.support import Shared, catalog_marks

log = logging.getLogger("tastebud.live")

POLL_S = 1.0


class ItemSideWorker:
    def __init__(self, shared: Shared, role: str = "all", build_elsewhere: Callable[[int], None] | None = None) -> None:
        """role: `live` publishes what it builds; `worker` loads what was published.
        build_elsewhere(seq): builds and publishes the side in another process (the
        live process: a build in its own GIL held its profile refreshes back for the
        15-18 s it takes under load)."""
        self.shared = shared
        self.role = role
        self.build_elsewhere = build_elsewhere
        self.every_events = shared.settings.item_side_refresh_events
        self.every_s = shared.settings.item_side_refresh_s
        self._marks: tuple[int, int] | None = None
        self._built_at: float | None = None
        self._build_s: float | None = None

    @property
    def enabled(self) -> bool:
        return self.every_events > 0 or self.every_s > 0

    def mark_current(self) -> None:
        """The served item side is at least this fresh (it is built lazily from here on)."""
        self._marks, self._built_at = catalog_marks(self.shared.services.store), time.time()

    def stats(self, counts: dict[str, int], events_since_rebuild: int | None) -> dict[str, Any]:
        return {
            "rebuilds": counts.get("item_side_rebuilds", 0),
            "age_s": round(time.time() - self._built_at, 1) if self._built_at else None,
            "events_since_rebuild": events_since_rebuild,
            "last_build_s": self._build_s,
            "loaded_from_live_process": counts.get("item_side_loads", 0),
        }

    def events_since_rebuild(self) -> int | None:
        """Reads the store: may raise."""
        if self._marks is None:
            return None
        return catalog_marks(self.shared.services.store)[0] - self._marks[0]

    def loop(self) -> None:
        poll = min(POLL_S, self.every_s) if self.every_s > 0 else POLL_S
        recommendations = self.shared.services.recommendations
        loads = self.role == "worker" and recommendations.cache_dir is not None
        while not self.shared.stopping.wait(poll):
            try:
                if loads:
                    self._adopt(recommendations)
                    continue
                marks = catalog_marks(self.shared.services.store)
                assert self._marks is not None and self._built_at is not None
                new_events = marks[0] - self._marks[0]
                new_items = marks[1] != self._marks[1]
                if not (new_events > 0 or new_items):
                    continue
                by_count = self.every_events > 0 and new_events >= self.every_events
                by_time = self.every_s > 0 and time.time() - self._built_at >= self.every_s
                if by_count or by_time:
                    self.rebuild(marks, new_items)
            except Exception as exc:
                self.shared.book.error("item_side", exc)
                self.shared.stopping.wait(min(60.0, max(poll, 5.0)))

    def _adopt(self, recommendations: Any) -> None:
        assert self._marks is not None
        seq = recommendations.adopt_published(self._marks[0])
        if seq is not None:
            self._marks, self._built_at = (seq, self._marks[1]), time.time()
            self.shared.book.count(item_side_loads=1)

    def rebuild(self, marks: tuple[int, int], new_items: bool) -> None:
        from tastebud.retrieval.service import sync_item_vectors

        services = self.shared.services
        start = time.perf_counter()
        if new_items:  # embedded before the swap, so the new side has their vectors
            sync_item_vectors(services.store, services.vectors)
        if self.build_elsewhere is not None:
            self.build_elsewhere(marks[0])
        else:
            services.recommendations.refresh_side()
            if self.role == "live":
                services.recommendations.publish_side(marks[0])
        self._marks, self._built_at = marks, time.time()
        self._build_s = round(time.perf_counter() - start, 3)
        self.shared.book.count(item_side_rebuilds=1)
        log.info("live updates: item side rebuilt in %.2f s (events up to seq %d, %d items)",
                 self._build_s, marks[0], marks[1])
