"""The store's generic (non-SQLite) write path on a real PostgreSQL, started in a temp dir.

Skipped when the PostgreSQL server binaries or psycopg are missing.
"""

from __future__ import annotations

import pytest

from tastebud.profiles.events import Event, Item
from tastebud.profiles.ingest import Ingestor
from tastebud.profiles.narrative_queue import NarrativeQueue
from tastebud.profiles.store import EventStore
from tests.services import postgres_server

pytestmark = pytest.mark.integration
T = 1_700_000_000


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server(skip_if_it_fails=True) as url:  # the machine cannot run a server: not what this file tests
        yield url


@pytest.fixture
def pg_store(pg_url):
    store = EventStore(pg_url)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE events, items, quarantine RESTART IDENTITY")
    yield store
    store.close()


def ev(eid: str, item: str | None = "i", user: str = "u") -> Event:
    return Event(eid, user, item, "view", T * 1000, None, None)


def test_write_path_accounting_on_postgresql(pg_store):
    assert pg_store.dialect == "postgresql"
    assert pg_store.write_batch([ev("a"), ev("b", item="new"), ev("a", user="other")]) == (2, 1)
    assert pg_store.write_batch([ev("b"), ev("c")]) == (1, 1)
    assert [e.event_id for e in pg_store.events_for_user("u")] == ["a", "b", "c"]
    assert pg_store.get_item("new").is_stub

    heat = Item("new", "Heat", categories=("Action",), attributes={"year": 1995})
    assert pg_store.upsert_items([heat, Item("m2", "Ronin")]) == (2, 0)
    assert pg_store.upsert_items([heat, Item("m2", "Ronin")]) == (0, 2)
    assert pg_store.get_item("new") == heat


def test_ingest_quarantine_and_retry_on_postgresql(pg_store, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text(f"user,item,type,ts,value\nu1,i1,rating,{T},4\nu1,i2,rating,{T},four\nu2,i1,view,{T},\n")
    first = Ingestor(pg_store, batch_size=2).ingest_events(str(path))
    again = Ingestor(pg_store, batch_size=2).ingest_events(str(path))
    assert (first.read, first.accepted, first.duplicates, first.rejected) == (3, 2, 0, 1)
    assert (again.read, again.accepted, again.duplicates, again.rejected) == (3, 0, 2, 1)
    [row] = pg_store.open_quarantine()
    pg_store.fix_quarantine(row["id"], f"u1,i2,rating,{T},4.5")
    retried = Ingestor(pg_store).retry_quarantine()
    assert (retried.accepted, retried.rejected) == (1, 0)
    status = pg_store.status()
    assert (status["users"], status["events"], status["quarantined"], status["stub_items"]) == (2, 3, 0, 2)


def test_rows_postgresql_cannot_store_are_quarantined_not_fatal(pg_store, tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(
        b'{"user": "u", "item": "i", "type": "review", "ts": 1, "text": "a\\u0000b"}\n'
        b'{"user": "u", "item": "i", "type": "review", "ts": 1, "text": "fine"}\x00\n'
        b'{"user": "u", "item": "i", "type": "view", "ts": 1}\n'
    )
    report = Ingestor(pg_store).ingest_events(str(path))
    assert (report.read, report.accepted, report.rejected) == (3, 1, 2)
    assert [r["reason"] for r in pg_store.open_quarantine()] == ["contains a NUL character"] * 2


def test_append_says_which_rows_were_new_on_postgresql(pg_store):
    """The API's per-event answer: INSERT … RETURNING reports only inserted ids,
    a repeat within the batch included."""
    from tastebud.profiles.store import QuarantinedRow

    rows = [(e.event_id, e.user_id, e.item_id, e.type, e.ts, e.value, e.text) for e in (ev("a"), ev("b"), ev("a"))]
    bad = [QuarantinedRow("events", "api", 3, "{}", "missing user_id", "jsonl")]
    assert pg_store.append_event_rows(rows, bad) == {"a", "b"}
    assert pg_store.append_event_rows(rows[:2]) == set()  # both known now
    assert pg_store.status()["events"] == 2 and len(pg_store.open_quarantine()) == 1


def test_narrative_queue_on_postgresql(pg_store):
    """The queue's upsert, lease, back-off and done, through the PostgreSQL dialect."""
    from tests.unit.test_narrative_queue import test_back_off_release_and_drop, test_request_claim_done

    with pg_store.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE narrative_queue")
    test_request_claim_done(pg_store)
    NarrativeQueue(pg_store).drop(["u", "v"])
    test_back_off_release_and_drop(pg_store)


def test_events_committed_out_of_seq_order_are_never_skipped_by_profiles(pg_store):
    """PostgreSQL hands out seqs at insert and commits in any order. A writer that
    took seq n and commits after a second writer's seq n+1 (two API workers, or
    threads, posting for one user) must not let a profile saved in between cover
    n+1 and so never see n: writes of one user's events commit in seq order."""
    import threading

    from tastebud.profiles.interest import InterestConfig
    from tastebud.profiles.refresh import Refresher
    from tastebud.settings import Settings

    with pg_store.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE profile_heads, profile_versions")
    pg_store.write_batch([ev("first", user="w")])
    refresher = Refresher(pg_store, InterestConfig.from_settings(Settings()))
    refresher.refresh(["w"], narratives=False)
    row = lambda eid: (eid, "w", "i", "view", T * 1000, None, None)  # noqa: E731
    second = threading.Thread(target=pg_store.append_event_rows, args=([row("late-commit-2")],))
    with pg_store.transaction() as conn:  # writer 1: its seq first, its commit last
        pg_store.write_event_rows([row("late-commit-1")], conn=conn)
        second.start()  # writer 2 (another thread, like another worker)
        second.join(1.0)
        refresher.refresh(["w"], narratives=False)  # a read refreshes the user meanwhile
    second.join(10)
    assert not second.is_alive()
    assert pg_store.is_lagging("w") or refresher.repo.latest("w")["stats"]["events"] == 3
    refresher.refresh(pg_store.lagging_users(["w"]), narratives=False)  # what the live updater does next
    latest = refresher.repo.latest("w")
    assert latest["stats"]["events"] == 3 and not pg_store.is_lagging("w")
