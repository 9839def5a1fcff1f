"""The API's pieces without a server: keys, the token bucket, error codes, and
event validation that must match file ingestion exactly."""

from __future__ import annotations

import io
import json

import pytest

from tastebud.api.errors import PayloadTooLarge, RateLimited, Unauthorized, code_for
from tastebud.api.ingest import ingest
from tastebud.api.keys import KeyStore
from tastebud.api.limits import TokenBuckets
from tastebud.profiles.readers import EVENT_ALIASES, read_event_objects, read_jsonl
from tastebud.errors import (
    ConfigError, InputError, ModelError, NotFoundError, PermissionDenied, StoreError, TastebudError,
)


def test_keys_verify_only_the_live_key_with_its_secret(store):
    keys = KeyStore(store)
    record, key = keys.create("user", "u1", name="app")
    assert key.startswith(f"tb_{record.key_id}_") and record.prefix == key[:16]
    found = keys.verify(key)
    assert found is not None and (found.role, found.user_id, found.name) == ("user", "u1", "app")
    assert found.principal.user_id == "u1"
    secret = key.split("_", 2)[2]
    for bad in (key[:-1] + ("A" if key[-1] != "A" else "B"), "tb_" + record.key_id, f"xx_{record.key_id}_{secret}",
                f"tb_ffffffff_{secret}", "", "Bearer " + key):
        assert keys.verify(bad) is None, bad
    assert keys.list()[0].last_used_at is not None  # touched by the successful verify
    keys.revoke(record.key_id)
    assert keys.verify(key) is None
    assert keys.list()[0].revoked_at is not None


def test_keys_store_a_hash_never_the_secret(store):
    from sqlalchemy import select

    from tastebud.profiles.migrations import api_keys

    _, key = KeyStore(store).create("operator")
    with store.engine.connect() as conn:
        row = conn.execute(select(api_keys)).mappings().one()
    secret = key.split("_", 2)[2]
    assert secret not in json.dumps(dict(row)) and len(row["secret_sha256"]) == 64
    assert "secret_sha256" not in KeyStore(store).list()[0].as_dict()


@pytest.mark.parametrize("role,user", [("user", None), ("user", " "), ("support", "u1"), ("admin", None), ("operator", "x")])
def test_keys_refuse_contradictory_roles(store, role, user):
    with pytest.raises(InputError):
        KeyStore(store).create(role, user)


def test_revoking_an_unknown_key_is_not_found(store):
    with pytest.raises(NotFoundError):
        KeyStore(store).revoke("nope")


def test_token_bucket_allows_a_burst_then_refills_per_key():
    now = [100.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        buckets.take("a")
    with pytest.raises(RateLimited) as denied:
        buckets.take("a")
    assert denied.value.retry_after == pytest.approx(0.5)
    buckets.take("b")  # another key has its own bucket
    now[0] += 0.5
    buckets.take("a")
    with pytest.raises(RateLimited):
        buckets.take("a")


@pytest.mark.parametrize("error,code", [
    (Unauthorized("x"), "unauthorized"), (RateLimited("x", retry_after=1), "rate_limited"),
    (PermissionDenied("x"), "forbidden"), (PayloadTooLarge("x"), "payload_too_large"),
    (NotFoundError("x"), "not_found"), (InputError("x"), "invalid_request"), (StoreError("x"), "unavailable"),
    (ModelError("x"), "unavailable"), (ConfigError("x"), "unavailable"), (TastebudError("x"), "internal"),
])
def test_every_error_class_has_a_stable_code(error, code):
    assert code_for(error) == code


OBJECTS = [
    {"user_id": "u1", "item_id": "m1", "type": "rating", "timestamp": "2024-01-01T00:00:00Z", "value": 4},
    {"userId": 7, "movieId": 3.0, "event": "like", "ts": 1700000000},
    {"user_id": "u1", "type": "bogus", "item_id": "m1", "timestamp": 1},
    {"user_id": "u1", "item_id": "m1", "type": "review", "timestamp": 1, "text": "nul\x00inside"},
    {"user_id": "u1", "item_id": "m1", "type": "review", "timestamp": 1, "text": "lone \ud800"},
    {"user_id": {"nested": 1}, "type": "view"},
    [1, 2], 42, None, "text",
]


def test_api_events_are_read_exactly_like_jsonl_lines():
    from tastebud.profiles.events import RowError, event_fields

    def outcome(rows):
        out = []
        for _, _, fields, error in rows:
            if fields is not None:
                try:
                    out.append(event_fields(fields))
                    continue
                except RowError as exc:
                    error = str(exc)
            out.append(error)
        return out

    lines = "\n".join(json.dumps(o) for o in OBJECTS).encode() + b"\n"
    from_file = outcome(read_jsonl(io.BytesIO(lines), EVENT_ALIASES))
    from_api = outcome(read_event_objects(OBJECTS))
    assert from_api == from_file
    assert [type(x) for x in from_api] == [tuple, tuple] + [str] * 8


def test_ingest_answers_per_event_and_quarantines_rejects(store):
    from tastebud.api.keys import ApiKey

    operator = ApiKey("k1", "tb_k1_", "operator", None, None, 0)
    first = ingest(store, operator, [OBJECTS[0], OBJECTS[2], OBJECTS[0], OBJECTS[1]])
    assert [r["status"] for r in first.results] == ["accepted", "rejected", "duplicate", "accepted"]
    assert first.as_dict()["accepted"] == 2 and first.accepted_users == ["u1", "7"]
    again = ingest(store, operator, [OBJECTS[1]])
    assert again.results[0]["status"] == "duplicate" and again.accepted_users == []
    rows = store.open_quarantine()
    assert [(r["source"], r["line_no"], r["reason"]) for r in rows] == [("api", 1, "unknown event type 'bogus'")]


def test_a_user_key_cannot_post_for_anyone_else_not_even_a_bad_row(store):
    from tastebud.api.keys import ApiKey

    user = ApiKey("k2", "tb_k2_", "user", "u1", None, 0)
    assert ingest(store, user, [OBJECTS[0]]).results[0]["status"] == "accepted"
    for other in ({**OBJECTS[0], "user_id": "u2"}, {"user_id": "u2", "type": "bogus"}, {"user_id": 2, "type": "x"}):
        with pytest.raises(PermissionDenied):
            ingest(store, user, [OBJECTS[0], other])
    assert store.status()["events"] == 1 and store.open_quarantine() == []


def test_a_user_key_cannot_quarantine_an_unreadable_event_of_anyone_else(store):
    """A NUL or a lone surrogate makes the reader refuse the whole object (no
    fields), but the quarantined row still names its user: the key check must see it."""
    from tastebud.api.keys import ApiKey

    user = ApiKey("k2", "tb_k2_", "user", "u1", None, 0)
    theirs = {"item_id": "m1", "type": "review", "timestamp": 1_700_000_000}
    for other in ({**theirs, "user_id": "u2", "text": "bad \ud800 x"}, {**theirs, "UID": "u2", "text": "a\x00b"},
                  {**theirs, "user_id": "u1\x00"}, {**theirs, "user_id": ["u2"]}):
        with pytest.raises(PermissionDenied):
            ingest(store, user, [other])
    assert store.open_quarantine() == []
    mine = ingest(store, user, [{**theirs, "user_id": "u1", "text": "bad \ud800 x"}])
    assert mine.results[0]["status"] == "rejected" and len(store.open_quarantine()) == 1


def test_unexpected_and_store_failures_are_json_without_a_traceback():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tastebud.api import errors

    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/store")
    def store_down():
        raise StoreError("event store error: database is locked")

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/boom")
    assert r.status_code == 500 and r.json() == {"error": {"code": "internal", "message": "internal error (RuntimeError)"}}
    r = client.get("/store")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"


def test_a_user_key_cannot_probe_other_users_events_through_chosen_event_ids(store):
    """Event ids are one namespace: a user key that picks the id of someone else's
    event must not get "duplicate" back (that would reveal the event)."""
    from tastebud.api.keys import ApiKey
    from tastebud.profiles.events import stable_event_id

    operator = ApiKey("k1", "tb_k1_", "operator", None, None, 0)
    user = ApiKey("k2", "tb_k2_", "user", "u1", None, 0)
    ts = 1_700_000_000
    theirs = ingest(store, operator, [{"user_id": "u2", "item_id": "m1", "type": "rating", "value": 4, "timestamp": ts}])
    their_id = theirs.results[0]["event_id"]
    assert their_id == stable_event_id("u2", "m1", "rating", ts * 1000, 4.0, None)
    probe = {"user_id": "u1", "item_id": "m1", "type": "view", "timestamp": ts, "event_id": their_id}
    first = ingest(store, user, [probe]).results[0]
    assert first["status"] == "accepted" and first["event_id"] != their_id
    # a retry of the same request is still recognised: the scoped id is stable
    assert ingest(store, user, [probe]).results[0] == {**first, "status": "duplicate"}
    # ids derived from the fields are kept as they are (they already include the user)
    plain = ingest(store, user, [{k: v for k, v in probe.items() if k != "event_id"}]).results[0]
    assert plain["event_id"] == stable_event_id("u1", "m1", "view", ts * 1000, None, None)
    # operators keep their own ids
    op = ingest(store, operator, [{**probe, "event_id": "shop-42"}]).results[0]
    assert op["event_id"] == "shop-42"


def test_api_errors_leave_out_the_cli_hint():
    """Hints name CLI commands and server paths: fine in a terminal, not in an API answer."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tastebud.api import errors
    from tastebud.errors import NotFoundError

    app = FastAPI()
    errors.install(app)

    @app.get("/missing")
    def missing():
        raise NotFoundError("no saved session 'abc'", hint="sessions live in /srv/secret/home/sessions")

    got = TestClient(app).get("/missing")
    assert got.status_code == 404
    assert got.json() == {"error": {"code": "not_found", "message": "no saved session 'abc'"}}
