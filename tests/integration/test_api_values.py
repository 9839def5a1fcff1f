"""Property (issue 10): whatever values an event carries, POST /v1/events decides
exactly as the library's own validator (`event_fields` under the home's
`ValueRules`), a rejected event is quarantined with the reason it was answered
with, and no accepted value breaks a read: status, profile, history,
recommendations, why and chat all keep answering 2xx, for the event's user and
for the others.

Runs in-process (FastAPI's TestClient with the lifespan, so the same
`Services` a `tastebud serve` worker builds) over a small home seeded through
the CLI. Chat phrasing and narratives are off: no LLM is needed.

Generated strings leave out NUL and lone surrogates: the JSONL reader
rejects those before `event_fields` sees the row (tests/unit/test_api.py covers
that), so the library's validator alone would not be the right oracle for them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings
from hypothesis import event as note
from hypothesis import strategies as st

from tastebud.profiles.events import EVENT_TYPES, MAX_VALUE, RowError, ValueRules, event_fields
from tests.api_helpers import T0, create_key, seed_home

pytestmark = pytest.mark.integration

U1, U2 = "u1", "u2"
CHAT_MESSAGE = "what's in my history?"
NOW_S = int(time.time())  # fixed at import: the test runs minutes, the allowed skew is a day


# ---------------------------------------------------------------- the app

@dataclass
class Api:
    client: Any
    settings: Any
    services: Any
    operator: str
    user_keys: dict[str, str] = field(default_factory=dict)

    def key_for(self, user: str) -> str:
        """A user key for `user` (made through the running key store for users first seen here)."""
        if user not in self.user_keys:
            _, self.user_keys[user] = self.services.keys.create("user", user, name="values-test")
        return self.user_keys[user]

    def call(self, method: str, path: str, key: str, headers: dict[str, str] | None = None, **kwargs: Any):
        return self.client.request(method, path, headers={"Authorization": f"Bearer {key}", **(headers or {})}, **kwargs)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from fastapi.testclient import TestClient

    from tastebud.api.app import create_app
    from tastebud.settings import load_settings

    home = seed_home(tmp_path_factory.mktemp("api-values") / "home")
    keys = {"operator": create_key(home, "operator"), U1: create_key(home, "user", U1),
            U2: create_key(home, "user", U2)}
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("TASTEBUD_")]:
            mp.delenv(name)
        mp.setenv("TASTEBUD_HOME", str(home))
        settings = load_settings(home=home, api_chat_phrasing=False, serve_narratives=False,
                                 api_rate_limit_per_s=100_000, api_rate_burst=1_000_000)
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, settings, app.state.services, keys["operator"], {U1: keys[U1], U2: keys[U2]})


# ---------------------------------------------------------------- events

def _iso(dt: datetime) -> str:
    return dt.isoformat()


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
PROBE_TS = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]
FIXED_TS = PROBE_TS + [
    "1900-01-01Z", "1900-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "2999-12-31", "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00-12:00",
    "1970-01-01T00:00:00Z", "1970-01-01T00:00:00+01:00", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000-00:01",
    "2024-02-29T12:00:00+05:30", "2024-01-01", "2024-13-01T00:00:00Z", "not a date", "", "  ",
    _iso(datetime.fromtimestamp(NOW_S - 3600, timezone.utc)),
    _iso(datetime.fromtimestamp(NOW_S + 3600, timezone(timedelta(hours=-12)))),  # future, inside the skew
    _iso(datetime.fromtimestamp(NOW_S + 3 * 86400, timezone.utc)),  # future, past the skew
    T0, T0 * 1000, str(T0), str(T0 * 1000), NOW_S * 1000 + 10 * 86_400_000, 0, -1, -T0, -(10**15),
    99_999_999_999, 100_000_000_000, 253402300799000, 253402300799001, 10**19, 2**63, -(2**63), 10**30, 10**300,
    float(T0) + 0.4996, 1e300, -1e300, 1e-300, -0.0, 5e-324, "1e300", "-5", "1.5e9", "nan", "NaN", "inf", "-inf",
    "Infinity", "0x10", "1_700_000_000", " 1700000000 ", "1700000000.123456789", True, False, None, [T0], {"t": T0},
]
valid_ts = st.one_of(
    st.integers(0, NOW_S),
    st.integers(100_000_000_000, NOW_S * 1000),
    st.floats(0, NOW_S),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2024, 12, 31), timezones=offsets).map(_iso),
)
hostile_ts = st.one_of(
    st.sampled_from(FIXED_TS),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=offsets).map(_iso),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(lambda d: d.isoformat()),
)

RATINGS = [1e300, 99, -5, "nan", "NaN", "inf", "-inf", "Infinity", 0.5, 5, "0.5", "5", "4.5", 4.5, 0, 0.49999,
           5.000001, -0.0, "1e300", "-5", "99", "", " ", "abc", None, True, False, 10**30, 10**300, -1e300,
           5e-324, 1e9, -1e9, 1_000_000_001, -1e9 - 1, [], [4], {"v": 4}]
valid_value = st.floats(0.5, 5.0)
hostile_value = st.one_of(st.sampled_from(RATINGS), st.floats(allow_nan=False, allow_infinity=False), st.integers(),
                          st.floats(allow_nan=False, allow_infinity=False).map(repr))

# no NUL, no lone surrogates (see the module docstring)
plain_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
valid_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40) \
    .map(lambda s: s if s.strip() else f"x{s}")
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                      plain_text)
nested = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(plain_text, inner, max_size=3)), max_leaves=8)
hostile_text = st.one_of(
    st.none(), plain_text, nested,
    st.sampled_from(["x" * 10_000, "x" * 10_001, " " * 20_000 + "y", "y" * 60_000, "é" * 10_001, "\n\t ", "😀" * 10_000,
                     [[[["deep"]]]], {"text": "inside"}, [], {}, 42, 4.5, True]),
)

VALID_USERS = [U1, f" {U1} ", f"{U1}\n", U2, "u" * 64, "ü-7", 7, 7.0]
HOSTILE_USERS = [None, "", "   ", "u" * 65, "u" * 100_000, [], [U1], {"id": U1}, True, 1.5, 10**30, -0.0]
ITEMS = ["m1", "m5", "m9", "m14", " m2 ", "318", 318, 3.0, "x" * 64, "é🎬", "a/b", "m1?x=1", "%2e%2e", "..", "m 1"]
HOSTILE_ITEMS = [None, "", "  ", "x" * 65, "x" * 100_000, [], ["m1"], {}, True, 1.5, 10**30, 1e300]
EVENT_IDS = ["e-1", "x" * 64, "x" * 65, 12, 1.0, "", " ", [], {"id": 1}, True, "é/../😀"]
HOSTILE_TYPES = ["frown", "", " ", None, "RATING", " view ", "Dislike", 5, ["view"], {"type": "view"}, True,
                 "view" * 100]


@st.composite
def events(draw) -> dict[str, Any]:
    """A valid event, then some of its fields (maybe none) swapped for hostile values."""
    type_ = draw(st.sampled_from(sorted(EVENT_TYPES)))
    event: dict[str, Any] = {"user_id": draw(st.sampled_from(VALID_USERS)), "type": type_,
                             "timestamp": draw(valid_ts)}
    if type_ != "search":
        event["item_id"] = draw(st.sampled_from(ITEMS))
    if type_ == "rating":
        event["value"] = draw(valid_value)
    if type_ in ("review", "search", "tag"):
        event["text"] = draw(valid_text)
    hostile = {"user_id": st.sampled_from(HOSTILE_USERS), "type": st.sampled_from(HOSTILE_TYPES),
               "item_id": st.sampled_from(HOSTILE_ITEMS), "timestamp": hostile_ts, "value": hostile_value,
               "text": hostile_text, "event_id": st.sampled_from(EVENT_IDS)}
    # timestamps and values, the subject, are swapped most often
    weighted = ["timestamp"] * 4 + ["value"] * 3 + ["text"] * 2 + ["user_id", "type", "item_id", "event_id"]
    swapped = draw(st.lists(st.sampled_from(weighted), min_size=1, max_size=3)) if draw(st.integers(0, 2)) else []
    for name in dict.fromkeys(swapped):
        event[name] = draw(hostile[name])
    if draw(st.integers(0, 5)) == 0:  # now and then a field left out rather than null
        del event[draw(st.sampled_from(sorted(event)))]
    return event


def probe(**fields: Any) -> dict[str, Any]:
    return {"user_id": U1, "item_id": "318", "type": "view", "timestamp": "2024-05-01T20:15:00Z", **fields}


# ---------------------------------------------------------------- checks

def _decide(api: Api, event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the stored user, None) when the validator accepts the event, (None, the reason) when not.
    The event is first taken through JSON, as the server receives it."""
    try:
        row = event_fields(json.loads(json.dumps(event)), ValueRules.from_settings(api.settings))
    except RowError as exc:
        return None, str(exc)
    return row[1], None


def _poster(api: Api, event: dict[str, Any]) -> str:
    """The probe's user key when the event names u1 (possibly padded), else the operator."""
    user = event.get("user_id")
    return api.user_keys[U1] if isinstance(user, str) and user.strip() == U1 else api.operator


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def _quarantined(api: Api, event: dict[str, Any], reason: str) -> list[dict]:
    rows = api.services.app.store.open_quarantine(kind="events")
    want = _canonical(event)
    return [r for r in rows if r["source"] == "api" and r["reason"] == reason and _canonical(json.loads(r["raw"])) == want]


def _check_stored(api: Api, event_id: str, context: str) -> None:
    """The stored event lies inside the documented bounds, checked here from the
    settings rather than by the validator (so a validator that stopped checking shows):
    ratings on the scale, other values within ±MAX_VALUE, texts and ids not too long."""
    from sqlalchemy import select

    from tastebud.profiles.migrations import events as events_table

    s = api.settings
    with api.services.app.store.engine.connect() as conn:
        row = conn.execute(select(events_table).where(events_table.c.event_id == event_id)).mappings().one()
    assert 0 <= row["ts"] <= (time.time() + s.future_skew_s) * 1000, (context, dict(row))
    if row["type"] == "rating":
        assert s.rating_min <= row["value"] <= s.rating_max, (context, dict(row))
    elif row["value"] is not None:  # a price, a quantity: bounded, not on the rating scale
        assert -MAX_VALUE <= row["value"] <= MAX_VALUE, (context, dict(row))
    assert row["text"] is None or len(row["text"]) <= s.max_text_chars, (context, dict(row))
    assert all(row[c] is None or 0 < len(row[c]) <= 64 for c in ("event_id", "user_id", "item_id")), (context, dict(row))


def _ok(r, what: str) -> dict:
    assert 200 <= r.status_code < 300, f"{what}: {r.status_code} {r.text[:2000]}"
    assert r.headers["content-type"].startswith("application/json"), what
    return r.json()


def _check_reads(api: Api, user: str, context: str) -> None:
    key = api.key_for(user)
    base = f"/v1/users/{quote(user, safe='')}"
    _ok(api.call("GET", f"{base}/profile", key), f"{context}: profile of {user!r}")
    _ok(api.call("GET", f"{base}/profile/history", key), f"{context}: history of {user!r}")
    recs = _ok(api.call("GET", f"{base}/recommendations", key, params={"k": 5}), f"{context}: recommendations of {user!r}")
    assert recs["items"], f"{context}: no recommendations for {user!r}"
    item = recs["items"][0]["item_id"]
    why = _ok(api.call("GET", f"{base}/recommendations/{quote(item, safe='')}/why", key,
                       params={"request_id": recs["request_id"]}), f"{context}: why {item!r} for {user!r}")
    assert why["item_id"] == item and why["request_id"] == recs["request_id"]
    chat = _ok(api.call("POST", "/v1/chat", key, json={"message": CHAT_MESSAGE}), f"{context}: chat of {user!r}")
    assert chat["phrased_by"] == "template" and chat["answer"].strip() and chat["tool_calls"], chat
    failed = [c for c in chat["tool_calls"] if c.get("ok") is False or c.get("error")]
    assert not failed, f"{context}: chat tool calls of {user!r} failed: {failed}"


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(event=events(), as_batch=st.booleans())
@example(event=probe(timestamp="9999-12-31T23:59:59-12:00"), as_batch=False)
@example(event=probe(timestamp="0001-01-01T00:00:00+14:00"), as_batch=False)
@example(event=probe(timestamp="9999-12-31T23:59:59-12:00"), as_batch=True)
@example(event=probe(timestamp="2999-01-01T00:00:00Z"), as_batch=False)
@example(event=probe(timestamp="9999-12-31T23:59:59Z"), as_batch=False)
@example(event=probe(timestamp=253402300799000), as_batch=True)
@example(event=probe(type="rating", value=1e300), as_batch=False)
@example(event=probe(type="rating", value=99), as_batch=False)
@example(event=probe(type="rating", value=-5), as_batch=True)
@example(event=probe(type="rating", value="nan"), as_batch=False)
@example(event=probe(type="rating", value=5, timestamp="1900-01-01Z"), as_batch=False)
@example(event=probe(type="rating", value=0.5, timestamp=_iso(datetime.fromtimestamp(NOW_S + 3600, timezone.utc))),
         as_batch=False)
@example(event=probe(type="review", text="y" * 10_001), as_batch=False)
@example(event=probe(type="review", text={"nested": [[1, [2]]]}), as_batch=False)
@example(event=probe(item_id="a/b", type="like"), as_batch=False)
def test_posted_values_are_decided_by_the_rules_and_never_break_a_read(api, event, as_batch):
    stored_user, reason = _decide(api, event)
    body = {"events": [event]} if as_batch else event
    posted = api.call("POST", "/v1/events", _poster(api, event),
                      content=json.dumps(body, allow_nan=False), headers={"content-type": "application/json"})
    answer = _ok(posted, f"POST /v1/events {event!r}"[:500])
    (result,) = answer["results"]
    context = f"after {event!r}"[:300]
    note("accepted" if reason is None else "rejected: " + " ".join(reason.split()[:2]))  # --hypothesis-show-statistics
    if reason is None:
        assert result["status"] in ("accepted", "duplicate"), (event, result)
        assert result["event_id"], result
        _check_stored(api, result["event_id"], context)
    else:
        assert result["status"] == "rejected", (event, result)
        assert result["reason"] == reason, (event, result)
        assert _quarantined(api, event, reason), f"no quarantine row with reason {reason!r} for {event!r}"[:1000]

    status = _ok(api.call("GET", "/v1/status", api.operator), f"{context}: status")
    assert {"store", "live", "vectors", "chat"} <= set(status), status
    for user in dict.fromkeys([U1, U2] + ([stored_user] if stored_user else [])):
        _check_reads(api, user, context)
