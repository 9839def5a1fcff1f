"""The live workers run without HTTP (docs/design.md#live-updates): a CLI daemon
or a test builds the composition root, starts `LiveUpdates`, writes events
through the store, and profiles, their vectors and the item side follow."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tastebud.live import LiveUpdates
from tests.profile_helpers import item, rating

pytestmark = pytest.mark.integration

LIVE = Path(__file__).resolve().parents[2] / "tastebud" / "live"
HTTP = ("fastapi", "starlette", "uvicorn", "tastebud.api")
ABOVE = ("tastebud.app", "tastebud.cli")


def wait_for(predicate, what: str, deadline_s: float = 120.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add("tastebud.live" if node.level else node.module)
    return found


def test_the_live_package_imports_nothing_of_http_or_the_composition_root():
    sources = sorted(LIVE.glob("*.py"))
    assert {p.name for p in sources} >= {"updates.py", "ports.py"}
    offending = {f"{p.name}: {m}" for p in sources for m in imported_modules(p)
                 if any(m == bad or m.startswith(bad + ".") for bad in HTTP + ABOVE)}
    assert offending == set()
    # and nothing it pulls in brings HTTP along (a fresh process: the test session may hold fastapi)
    probe = ("import sys, tastebud.live; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HTTP!r} or m.startswith({HTTP + ABOVE!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_workers_run_without_http(home, embedder):
    from tastebud.app import App
    from tastebud.settings import load_settings

    app = App(load_settings(home=home, item_side_refresh_events=1, item_side_refresh_s=0), embedder=embedder)
    live = LiveUpdates(app, narratives=False)  # narratives need an LLM; test_live.py covers them
    try:
        app.store.upsert_items([item("a", ["Crime"]), item("b", ["Drama"]), item("c", ["Comedy"])])
        live.start()

        app.store.write_batch([rating("u", "a", 5.0, 0)])  # as any writer would, through the store
        live.events_accepted(["u"])
        head = wait_for(lambda: app.profiles.head("u"), "the first profile")
        assert head["last_event_seq"] == app.store.user_last_seqs(["u"])["u"]
        wait_for(lambda: {m.get("version") for m in app.vectors.profiles.metadata(["u:long", "u:short"]).values()}
                 == {head["version"]}, "the profile vectors")

        # read-your-writes with no call to events_accepted: ensure_fresh refreshes at once
        app.store.write_batch([rating("u", "b", 4.0, 1)])
        assert app.store.is_lagging("u")
        live.ensure_fresh("u")
        assert not app.store.is_lagging("u")
        assert app.profiles.head("u")["version"] == head["version"] + 1

        # a new catalog item (a stub named by an event): embedded, then the item side is swapped in
        old_side = app.recommendations.side
        app.store.write_batch([rating("v", "brand-new", 5.0, 2)])
        live.events_accepted(["v"])
        wait_for(lambda: "brand-new" in app.vectors.items.metadata(["brand-new"]), "the new item's vector")
        wait_for(lambda: app.recommendations.side is not old_side and "brand-new" in app.recommendations.side.index,
                 "the rebuilt item side")

        stats = live.stats()
        assert stats["running"] and stats["errors"] == 0, stats["last_error"]
        assert stats["live"]["refreshed_users"] >= 3 and stats["live"]["ensure_fresh_refreshes"] == 1
        assert stats["item_side"]["rebuilds"] >= 1

        app.store.write_batch([rating("w", "c", 3.0, 3)])
        live.events_accepted(["w"])
        live.stop(timeout=60)  # flushes the computed refreshes it was told of
        assert live.stats()["running"] is False
        assert app.store.lagging_users() == []
    finally:
        live.stop(timeout=60)  # idempotent
        app.close()


def test_a_live_process_follows_the_store_for_workers_that_only_serve(home, embedder):
    """`serve --workers N`'s split (docs/design.md#serve-under-load): the `live` role
    learns of events from the store alone and publishes the item sides it builds and
    its figures; a `worker` refreshes nothing on its own, loads those sides and
    answers stats() from the live process's file."""
    from tastebud.app import App
    from tastebud.settings import load_settings

    settings = load_settings(home=home, item_side_refresh_events=1, item_side_refresh_s=0)
    live_app, worker_app = App(settings, embedder=embedder), App(settings, embedder=embedder)
    live = LiveUpdates(live_app, narratives=False, role="live")
    worker = LiveUpdates(worker_app, narratives=True, role="worker")
    assert worker.narratives is False  # never in a worker: the live process writes them
    try:
        live_app.store.upsert_items([item("a", ["Crime"]), item("b", ["Drama"]), item("c", ["Comedy"])])
        old_side = worker_app.recommendations.side
        worker.start()
        live.start()

        worker_app.store.write_batch([rating("u", "a", 5.0, 0)])  # the worker takes the event...
        worker.events_accepted(["u"])  # ...and only says so; nobody listens
        head = wait_for(lambda: live_app.profiles.head("u"), "the profile, from the live process")
        assert head["last_event_seq"] == live_app.store.user_last_seqs(["u"])["u"]
        wait_for(lambda: {m.get("version") for m in live_app.vectors.profiles.metadata(["u:long", "u:short"]).values()}
                 == {head["version"]}, "the profile vectors")

        # the live process built an item side with the new events and published it; the worker loaded it
        wait_for(lambda: worker_app.recommendations.side is not old_side
                 and worker_app.recommendations.side.popularity[worker_app.recommendations.side.index["a"]] > 0,
                 "the published item side, in the worker")
        stats = wait_for(lambda: (s := worker.stats())["live"].get("refreshed_users") and s, "the published stats")
        assert [p["pid"] for p in stats["live_processes"]] == [os.getpid()] and stats["running"] is True
        # a file a stopped live process left (here: a shard of an earlier layout) is listed, not counted
        from tastebud.live.follow import write_stats

        write_stats(live.stats_path.with_name("live-stats-1of2.json"), {"live": {"refreshed_users": 10**6}})
        old = live.stats_path.with_name("live-stats-1of2.json")
        stale = json.loads(old.read_text())
        old.write_text(json.dumps({**stale, "written_at": stale["written_at"] - 120}))
        seen = worker.stats()
        assert [(p["pid"], p["current"]) for p in seen["live_processes"]] == [(os.getpid(), False), (os.getpid(), True)]
        assert seen["live"]["refreshed_users"] < 10**6
        assert stats["item_side"]["loaded_from_live_process"] >= 1 and stats["item_side"]["rebuilds"] == 0
        assert live.stats()["item_side"]["rebuilds"] >= 1
        assert worker.stats()["live"]["ensure_fresh_refreshes_here"] == 0

        # read-your-writes still answers in the worker, whatever the live process is doing, and the
        # narrative the worker cannot write is queued for the live process
        from tastebud.profiles.narrative_queue import NarrativeQueue

        queue = NarrativeQueue(worker_app.store)
        assert queue.depth() == 0
        worker_app.store.write_batch([rating("u", "b", 4.0, 1)])
        worker.ensure_fresh("u")
        assert not worker_app.store.is_lagging("u")
        assert queue.depth() == 1
        assert worker.stats()["live"]["ensure_fresh_refreshes_here"] == 1
    finally:
        live.stop(timeout=60)
        worker.stop(timeout=60)
        live_app.close()
        worker_app.close()


def test_the_follower_marks_users_from_the_stores_new_events_and_the_sweep_the_lagging(home):
    from tastebud.app import App
    from tastebud.live.follow import StoreFollower
    from tastebud.settings import load_settings

    store = App(load_settings(home=home)).store
    marked: list[list[str]] = []
    follower = StoreFollower(store, lambda users: marked.append(list(users)))
    store.write_batch([rating("old", "a", 4.0, 0)])
    follower.start_at_end()
    assert follower.poll() == [] and marked == []  # stored before it started: the catch-up's, not the cursor's
    store.write_batch([rating("u2", "a", 4.0, 1), rating("u1", "b", 3.0, 2), rating("u2", "c", 5.0, 3)])
    assert follower.poll() == ["u1", "u2"]
    assert follower.cursor == store.last_seq()
    assert follower.poll() == []
    assert follower.sweep() == ["old", "u1", "u2"]  # no profiles yet: every user is behind
    assert marked == [["u1", "u2"], ["old", "u1", "u2"]]
    # the newest rows erased, and a new event stored under a seq SQLite hands out again
    from sqlalchemy import delete

    from tastebud.profiles.migrations import events

    with store.transaction() as conn:
        conn.execute(delete(events).where(events.c.user_id == "u2"))
    store.write_batch([rating("u3", "a", 4.0, 4)])
    assert store.last_seq() == follower.cursor  # the seq the cursor already passed
    assert follower.poll() == []
    assert "u3" in marked[-1]  # found by the sweep the poll ran
    store.write_batch([rating("u4", "b", 4.0, 5)])
    assert follower.poll() == ["u4"]
