"""Following the event store from a process that did not take the events: the
live process that `tastebud serve --workers N` runs beside its workers (or
`tastebud live` run by hand) reads which users have new events instead of
being told, so a worker needs no channel to it, and a follower that restarts
misses nothing. Its figures go to a file the workers answer `/v1/status` from.

A cursor over the events' seq finds new events in one indexed read per poll.
On PostgreSQL a transaction may commit a lower seq after a higher one was read,
so every SWEEP_S the users whose profile is behind their events are taken up
as well (the same query a restarted process starts with)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from tastebud.profiles.store import EventStore

log = logging.getLogger("tastebud.live")

POLL_S = 0.05  # an event waits at most this long before its user is marked
SWEEP_S = 30.0
PUBLISH_S = 2.0
STATS_STALE_S = 30.0  # figures older than this are a live process's that stopped


class StoreFollower:
    def __init__(self, store: "EventStore", mark: Callable[[Sequence[str]], None],
                 publish: Callable[[], None] | None = None, poll_s: float = POLL_S, sweep_s: float = SWEEP_S) -> None:
        """mark: called with the users who have new events; publish: called every
        PUBLISH_S (the live process writes its stats)."""
        self.store, self.mark, self.publish = store, mark, publish
        self.poll_s, self.sweep_s = poll_s, sweep_s
        self.cursor: int | None = None
        self._at_cursor: str | None = None  # the event stored under the cursor's seq
        self._swept_at = self._published_at = time.monotonic()

    def start_at_end(self) -> None:
        """Events stored before now are the start-up catch-up's (ComputedRefresh.loop)."""
        self.cursor = self.store.last_seq()
        self._at_cursor = self.store.event_id_at(self.cursor)

    def poll(self) -> list[str]:
        """Mark the users with events after the cursor; returns them."""
        if self.cursor is None:
            self.start_at_end()
        users, cursor = self.store.users_after(self.cursor)
        if users:
            self.cursor, self._at_cursor = cursor, self.store.event_id_at(cursor)
            self.mark(users)
        elif self.cursor and self.store.event_id_at(self.cursor) != self._at_cursor:
            # the newest rows are gone (a user erased) and SQLite hands their seqs out again:
            # what is already stored under them is found by the sweep, the next ones by the cursor
            self.cursor = self.store.last_seq()
            self._at_cursor = self.store.event_id_at(self.cursor)
            self.sweep()
        return users

    def sweep(self) -> list[str]:
        users = self.store.lagging_users()
        if users:
            self.mark(users)
        return users

    def loop(self, stopping: threading.Event, on_error: Callable[[BaseException], None]) -> None:
        while not stopping.wait(self.poll_s):
            try:
                self.poll()
                now = time.monotonic()
                if now - self._swept_at >= self.sweep_s:
                    self._swept_at = now
                    self.sweep()
                if self.publish is not None and now - self._published_at >= PUBLISH_S:
                    self._published_at = now
                    self.publish()
            except Exception as exc:  # noqa: BLE001 - a store that is briefly away must not end the loop
                on_error(exc)
                stopping.wait(1.0)


def stats_dir(home: Path | str) -> Path:
    return Path(home) / "run"


def merge_live_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The `live` figures of several shards: counts added, the lag the worst shard's
    (its p50 and p95 each, an upper bound of the whole), the last refresh the latest."""
    out: dict[str, Any] = {}
    for key in ("pending_users", "refreshed_users", "new_versions", "batches", "ensure_fresh_refreshes",
                "warming_users", "admin_refreshed_users"):
        out[key] = sum(int(p.get(key) or 0) for p in parts)
    lags = [p.get("lag_ms") or {} for p in parts]
    out["lag_ms"] = {"n": sum(int(l.get("n") or 0) for l in lags),
                     **{q: max((l[q] for l in lags if l.get(q) is not None), default=None) for q in ("p50", "p95")}}
    out["last_refresh_at"] = max((p["last_refresh_at"] for p in parts if p.get("last_refresh_at")), default=None)
    return out


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({**stats, "pid": os.getpid(), "written_at": time.time()}))
    os.replace(tmp, path)


def published_stats(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every live process's figures found in `run_dir`, and the current ones: a live process
    writes every PUBLISH_S, so a file older than STATS_STALE_S is one that stopped (or a
    shard of an earlier layout)."""
    found = [s for p in sorted(run_dir.glob("live-stats*.json")) if (s := read_stats(p))]
    return found, [s for s in found if time.time() - float(s.get("written_at") or 0) < STATS_STALE_S]


def running_live_pids(home: Path | str) -> list[int]:
    """Live processes of this home that published figures lately and are still there."""
    from tastebud.embedded.server import pid_alive

    return [s["pid"] for s in published_stats(stats_dir(home))[1] if isinstance(s.get("pid"), int) and pid_alive(s["pid"])]


def read_stats(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
