"""The HTTP API over a real `tastebud serve` process on a loopback port (httpx):
every endpoint, every role (each forbidden combination in one table), the
error shapes, limits, the access log, keys from the CLI, read-your-writes of a
dislike, and a SIGKILL right after acknowledged writes. Narratives and chat
phrasing are off: no LLM is needed. The schemathesis run is marked `slow`."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import (
    T0, Server, cli, copy_home, create_key, key_id, seed_home, wait_for,
)

pytestmark = pytest.mark.integration

# A slow refill and a big burst: no test of the suite meets the limit, except
# the one that spends a fresh key's whole burst on purpose.
RATE = {"api_rate_limit_per_s": 0.5, "api_rate_burst": 400}
ERROR_KEYS = {"code", "message"}
ACCESS_FIELDS = {"ts", "key_id", "role", "user", "method", "path", "status", "duration_ms"}


@pytest.fixture(scope="session")
def template_home(tmp_path_factory) -> Path:
    """Seeded once through the CLI; every server runs on its own copy."""
    return seed_home(tmp_path_factory.mktemp("api") / "template")


@pytest.fixture(scope="session")
def server(template_home, tmp_path_factory):
    home = copy_home(template_home, tmp_path_factory.mktemp("api-main") / "home")
    keys = {
        "operator": create_key(home, "operator"),
        "support": create_key(home, "support"),
        "user_u1": create_key(home, "user", "u1"),
        "user_u2": create_key(home, "user", "u2"),
        "revoked": create_key(home, "operator"),
    }
    cli(home, "keys", "revoke", key_id(keys["revoked"]))
    srv = Server(home, **RATE).start()
    srv.keys = keys
    yield srv
    assert_graceful(srv)


def assert_graceful(srv: Server) -> None:
    """SIGTERM: uvicorn finishes in-flight requests, runs the lifespan's shutdown
    (live updater stopped, store closed), then exits by the signal it caught."""
    code = srv.stop()
    assert code in (0, -signal.SIGTERM), srv.log()
    assert "Application shutdown complete" in srv.log() and "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="session")
def logged(server) -> dict[str, str]:
    """One served (logged) list per user, so `why` has something to explain: user -> an item in it."""
    out = {}
    with server.client(server.keys["operator"]) as c:
        for user in ("u1", "u2"):
            r = c.get(f"/v1/users/{user}/recommendations", params={"k": 3})
            assert r.status_code == 200, r.text
            out[user] = r.json()["items"][0]["item_id"]
    return out


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and ERROR_KEYS <= set(body["error"]) and body["error"]["code"] == code, body
    return body["error"]


_case = iter(range(10**6))


def unique_event(user: str, item: str = "m4", type_: str = "view") -> dict:
    n = next(_case)
    return {"event_id": f"test-{user}-{type_}-{n}-{time.time_ns()}", "user_id": user, "item_id": item,
            "type": type_, "timestamp": T0 + 86_400 + n}


# ---------------------------------------------------------------- health and spec

def test_health_ready_and_openapi_need_no_key(server):
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz").json()
        assert ready == {"ready": True, "checks": {"store": "ok", "vectors": "ok"}}
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    paths = spec["paths"]
    assert {"/v1/events", "/v1/users/{user_id}/profile", "/v1/users/{user_id}/profile/history",
            "/v1/users/{user_id}/recommendations", "/v1/users/{user_id}/recommendations/{item_id}/why",
            "/v1/chat", "/v1/admin/refresh", "/v1/status", "/healthz", "/readyz"} <= set(paths)
    for path, ops in paths.items():
        for op in ops.values():
            if path.startswith("/v1/"):
                assert op["security"] == [{"HTTPBearer": []}]
                assert {"401", "403", "422", "429", "500", "503"} <= set(op["responses"])
                assert op["responses"]["403"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


# ---------------------------------------------------------------- authentication

@pytest.mark.parametrize("header", [
    None,
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer not-a-key",
    "Bearer tb_00000000_" + "A" * 43,
])
def test_missing_or_invalid_key_is_401(server, header):
    headers = {"Authorization": header} if header is not None else {}
    with server.client() as c:
        for method, path in (("GET", "/v1/status"), ("GET", "/v1/users/u1/profile")):
            err = assert_error(c.request(method, path, headers=headers), 401, "unauthorized")
            assert "Bearer" in err["message"] or "key" in err["message"]


def test_wrong_secret_and_revoked_key_are_401(server):
    good = server.keys["operator"]
    wrong_secret = good[: good.rindex("_") + 1] + "B" * 43
    with server.client(wrong_secret) as c:
        assert_error(c.get("/v1/status"), 401, "unauthorized")
    with server.client(server.keys["revoked"]) as c:
        r = c.get("/v1/status")
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"


def test_status_shows_the_workers_memory_and_its_frozen_heap(server):
    """What a soak run watches (bench/serve.py --status-every): the worker froze its
    heap at start-up (serve_freeze_gc) and freezes the survivors of full collections."""
    with server.client(server.keys["operator"]) as c:
        r = c.get("/v1/status")
    assert r.status_code == 200, r.text
    process = r.json()["process"]
    assert process["pid"] == server.proc.pid  # one worker: uvicorn serves in the `tastebud serve` process
    assert process["rss_bytes"] > 50_000_000  # the item side and the catalog alone
    assert process["gc"]["frozen"] > 100_000 and process["gc"]["freezes_survivors"] is True
    assert len(process["gc"]["collections_by_generation"]) == 3


def test_keys_cli_shows_the_key_once_lists_no_secret_and_revokes(server):
    done = cli(server.home, "keys", "create", "--role", "user", "--user", "u1", "--name", "phone app")
    key = done.stdout.splitlines()[-1]
    assert re.fullmatch(r"tb_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key), done.stdout
    assert done.stdout.strip() == key  # alone: the rest goes to stderr
    listed = json.loads(cli(server.home, "keys", "list", "--json").stdout)
    mine = [k for k in listed if k["key_id"] == key_id(key)]
    assert mine and mine[0]["role"] == "user" and mine[0]["user_id"] == "u1" and mine[0]["name"] == "phone app"
    text = cli(server.home, "keys", "list", "--json").stdout + cli(server.home, "keys", "list").stdout
    assert key.split("_", 2)[2] not in text and "secret" not in text
    with server.client(key) as c:
        assert c.get("/v1/users/u1/profile").status_code == 200
        cli(server.home, "keys", "revoke", key_id(key))
        assert_error(c.get("/v1/users/u1/profile"), 401, "unauthorized")
    assert cli(server.home, "keys", "revoke", "nosuchid", check=False).returncode == 66
    assert cli(server.home, "keys", "create", "--role", "user", check=False).returncode == 65  # a user key needs --user


# ---------------------------------------------------------------- roles: every combination

ENDPOINTS = ("profile", "history", "recommendations", "why", "events", "chat", "refresh", "status")


def call(c: httpx.Client, endpoint: str, user: str, why_item: str) -> tuple[httpx.Response, str | None]:
    """One request of `endpoint` aimed at `user`; (response, id of the event it posts, if any)."""
    if endpoint == "profile":
        return c.get(f"/v1/users/{user}/profile"), None
    if endpoint == "history":
        return c.get(f"/v1/users/{user}/profile/history"), None
    if endpoint == "recommendations":
        return c.get(f"/v1/users/{user}/recommendations", params={"k": 3}), None
    if endpoint == "why":
        return c.get(f"/v1/users/{user}/recommendations/{why_item}/why"), None
    if endpoint == "events":
        event = unique_event(user)
        return c.post("/v1/events", json=event), event["event_id"]
    if endpoint == "chat":
        return c.post("/v1/chat", json={"message": "show my profile", "user_id": user}), None
    if endpoint == "refresh":
        return c.post("/v1/admin/refresh", json={"users": [user]}), None
    if endpoint == "status":
        return c.get("/v1/status"), None
    raise AssertionError(endpoint)


OK, NO = 200, 403
# (key, the user the call is about) -> expected status per endpoint
EXPECTED = {
    ("operator", "u2"): dict.fromkeys(ENDPOINTS, OK),
    ("support", "u2"): {"profile": OK, "history": OK, "recommendations": OK, "why": OK,
                        "events": NO, "chat": OK, "refresh": NO, "status": NO},
    ("user_u1", "u1"): {"profile": OK, "history": OK, "recommendations": OK, "why": OK,
                        "events": OK, "chat": OK, "refresh": NO, "status": NO},
    ("user_u1", "u2"): dict.fromkeys(ENDPOINTS, NO),
    ("user_u2", "u1"): dict.fromkeys(ENDPOINTS, NO),
}
MATRIX = [(k, u, e, s) for (k, u), row in EXPECTED.items() for e, s in row.items()]


@pytest.mark.parametrize("key,user,endpoint,expected", MATRIX, ids=[f"{k}-{u}-{e}" for k, u, e, _ in MATRIX])
def test_role_matrix(server, logged, key, user, endpoint, expected):
    with server.client(server.keys[key]) as c:
        r, event_id = call(c, endpoint, user, logged[user])
    if expected == NO:
        assert_error(r, 403, "forbidden")
    else:
        assert r.status_code == 200, r.text
    if event_id is not None:  # a refused write leaves nothing behind; an accepted one is stored under the id answered
        stored_as = r.json()["results"][0]["event_id"] if expected == OK else event_id
        assert server.stored_event_ids([stored_as]) == ({stored_as} if expected == OK else set())


def test_user_key_posting_any_event_of_another_user_writes_nothing(server):
    mine, theirs, bad_theirs = unique_event("u1"), unique_event("u2"), {"user_id": "u2", "type": "bogus"}
    with server.client(server.keys["user_u1"]) as c:
        assert_error(c.post("/v1/events", json={"events": [mine, theirs]}), 403, "forbidden")
        assert_error(c.post("/v1/events", json={"events": [mine, bad_theirs]}), 403, "forbidden")
    assert server.stored_event_ids([mine["event_id"], theirs["event_id"]]) == set()


def test_chat_pins_user_keys_and_sessions_to_their_owner(server):
    with server.client(server.keys["user_u1"]) as u1, server.client(server.keys["support"]) as support:
        first = u1.post("/v1/chat", json={"message": "recommend me something to watch tonight"})
        assert first.status_code == 200, first.text
        turn = first.json()
        assert turn["tool_calls"][0]["name"] == "recommend" and turn["tool_calls"][0]["ok"]
        assert turn["tool_calls"][0]["args"]["user_id"] == "u1" and turn["grounded"] and turn["items"]
        assert turn["phrased_by"] == "template"  # phrasing is off in these tests
        why = u1.post("/v1/chat", json={"message": "why the first one?", "session_id": turn["session_id"]}).json()
        assert why["session_id"] == turn["session_id"]
        assert [c["name"] for c in why["tool_calls"]] == ["explain"] and why["tool_calls"][0]["ok"]
        assert turn["items"][0]["title"] in why["answer"]

        staff = support.post("/v1/chat", json={"message": "show the profile", "user_id": "u1"})
        assert staff.status_code == 200, staff.text
        assert staff.json()["tool_calls"][0]["args"]["user_id"] == "u1"
        refused = support.post("/v1/chat", json={"message": "recommend something", "session_id": staff.json()["session_id"]}).json()
        assert refused["tool_calls"][0]["refused"] is True  # support writes nothing, not even a served list

        assert_error(u1.post("/v1/chat", json={"message": "hi", "session_id": staff.json()["session_id"]}), 403, "forbidden")
        assert_error(support.post("/v1/chat", json={"message": "hi", "session_id": turn["session_id"]}), 403, "forbidden")
        assert_error(u1.post("/v1/chat", json={"message": "hi", "session_id": "abcd1234abcd"}), 404, "not_found")
        assert_error(u1.post("/v1/chat", json={"message": "hi", "session_id": "../../etc"}), 422, "invalid_request")


def test_concurrent_turns_of_one_chat_session_are_never_a_server_error(server):
    """A retry or a double click runs two turns of one session at once: each
    answers, and the saved session stays readable for the next turn."""
    from concurrent.futures import ThreadPoolExecutor

    with server.client(server.keys["user_u1"]) as c:
        sid = c.post("/v1/chat", json={"message": "show my profile"}).json()["session_id"]

    def turn(_: int) -> int:
        with server.client(server.keys["user_u1"]) as c:
            return c.post("/v1/chat", json={"message": "show my profile", "session_id": sid}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(turn, range(30))) == {200}


# ---------------------------------------------------------------- endpoints

def test_events_single_and_batch_with_per_item_results_and_quarantine(server):
    good = unique_event("u2", "m5", "click")
    alias = {"userId": "u2", "movieId": "m9", "event": "rating", "rating": 4.5, "ts": "2024-05-01T20:00:00Z"}
    with server.client(server.keys["operator"]) as c:
        single = c.post("/v1/events", json=good)
        assert single.json() == {"accepted": 1, "duplicates": 0, "rejected": 0,
                                 "results": [{"index": 0, "status": "accepted", "event_id": good["event_id"]}]}
        batch = [good, {"user_id": "u2", "type": "bogus", "item_id": "m1", "timestamp": T0}, alias,
                 42, {"user_id": "u2", "item_id": "m1", "type": "rating", "timestamp": T0}, alias]
        r = c.post("/v1/events", json={"events": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 2, 3)
    statuses = [(x["index"], x["status"]) for x in body["results"]]
    assert statuses == [(0, "duplicate"), (1, "rejected"), (2, "accepted"), (3, "rejected"), (4, "rejected"), (5, "duplicate")]
    reasons = {x["index"]: x["reason"] for x in body["results"] if x["status"] == "rejected"}
    assert reasons == {1: "unknown event type 'bogus'", 3: "bad JSON: expected an object, got int",
                       4: "rating event without a value"}
    assert body["results"][2]["event_id"] == body["results"][5]["event_id"]  # the derived id, stable
    assert server.stored_event_ids([body["results"][2]["event_id"]]) == {body["results"][2]["event_id"]}
    quarantined = server.query("SELECT line_no, reason FROM quarantine WHERE source = 'api' AND resolved_at IS NULL")
    assert {(1, reasons[1]), (3, reasons[3]), (4, reasons[4])} <= set(quarantined)


def test_a_posted_dislike_removes_the_item_from_the_next_recommendations(server):
    with server.client(server.keys["user_u1"]) as c:
        before = c.get("/v1/users/u1/recommendations", params={"k": 5}).json()
        top = before["items"][0]["item_id"]
        profile_before = c.get("/v1/users/u1/profile").json()
        event = unique_event("u1", top, "dislike")
        posted = c.post("/v1/events", json={"events": [event]}).json()
        assert [(r["index"], r["status"]) for r in posted["results"]] == [(0, "accepted")]
        assert posted["results"][0]["event_id"] != event["event_id"]  # a user key's chosen id is scoped to it
        after = c.get("/v1/users/u1/recommendations", params={"k": 20}).json()
        profile_after = c.get("/v1/users/u1/profile").json()
    assert top not in [i["item_id"] for i in after["items"]]
    assert after["request_id"] != before["request_id"]
    assert profile_after["last_event_seq"] > profile_before["last_event_seq"]  # read-your-writes
    assert profile_after["version"] > profile_before["version"]


def test_profile_history_recommendations_and_why(server, logged):
    with server.client(server.keys["support"]) as c:
        profile = c.get("/v1/users/u2/profile").json()
        assert profile["user_id"] == "u2" and profile["long_term"]["tags"] and "drift" in profile
        history = c.get("/v1/users/u2/profile/history").json()
        assert history["user_id"] == "u2" and history["versions"][0]["version"] == 1
        assert {"changes", "trigger_event_ids", "narrative_source"} <= set(history["versions"][0])
        recs = c.get("/v1/users/u2/recommendations", params={"k": 4, "exclude": ["m13"], "category": "Comedy"}).json()
        assert recs["params"]["k"] == 4 and recs["params"]["exclude"] == ["m13"] and recs["params"]["category"] == "Comedy"
        assert 0 < len(recs["items"]) <= 4 and all(set(i) == {"item_id", "title", "rank", "score", "parts"} for i in recs["items"])
        item = recs["items"][0]["item_id"]
        why = c.get(f"/v1/users/u2/recommendations/{item}/why", params={"request_id": recs["request_id"]}).json()
        assert why["recommended"] is True and why["request_id"] == recs["request_id"] and why["item_id"] == item
        assert why["source"] == "api" and why["sentences"] and why["parts"]
        assert_error(c.get("/v1/users/u2/recommendations/m1/why", params={"request_id": "no-such-request"}), 404, "not_found")
        other = c.get(f"/v1/users/u1/recommendations/{logged['u1']}/why").json()["request_id"]
        assert_error(c.get(f"/v1/users/u2/recommendations/{item}/why", params={"request_id": other}), 404, "not_found")
        assert_error(c.get("/v1/users/nobody/profile"), 404, "not_found")
        assert_error(c.get("/v1/users/nobody/profile/history"), 404, "not_found")


def test_admin_refresh_and_status(server):
    with server.client(server.keys["operator"]) as c:
        one = c.post("/v1/admin/refresh", json={"users": ["u2"]}).json()
        assert one["users"] == 1 and one["narratives_queued"] == 0
        everyone = c.post("/v1/admin/refresh", json={"all": True}).json()
        assert everyone["users"] >= len(["u1", "u2"])
        assert c.post("/v1/admin/refresh", json={}).status_code == 200  # the lagging ones
        assert_error(c.post("/v1/admin/refresh", json={"users": ["nobody"]}), 404, "not_found")
        assert_error(c.post("/v1/admin/refresh", json={"all": 1}), 422, "invalid_request")
        status = c.get("/v1/status").json()
    assert status["store"]["users"] >= 11 and status["store"]["items"] >= 14
    assert status["live"]["running"] is True and status["live"]["narratives"]["enabled"] is False
    assert status["vectors"]["items"] >= 14


# ---------------------------------------------------------------- robustness

def test_validation_errors_are_422_json(server):
    with server.client(server.keys["operator"]) as c:
        err = assert_error(c.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"}),
                           422, "invalid_request")
        assert err["details"][0]["type"] == "json_invalid"
        assert_error(c.post("/v1/events", content=b"\xff\xfe", headers={"content-type": "application/json"}), 422, "invalid_request")
        assert_error(c.post("/v1/events", json=[{"user_id": "u1"}]), 422, "invalid_request")
        err = assert_error(c.get("/v1/users/u1/recommendations", params={"k": 0}), 422, "invalid_request")
        assert err["details"][0]["loc"] == ["query", "k"]
        assert_error(c.get("/v1/users/u1/recommendations", params={"k": "many"}), 422, "invalid_request")
        assert_error(c.get("/v1/users/" + "x" * 65 + "/profile"), 422, "invalid_request")
        assert_error(c.post("/v1/chat", json={"message": ""}), 422, "invalid_request")
        assert_error(c.post("/v1/chat", json={"message": "hi", "role": "operator"}), 422, "invalid_request")


def test_unknown_path_and_method_are_json(server):
    with server.client(server.keys["operator"]) as c:
        assert_error(c.get("/v1/nothing-here"), 404, "not_found")
        assert_error(c.delete("/v1/status"), 405, "method_not_allowed")
        assert_error(c.get("/"), 404, "not_found")


def test_body_limits_are_413_json_also_for_chunked_bodies(server):
    limit = 1 << 20

    def chunked():  # no Content-Length: the server has to count
        yield b'{"events": ['
        row = json.dumps(unique_event("u1")).encode() + b","
        for _ in range(limit // len(row) + 10):
            yield row
        yield b"{}]}"

    with server.client(server.keys["operator"]) as c:
        assert_error(c.post("/v1/events", content=chunked(), headers={"content-type": "application/json"}),
                     413, "payload_too_large")
        assert_error(c.post("/v1/events", content=b" " * (limit + 1), headers={"content-type": "application/json"}),
                     413, "payload_too_large")
        assert_error(c.request("GET", "/v1/status", content=b" " * (limit + 1)), 413, "payload_too_large")
        err = assert_error(c.post("/v1/events", json={"events": [{}] * 1001}), 413, "payload_too_large")
        assert "1000" in err["message"]
        assert c.get("/healthz").status_code == 200  # and the server is fine


def test_rate_limit_is_per_key_429_with_retry_after(server):
    key = create_key(server.home, "support")
    with server.client(key) as c, server.client(server.keys["support"]) as other:
        statuses = []
        for _ in range(RATE["api_rate_burst"] + 50):
            r = c.get("/v1/users/u1/profile/history")
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert set(statuses[:-1]) == {200} and len(statuses) > RATE["api_rate_burst"]
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert other.get("/v1/users/u1/profile/history").status_code == 200  # another key is unaffected


def test_access_log_has_every_call_and_no_secrets(server):
    marker_review = "MARKER-REVIEW-7f3a a gloriously tense heist"
    marker_chat = "MARKER-CHAT-91bd recommend me something"
    review = {**unique_event("u1", "m1", "review"), "text": marker_review}
    with server.client(server.keys["user_u1"]) as c:
        assert c.post("/v1/events", json=review).status_code == 200
        assert c.post("/v1/chat", json={"message": marker_chat}).status_code == 200
        assert c.get("/v1/status").status_code == 403
        assert c.get("/v1/users/u1/recommendations", params={"category": "MARKER-QUERY"}).status_code == 200
    with server.client("tb_00000000_MARKER-BAD-KEY") as c:
        assert c.get("/v1/users/u1/profile").status_code == 401
    path = server.home / "logs" / "access.jsonl"
    uid = key_id(server.keys["user_u1"])

    def lines() -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    wait_for("the access log lines", lambda: any(e["path"] == "/v1/users/u1/recommendations" and e["key_id"] == uid
                                                 for e in lines()), timeout=30)
    entries = lines()
    assert all(set(e) == ACCESS_FIELDS for e in entries)
    mine = [e for e in entries if e["key_id"] == uid]
    assert {("POST", "/v1/events", 200), ("POST", "/v1/chat", 200), ("GET", "/v1/status", 403)} <= {
        (e["method"], e["path"], e["status"]) for e in mine}
    assert all(e["role"] == "user" and e["user"] == "u1" for e in mine)
    assert any(e["status"] == 401 and e["key_id"] is None for e in entries)
    text = path.read_text()
    for key in server.keys.values():
        assert key not in text and key.split("_", 2)[2] not in text
    for secret in ("Bearer", "authorization", "MARKER-REVIEW", "MARKER-CHAT", "MARKER-QUERY", "MARKER-BAD-KEY", "heist"):
        assert secret.lower() not in text.lower()


class StallingLLM:
    """An "OpenAI-compatible server" that takes connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


def test_chat_answers_deterministically_when_the_llm_times_out(template_home, tmp_path):
    llm = StallingLLM()
    home = copy_home(template_home, tmp_path / "home")
    user, operator = create_key(home, "user", "u1"), create_key(home, "operator")
    srv = Server(home, **RATE, api_chat_phrasing=1, api_chat_timeout_s=1, llm_base_url=llm.url).start()
    try:
        with srv.client(operator) as ops, srv.client(user) as c:
            wait_for("the chat LLM client", lambda: ops.get("/v1/status").json()["chat"]["llm"] == "ready", timeout=60)
            r = c.post("/v1/chat", json={"message": "recommend me something to watch tonight"})
        assert r.status_code == 200, r.text
        turn = r.json()
        assert llm.connections, "the LLM was never asked"
        assert turn["phrased_by"] == "template" and turn["grounded"]
        assert [t["name"] for t in turn["tool_calls"]] == ["recommend"] and turn["tool_calls"][0]["ok"]
        assert turn["items"] and turn["items"][0]["title"] in turn["answer"]
    finally:
        assert_graceful(srv)
        llm.close()


# ---------------------------------------------------------------- durability

def test_events_acknowledged_before_a_sigkill_survive_with_their_narrative_work(template_home, tmp_path):
    home = copy_home(template_home, tmp_path / "home")
    key = create_key(home, "operator")
    # Narratives on, but due only in an hour (and never reachable: no LLM is started).
    settings = {**RATE, "serve_narratives": 1, "narrative_debounce_s": 3600, "llm_base_url": "http://127.0.0.1:9/v1"}
    srv = Server(home, **settings).start()
    acked: list[str] = []
    users = ["u1", "u2", "new1", "new2"]
    try:
        with srv.client(key) as c:
            for batch in range(8):
                events = [unique_event(users[(batch + n) % len(users)], f"m{1 + n % 14}", "click") for n in range(100)]
                r = c.post("/v1/events", json={"events": events})
                assert r.status_code == 200, r.text
                acked += [x["event_id"] for x in r.json()["results"] if x["status"] in ("accepted", "duplicate")]
    finally:
        srv.kill()  # right after the last acknowledgement: no shutdown code runs
    assert len(acked) == 800

    again = Server(home, **settings).start()
    try:
        assert again.stored_event_ids(acked) == set(acked)
        queued = lambda: {r[0] for r in again.query("SELECT user_id FROM narrative_queue")} >= set(users)  # noqa: E731
        wait_for("the narrative requests of every user with acknowledged events", queued, timeout=120)
        with again.client(key) as c:
            status = c.get("/v1/status").json()
            assert status["live"]["narratives"]["queue_depth"] >= len(users)
            for user in users:  # the computed profiles caught up too
                profile = c.get(f"/v1/users/{user}/profile").json()
                last = again.query("SELECT max(seq) FROM events WHERE user_id = ?", (user,))[0][0]
                assert profile["last_event_seq"] == last
    finally:
        assert_graceful(again)


# ---------------------------------------------------------------- schemathesis

@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_and_no_spec_violations(template_home, tmp_path):
    """Every operation with an operator key, then what a user key reaches (its own
    user id in paths, no admin operations). Prints the number of generated cases."""
    pytest.importorskip("schemathesis")
    home = copy_home(template_home, tmp_path / "home")
    user_config = tmp_path / "schemathesis-user.toml"
    user_config.write_text('[parameters]\n"path.user_id" = "u1"\n')
    runs = {
        "operator": (create_key(home, "operator"), []),
        "user": (create_key(home, "user", "u1"), ["--config-file", str(user_config)]),
    }
    srv = Server(home, api_rate_limit_per_s=10000, api_rate_burst=10000).start()
    total = 0
    try:
        for role, (key, config) in runs.items():
            done = subprocess.run(
                [str(Path(sys.executable).parent / "schemathesis"), *config, "run", f"{srv.base_url}/openapi.json",
                 "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "50",
                 "--seed", "20260601", "--workers", "1", "--request-timeout", "60",
                 "--header", f"Authorization: Bearer {key}", *(["--exclude-tag", "admin"] if role == "user" else [])],
                capture_output=True, text=True, timeout=1800, cwd=tmp_path)  # its cache dir lands there
            summary = re.search(r"(\d+) generated, .*", done.stdout)
            print(f"\nschemathesis ({role} key): {summary.group(0) if summary else '?'}")
            # every generated case passed (a warning, such as 404s once DELETE /v1/users/{id} forgot
            # the user the stateful phase was using, is not a failure)
            passed = re.search(r"(\d+) generated, \1 passed", done.stdout)
            assert done.returncode == 0 and passed, done.stdout[-6000:] + done.stderr[-2000:]
            total += int(summary.group(1))
    finally:
        assert_graceful(srv)
    print(f"schemathesis: {total} generated test cases in all, no failures")
