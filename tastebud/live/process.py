"""`tastebud live`: the live updates as a process of their own, following the
store (the `live` role). `tastebud serve --workers N` runs one beside its
workers and restarts it if it dies; an operator may run it by hand beside
workers started with `TASTEBUD_LIVE_ROLE=worker`."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Callable

from tastebud.live.support import freeze_heap
from tastebud.live.updates import LiveUpdates

if TYPE_CHECKING:
    from tastebud.live.ports import LiveServices

log = logging.getLogger("tastebud.live")


def run_until_signalled(services: "LiveServices", stop: threading.Event | None = None,
                        parent: int | None = None, build_item_side: Callable[[int], None] | None = None,
                        shard: tuple[int, int] | None = None) -> None:
    """Until SIGTERM or SIGINT (or `stop`, for a caller that owns the signals), or
    until process `parent` is gone (serve killed outright): pending computed
    refreshes are flushed on the way out, queued narratives stay queued in the store.
    build_item_side: see ItemSideWorker; shard: see LiveUpdates."""
    settings = services.settings
    stop = stop or threading.Event()
    if parent is not None:
        threading.Thread(target=_stop_when_gone, args=(parent, stop), name="tastebud-live-parent", daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    freeze = freeze_heap if settings.serve_freeze_gc else None
    live = LiveUpdates(services, narratives=settings.serve_narratives, on_warmed=freeze, role="live",
                        build_item_side=build_item_side, shard=shard)
    live.start()
    log.info("live updates: following the event store (shard %s, narratives %s)",
             f"{shard[0]}/{shard[1]}" if shard else "all", "on" if live.narratives else "off")
    try:
        stop.wait()
    finally:
        live.stop()
        log.info("live updates: stopped")


def _stop_when_gone(pid: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != pid:  # re-parented: serve is gone
            log.warning("live updates: the serving process %d is gone; stopping", pid)
            stop.set()
