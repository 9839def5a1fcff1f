"""The durable narrative queue (profiles/narrative_queue.py) and the one upsert
helper it and the event store share (profiles/sql.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tastebud.errors import StoreError
from tastebud.profiles.migrations import narrative_queue
from tastebud.profiles.narrative_queue import NarrativeQueue
from tastebud.profiles.sql import upsert


def row(store, user):
    with store.engine.connect() as conn:
        return conn.execute(select(narrative_queue).where(narrative_queue.c.user_id == user)).mappings().first()


def test_request_claim_done(store):
    queue = NarrativeQueue(store)
    queue.request(["u", "v"], now_ms=1000)
    assert queue.depth() == 2
    assert [u for u, _, _ in queue.pending(10)] == ["u", "v"]

    assert queue.claim(["u", "v"], lease_s=60) == {"u": 1000, "v": 1000}
    assert queue.claim(["u"], lease_s=60) == {}, "leased"
    queue.request(["u"], now_ms=2000)  # asked again while being served: moves requested_at, keeps the lease
    assert row(store, "u")["requested_at"] == 2000 and row(store, "u")["not_before"] is not None

    assert queue.done({"u": 1000, "v": 1000}) == {"u": 2000}, "the newer request keeps its row"
    assert row(store, "v") is None
    assert row(store, "u")["not_before"] is None and queue.claim(["u"], lease_s=60) == {"u": 2000}


def test_back_off_release_and_drop(store):
    queue = NarrativeQueue(store)
    queue.request(["u", "w"])
    queue.claim(["u"], lease_s=60)
    assert queue.back_off(["u"], "ConnectionError: down" + "!" * 600, base_s=2, max_s=5) == {"u": 2}
    assert queue.claim(["u"], lease_s=60) == {}, "backing off"
    assert queue.back_off(["u"], "again", base_s=2, max_s=5) == {"u": 4}
    assert queue.back_off(["u"], "again", base_s=2, max_s=5) == {"u": 5}, "capped"
    assert row(store, "u")["attempts"] == 3 and row(store, "u")["last_error"] == "again"
    assert len(queue.back_off(["w"], "x" * 600, 1, 1)) == 1 and len(row(store, "w")["last_error"]) == 500

    queue.release("u", delay_s=0)
    assert queue.claim(["u"], lease_s=60) == {"u": row(store, "u")["requested_at"]}
    queue.drop(["u", "w"])
    assert queue.depth() == 0 and queue.done({}) == {}


def test_upsert_updates_only_the_named_columns_and_rejects_unknown_dialects(store):
    stmt = upsert(store.dialect, narrative_queue, keys=["user_id"], update=["requested_at"])
    with store.transaction() as conn:
        conn.execute(stmt, [{"user_id": "u", "requested_at": 1, "attempts": 0}])
        conn.execute(stmt, [{"user_id": "u", "requested_at": 2, "attempts": 7}])
    assert (row(store, "u")["requested_at"], row(store, "u")["attempts"]) == (2, 0)
    with pytest.raises(StoreError, match="unsupported database dialect 'mysql'"):
        upsert("mysql", narrative_queue, keys=["user_id"])
