"""`tastebud serve --workers 2` as an operator runs it: the workers take requests, one
`tastebud live` process beside them follows the store and keeps profiles current,
its item-side builder publishes the sides the workers load, and SIGTERM to serve
stops all of it (docs/design.md#live-updates)."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.api_helpers import T0, Server, copy_home, create_key, seed_home, wait_for

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_several_workers_leave_profiles_to_one_live_process_that_follows_the_store(tmp_path):
    home = copy_home(seed_home(tmp_path / "template"), tmp_path / "home")
    key = create_key(home, "operator")
    srv = Server(home, serve_workers=2, item_side_refresh_events=1, item_side_refresh_s=0).start()
    try:
        with srv.client(key) as http:
            stats = wait_for("the live process's figures, through a worker", lambda: (
                s := http.get("/v1/status").json()["live"]).get("live_processes") and s["running"] and s)
            (live_pid,) = [p["pid"] for p in stats["live_processes"] if p["current"]]
            assert alive(live_pid) and live_pid != srv.proc.pid
            # both workers up first: one that starts after the event serves a side with it and has nothing to load
            wait_for("both workers started", lambda: srv.log().count("Application startup complete.") >= 2)
            event = {"event_id": "workers-1", "user_id": "u1", "item_id": "m9", "type": "rating", "value": 5.0,
                     "timestamp": (T0 + 99 * 3600) * 1000}
            assert http.post("/v1/events", json={"events": [event]}).json()["accepted"] == 1
        (seq,) = srv.query("SELECT seq FROM events WHERE event_id = 'workers-1'")[0]
        # no read of u1 through the API (that would refresh in the worker): the live process alone
        wait_for("u1's profile to cover the event", lambda: srv.query(
            "SELECT last_event_seq FROM profile_heads WHERE user_id = 'u1'")[0][0] >= seq)
        pointer = home / "cache" / "item_side-published.json"
        wait_for("an item side with the event, published", lambda: pointer.exists()
                 and json.loads(pointer.read_text())["seq"] >= seq, timeout=180)
        with srv.client(key) as http:
            side = wait_for("a worker to load it", lambda: (  # a new connection each time: either worker answers
                s := http.get("/v1/status", headers={"Connection": "close"}).json()["live"]["item_side"]
            )["loaded_from_live_process"] and s)
        assert side["rebuilds"] == 0  # a worker loads; only the live process's builder builds
    finally:
        code = srv.stop()
    assert code in (0, -signal.SIGTERM), srv.log()
    wait_for("the live process to stop with serve", lambda: not alive(live_pid), timeout=60)
    assert "Traceback" not in srv.log(), srv.log()
