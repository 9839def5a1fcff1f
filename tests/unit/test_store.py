"""The store's write path: batch accounting, stubs, item upserts, quarantine rows, engine settings."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import SQLAlchemyError

from tastebud.profiles.events import Event, Item
from tastebud.profiles.store import EventStore, QuarantinedRow

T = 1_700_000_000_000


def ev(eid: str, user: str = "u", item: str | None = "i", type_: str = "view", ts: int = T, value=None, text=None):
    return Event(eid, user, item, type_, ts, value, text)


def row(ev: Event) -> tuple:
    return (ev.event_id, ev.user_id, ev.item_id, ev.type, ev.ts, ev.value, ev.text)


def qrow(line: int, raw: str = "x", reason: str = "bad", source: str = "f.csv") -> QuarantinedRow:
    return QuarantinedRow("events", source, line, raw, reason, "csv", ["user_id", "item_id"])


def test_write_batch_counts_repeats_within_the_batch_and_already_stored(store):
    assert store.write_batch([ev("a"), ev("b"), ev("a", user="other")]) == (2, 1)  # the first "a" wins
    assert store.write_batch([ev("b"), ev("c"), ev("c")]) == (1, 2)
    assert [e.event_id for e in store.events_for_user("u")] == ["a", "b", "c"]
    assert store.events_for_user("other") == []


def test_the_generic_insert_path_agrees_with_the_sqlite_one(store, tmp_path):
    """PostgreSQL takes the generic path; on SQLite it must give the same answers."""
    with store.transaction() as conn:
        assert store._generic_insert_events(conn, [row(ev("a")), row(ev("b")), row(ev("a"))]) == 2
        assert store._generic_insert_events(conn, [row(ev("b")), row(ev("c"))]) == 1
    assert [e.event_id for e in store.events_for_user("u")] == ["a", "b", "c"]


def test_events_for_unknown_items_create_stubs_unless_the_caller_knows_them(store):
    store.upsert_items([Item("known", "Known")])
    store.write_event_rows([row(ev("a", item="known")), row(ev("b", item="new")), row(ev("s", item=None, type_="search", text="q"))])
    assert store.get_item("new").is_stub and not store.get_item("known").is_stub
    assert store.status()["stub_items"] == 1
    # The ingestor passes only ids it has not seen committed: others are not checked.
    store.write_event_rows([row(ev("c", item="cached")), row(ev("d", item="fresh"))], item_ids={"fresh"})
    assert set(store.items_by_id(["cached", "fresh"])) == {"fresh"}


def test_upsert_items_reports_written_and_unchanged_and_replaces_stubs(store):
    store.write_batch([ev("a", item="m1")])
    a = Item("m1", "Heat", categories=("Action",), tags=("heist",), attributes={"year": 1995})
    assert store.upsert_items([a, Item("m2", "Ronin")]) == (2, 0)
    assert store.get_item("m1") == a  # the stub is now the real item
    assert store.upsert_items([a, Item("m2", "Ronin (1998)")]) == (1, 1)
    assert store.upsert_items([a, a]) == (0, 2)
    assert store.get_item("m2").title == "Ronin (1998)"


def test_a_row_quarantined_again_stays_one_row_and_a_resolved_one_stays_resolved(store):
    store.quarantine_rows([qrow(2), qrow(3)])
    store.quarantine_rows([qrow(2, reason="new reason"), qrow(2, source="other.csv")])
    rows = store.open_quarantine()
    assert [(r["source"], r["line_no"], r["reason"]) for r in rows] == [
        ("f.csv", 2, "new reason"), ("f.csv", 3, "bad"), ("other.csv", 2, "bad")
    ]
    with store.transaction() as conn:
        store.resolve_quarantine([rows[0]["id"]], conn)
    store.quarantine_rows([qrow(2, reason="again")])
    assert [r["line_no"] for r in store.open_quarantine(kind="events", limit=10)] == [3, 2]


def test_a_batch_lands_whole_or_not_at_all(store):
    with pytest.raises((SQLAlchemyError, UnicodeEncodeError)):
        store.write_event_rows([row(ev("a"))], [qrow(2, raw="\ud800")])  # no database stores a lone surrogate
    assert store.status()["events"] == 0
    assert store.open_quarantine() == []


def test_sqlite_engine_settings(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16384


def test_unreachable_store_is_a_store_error(tmp_path):
    from tastebud.errors import StoreError

    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open event store"):
        EventStore(f"sqlite:///{tmp_path / 'file' / 'db.sqlite'}")


def test_a_server_checkpoints_in_its_own_thread_not_in_the_writers(store):
    import time

    stop = store.checkpoint_in_background(every_s=0.05)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        store.write_batch([ev(f"c{n}") for n in range(50)])
        deadline = time.monotonic() + 10
        while store.checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.checkpoints >= 2
        with store.engine.connect() as conn:  # nothing left in the WAL that is not in the database
            busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert (busy, frames) == (0, done)
    finally:
        stop.set()


def test_a_pass_over_every_event_holds_no_snapshot_between_its_chunks(store):
    """The item side reads every event at idle priority: a snapshot held across the
    pass would hold back checkpoints (and an erasure's scrub) for as long as it is starved."""
    import sqlite3

    store.write_batch([ev(f"e{n}", user=f"u{n % 3}", item=f"i{n}") for n in range(7)])
    chunks = store.event_field_chunks("user_id", "item_id", chunk=3)
    first = next(chunks)
    assert first == [("u0", "i0"), ("u1", "i1"), ("u2", "i2")]
    store.write_batch([ev("late", item="i-late")])  # stored after the pass began: not in it
    other = sqlite3.connect(store.engine.url.database)
    try:  # a TRUNCATE checkpoint waits for no reader: the pass holds none between chunks
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        other.close()
    rest = [r for part in chunks for r in part]
    assert busy == 0
    assert first + rest == [(f"u{n % 3}", f"i{n}") for n in range(7)]
