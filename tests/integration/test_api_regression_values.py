"""Regression for issue 10, finding 1, over a real `tastebud serve` process.

A hostile probe posted, with a user key, a view at "9999-12-31T23:59:59-12:00"
(and one at "0001-01-01T00:00:00+14:00"): both were accepted, after which
GET /v1/status answered 500 (OverflowError), the user's history read raised
and chat status failed. Ratings 1e300, 99 and -5 were accepted too. Each must
now be rejected with its reason and quarantined (and a view in 2999, past the
allowed clock skew), and every read must keep answering. Also: `{"events": null}` is a malformed request (422), and an error
about a 900,000-character session id quotes only a bounded part of it.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.api_helpers import Server, cli, create_key, seed_home

pytestmark = pytest.mark.integration

USER = "u1"
WHEN = "2024-05-01T20:15:00Z"
PROBES = [
    ({"user_id": USER, "item_id": "318", "type": "view", "timestamp": "9999-12-31T23:59:59-12:00"}, "timestamp"),
    ({"user_id": USER, "item_id": "318", "type": "view", "timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp"),
    # past the allowed clock skew, but inside what the parser can represent: only the value rules refuse it
    ({"user_id": USER, "item_id": "318", "type": "view", "timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
    ({"user_id": USER, "item_id": "m4", "type": "rating", "value": 1e300, "timestamp": WHEN}, "rating"),
    ({"user_id": USER, "item_id": "m4", "type": "rating", "value": 99, "timestamp": WHEN}, "rating"),
    ({"user_id": USER, "item_id": "m4", "type": "rating", "value": -5, "timestamp": WHEN}, "rating"),
]
MAX_MESSAGE = 500  # tastebud.errors.MAX_MESSAGE_CHARS
DAY_MS = 86_400_000  # the default future_skew_s


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = seed_home(tmp_path_factory.mktemp("regression-values") / "home")
    keys = {"operator": create_key(home, "operator"), "user": create_key(home, "user", USER)}
    srv = Server(home).start()
    srv.keys = keys
    yield srv
    code = srv.stop()
    log = srv.log()
    assert code in (0, -signal.SIGTERM), log
    assert "Traceback" not in log and "OverflowError" not in log, log[-5000:]


def _json(r, status: int = 200) -> dict:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:2000]}"
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def _quarantine(home: Path) -> list[dict]:
    done = cli(home, "quarantine", "list", "--json", "--limit", "1000")
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def probed(server) -> list[dict]:
    """The probe, posted one event per request with the user key as it was: the answers, in order."""
    with server.client(server.keys["user"]) as user:
        return [_json(user.post("/v1/events", json=event)) for event, _ in PROBES]


def test_the_probe_values_are_rejected_with_a_reason_and_quarantined(server, probed):
    reasons = []
    for (event, topic), answer in zip(PROBES, probed):
        assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (0, 0, 1), (event, answer)
        (result,) = answer["results"]
        assert result["status"] == "rejected" and result["event_id"] is None, (event, result)
        assert result["reason"] and topic in result["reason"], (event, result)
        reasons.append(result["reason"])

    rows = [r for r in _quarantine(server.home) if r["kind"] == "events" and r["source"] == "api"]
    for (event, _), reason in zip(PROBES, reasons):
        assert [r for r in rows if r["reason"] == reason and json.loads(r["raw"]) == event], (event, reason, rows)
    # nothing of the probe reached the events table
    assert not server.query("SELECT event_id FROM events WHERE ts < 0 OR ts > ?", (int(time.time() * 1000) + DAY_MS,))
    assert not server.query("SELECT event_id FROM events WHERE type = 'rating' AND (value > 5 OR value < 0.5)")


def test_after_the_probe_every_read_still_answers(server, probed):
    with server.client(server.keys["user"]) as user, server.client(server.keys["operator"]) as operator:
        status = _json(operator.get("/v1/status"))
        assert {"store", "live", "vectors", "chat"} <= set(status), status
        done = cli(server.home, "status", "--json", check=False)
        assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        assert json.loads(done.stdout)["events"] == status["store"]["events"], done.stdout

        history = _json(user.get(f"/v1/users/{USER}/profile/history"))
        assert history["user_id"] == USER and history["versions"], history
        profile = _json(user.get(f"/v1/users/{USER}/profile"))
        assert profile["user_id"] == USER, profile
        recs = _json(user.get(f"/v1/users/{USER}/recommendations", params={"k": 3}))
        assert recs["items"], recs
        item = recs["items"][0]["item_id"]
        why = _json(user.get(f"/v1/users/{USER}/recommendations/{item}/why", params={"request_id": recs["request_id"]}))
        assert why["item_id"] == item, why

        chat = _json(user.post("/v1/chat", json={"message": "show my history"}))
        assert chat["answer"].strip() and chat["phrased_by"] == "template", chat
        assert chat["tool_calls"] and all(c["ok"] for c in chat["tool_calls"]), chat


@pytest.mark.parametrize("role", ["operator", "user"])
def test_events_null_is_an_invalid_request(server, role):
    with server.client(server.keys[role]) as c:
        before = server.query("SELECT COUNT(*) FROM quarantine")[0][0]
        body = _json(c.post("/v1/events", json={"events": None}), 422)
        assert body["error"]["code"] == "invalid_request", body
        assert server.query("SELECT COUNT(*) FROM quarantine")[0][0] == before  # nothing quarantined either


def test_an_error_about_a_huge_session_id_is_short(server):
    huge = "s" * 900_000
    with server.client(server.keys["user"]) as c:
        r = c.post("/v1/chat", json={"message": "show my history", "session_id": huge})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:1000])
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] in ("invalid_request", "not_found"), error
    assert len(error["message"]) <= MAX_MESSAGE, len(error["message"])
    assert len(r.content) < 4000, len(r.content)  # no details echo the id either
