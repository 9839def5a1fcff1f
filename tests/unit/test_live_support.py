"""What live updates rely on below tastebud.live: staleness queries, profile saves that
survive concurrent writers, and narrative calls bounded by a timeout."""

from __future__ import annotations

import os
import threading

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from tastebud.profiles.narrative import GroundingChecker, NarrativeWriter, template_narrative
from tastebud.profiles.store import EventStore
from tastebud.profiles.versions import ProfileRepository
from tests.profile_helpers import item, load, rating
from tests.unit.test_narrative import CATALOG, GENRES, profile


def _profile(user: str, note: str) -> dict:
    return {"user_id": user, "long_term": {"tags": [], "narrative": note}, "short_term": {"tags": []}}


def test_is_lagging_and_lagging_users_among_some(store):
    load(store, [item("a", ["Crime"]), item("b", ["Drama"])],
         [rating("u", "a", 4.0, 0), rating("v", "b", 3.0, 0)])
    assert store.is_lagging("u") and store.is_lagging("v")
    assert not store.is_lagging("nobody")
    ProfileRepository(store).save(_profile("u", "x"), store.user_last_seqs(["u"])["u"], "stale")
    assert not store.is_lagging("u")
    assert store.lagging_users(["u", "v", "nobody"]) == ["v"]
    assert store.lagging_users([]) == []
    store.write_batch([rating("u", "b", 5.0, 1)])
    assert store.is_lagging("u")


def test_a_profile_older_than_the_head_is_not_saved(store):
    repo = ProfileRepository(store)
    assert repo.save(_profile("u", "new"), 10, "llm") == (1, True)
    assert repo.save(_profile("u", "old"), 5, "llm") == (1, False)
    assert repo.latest("u")["long_term"]["narrative"] == "new"
    assert repo.head("u")["last_event_seq"] == 10


def test_concurrent_saves_from_several_processes_never_fail_or_go_back(store):
    """Four writers, each with its own engine (as separate server processes have),
    race to save versions of one user."""
    stores = [store] + [EventStore(store.url) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def writer(k: int) -> None:
        repo = ProfileRepository(stores[k])
        barrier.wait()
        try:
            for seq in range(1, 16):
                repo.save(_profile("u", f"writer {k} at {seq}"), seq, "stale")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores[1:]:
        s.close()
    assert errors == []
    repo = ProfileRepository(store)
    versions = repo.versions("u")
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
    assert [v["last_event_seq"] for v in versions] == sorted(v["last_event_seq"] for v in versions)
    head = repo.head("u")
    assert head["version"] == versions[-1]["version"] and head["last_event_seq"] == 15


def test_a_model_that_hangs_gets_the_template_after_the_timeout_and_no_second_call():
    release = threading.Event()
    calls = []

    class Hanging(FakeListChatModel):
        def _call(self, *args, **kwargs):
            calls.append(1)
            release.wait(30)
            return "LONG: too late."

    try:
        writer = NarrativeWriter(Hanging(responses=["x"]), GroundingChecker(CATALOG, GENRES), timeout=0.2)
        [result] = writer.write_many([profile()])
    finally:
        release.set()
    assert result.source == "template"
    assert (result.long, result.short) == template_narrative(profile())
    assert "the model did not answer" in result.violations
    assert any("no answer within 0.2 s" in v for v in result.violations)
    assert calls == [1] and result.attempts == 1


def test_a_server_freezes_its_heap_and_then_the_survivors_of_every_full_collection():
    """In a fresh interpreter, as a `serve` worker: what it holds at the freeze and what
    survives each later full collection leave the cyclic GC's sight, so no full
    collection scans the whole heap again (tastebud/live/support.py freeze_heap)."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from tastebud.live.support import freeze_heap\n"
        "held = [[i] for i in range(2000)]\n"
        "freeze_heap()\n"
        "at_freeze = gc.get_freeze_count()\n"
        "later = [[i] for i in range(5000)]\n"
        "gc.collect()\n"
        "print(at_freeze, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    at_freeze, after = int(out[0]), int(out[1])
    assert at_freeze >= 2000
    assert after >= at_freeze + 5000


def test_the_shards_of_live_processes_add_up_and_report_the_worst_lag():
    from tastebud.live.follow import merge_live_stats

    merged = merge_live_stats([
        {"pending_users": 3, "refreshed_users": 100, "warming_users": 0, "lag_ms": {"n": 40, "p50": 120.0, "p95": 900.5},
         "last_refresh_at": "2026-11-29T10:00:01Z"},
        {"pending_users": 2, "refreshed_users": 90, "warming_users": 5, "lag_ms": {"n": 30, "p50": 150.0, "p95": 400.0},
         "last_refresh_at": "2026-11-29T10:00:03Z"},
        {"pending_users": 0, "refreshed_users": 0, "lag_ms": {"n": 0, "p50": None, "p95": None}},  # nothing yet
    ])
    assert merged["pending_users"] == 5 and merged["refreshed_users"] == 190 and merged["warming_users"] == 5
    assert merged["lag_ms"] == {"n": 70, "p50": 150.0, "p95": 900.5}
    assert merged["last_refresh_at"] == "2026-11-29T10:00:03Z"


def test_a_live_shard_takes_only_its_users(store):
    from types import SimpleNamespace

    from tastebud.live.computed import ComputedRefresh
    from tastebud.live.support import Shared
    from tastebud.profiles.refresh import in_shard
    from tastebud.settings import Settings

    services = SimpleNamespace(store=store, settings=Settings())
    users = [f"user-{n}" for n in range(40)]
    taken = []
    for i in range(2):
        computed = ComputedRefresh(Shared(services, shard=(i, 2)), None)
        computed.mark(users)
        taken.append(sorted(computed._dirty))
    assert taken[0] and taken[1] and sorted(taken[0] + taken[1]) == sorted(users)  # each user once, in one shard
    assert all(in_shard(u, (0, 2)) for u in taken[0])
    everyone = ComputedRefresh(Shared(services), None)
    everyone.mark(users)
    assert sorted(everyone._dirty) == sorted(users)


def _priority_after_lowering(conn) -> None:
    import os

    from tastebud.cli.serve import lowest_priority

    lowest_priority()
    with open("/proc/self/autogroup") as fh:
        group = fh.read().split()
    conn.send((group, os.sched_getscheduler(0) == os.SCHED_IDLE, os.getsid(0) == os.getpid()))


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="no autogroup scheduling here")
def test_the_item_side_builder_yields_the_cores_without_lowering_the_live_process():
    """Where the kernel groups by session, `nice` in the live process's own session would
    still take its share from the workers; writing the session's nice without a session
    of its own would slow the live process down with it."""
    import multiprocessing

    with open("/proc/self/autogroup") as fh:
        ours = fh.read()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_priority_after_lowering, args=(child,))
    proc.start()
    group, idle, own_session = parent.recv()
    proc.join(30)
    assert idle and own_session
    with open("/proc/self/autogroup") as fh:
        assert fh.read() == ours  # the caller's group keeps its weight
    # The kernel prints nothing for the default group (CI's container runs in it); a
    # session of our own always has a group of its own.
    if ours.split() or group:
        assert group[-1] == "19" and group[0] != (ours.split() or [None])[0]


def test_running_live_pids_are_fresh_figures_of_processes_still_there(tmp_path):
    import json
    import subprocess
    import time

    from tastebud.live.follow import running_live_pids, stats_dir, write_stats

    run = stats_dir(tmp_path)
    write_stats(run / "live-stats-0-of-2.json", {})  # ours: fresh and alive
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run / "live-stats-1-of-2.json").write_text(json.dumps({"pid": gone.pid, "written_at": time.time()}))
    assert running_live_pids(tmp_path) == [os.getpid()]
    (run / "live-stats-0-of-2.json").write_text(json.dumps({"pid": os.getpid(), "written_at": time.time() - 31}))
    assert running_live_pids(tmp_path) == []  # a process that stopped publishing 30 s ago is not counted
