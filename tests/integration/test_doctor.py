"""Issue 10: rows an older version or a direct database write left behind never
break a read, and `tastebud doctor [--fix] [--json]` finds them and repairs what
can be repaired.

A real home (SQLite and Chroma in a temp dir, the real embedding model): a small
catalog and events CSV are ingested, profiled and indexed; then bad rows are
planted with plain sqlite3, as an older version might have written them."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytestmark = pytest.mark.integration

CATALOG = """item_id,title,categories
m1,Heat,Crime|Thriller
m2,Ronin,Action|Crime|Thriller
m3,The Usual Suspects,Crime|Mystery
m4,Paddington,Comedy|Children
m5,Toy Story,Animation|Comedy
m6,Alien,Horror|Sci-Fi
m7,Se7en,Crime|Mystery|Thriller
m8,Fargo,Comedy|Crime|Drama
"""
T0 = 1_700_000_000  # epoch seconds
HISTORIES = {"u1": ["m1", "m2", "m3", "m7"], "u2": ["m1", "m7", "m8", "m2"], "u3": ["m4", "m5", "m8", "m9"]}  # m9: a stub
T_MS = (T0 + 86_400) * 1000  # a valid time after the ingested events

# (event_id, user, item, type, ts ms, value, text), and the reason doctor must give
PLANTED = [
    (("bad-future", "u1", "m4", "rating", 253402300799000 + 43_200_000, 4.0, None),  # "9999-12-31T23:59:59-12:00"
     "timestamp past year 9999"),
    (("bad-past", "u1", "m5", "rating", -62135553600000, 3.0, None), "timestamp before 1970"),  # year 1
    (("bad-huge", "u2", "m6", "rating", T_MS, 1e300, None), "rating 1e+300 outside the scale 0.5-5"),
    (("bad-negative", "u2", "m4", "rating", T_MS + 1000, -5.0, None), "rating -5 outside the scale 0.5-5"),
]


def events_csv() -> str:
    lines = ["user_id,item_id,type,timestamp,value"]
    for user, items in HISTORIES.items():
        for n, item in enumerate(items):
            lines.append(f"{user},{item},rating,{T0 + n * 3600},{4.0 + (n % 3) * 0.5}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def world(home, embedder, tmp_path, monkeypatch):
    """The built home; every App made in this test (CLI, API) shares the session's embedding model."""
    from tastebud.retrieval.service import sync_item_vectors
    from tastebud.settings import load_settings
    from tastebud.app import App

    from tastebud.cli.state import State

    monkeypatch.setattr(State, "parts", {"embedder": embedder})  # injected into the App, not patched
    (tmp_path / "catalog.csv").write_text(CATALOG)
    (tmp_path / "events.csv").write_text(events_csv())
    app = App(load_settings(), embedder=embedder)
    try:
        assert app.ingestor().ingest_catalog(str(tmp_path / "catalog.csv")).accepted == 8
        assert app.ingestor().ingest_events(str(tmp_path / "events.csv")).accepted == 12
        refresher = app.refresher(narratives=False)
        refresher.refresh(refresher.select_users(all_users=True), narratives=False)
        sync_item_vectors(app.store, app.vectors)
    finally:
        app.close()
    return home


@pytest.fixture
def cli(world):
    """The Typer app in-process; each call gets a fresh App, as a new process would."""
    from typer.testing import CliRunner

    from tastebud.cli.main import State, _register, app

    _register()
    runner = CliRunner()

    def invoke(*args: str, code: int | None = 0):
        result = runner.invoke(app, list(args))
        if State._app is not None:
            State._app.close()
            State._app = None
        if code is not None:
            assert result.exit_code == code, (args, result.output, result.exception)
        return result

    yield invoke


def plant(home, rows) -> dict[str, int]:
    """Insert event rows with plain SQL, as an older version might have; returns their seqs by event id."""
    db = sqlite3.connect(home / "tastebud.db")
    try:
        db.executemany("INSERT INTO events (event_id, user_id, item_id, type, ts, value, text) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       rows)
        db.commit()
        return dict(db.execute(f"SELECT event_id, seq FROM events WHERE event_id IN ({','.join('?' * len(rows))})",
                               [r[0] for r in rows]).fetchall())
    finally:
        db.close()


def sql(home, query: str, *params) -> list[tuple]:
    db = sqlite3.connect(home / "tastebud.db")
    try:
        rows = db.execute(query, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def finite_json(text: str):
    """Parse strictly: NaN or Infinity anywhere would fail an HTTP client too."""
    def refuse(token):
        raise ValueError(f"non-finite number {token} in JSON")

    return json.loads(text, parse_constant=refuse)


def every_read_works(home, cli, *, bad_times: bool) -> None:
    from tastebud.cli.state import State

    embedder = State.parts["embedder"]  # the one the world fixture injected
    """Store status, CLI status/profile/history/refresh/recommend/why, the chat tools, the API routes."""
    from tastebud.agent import render
    from tastebud.agent.roles import Principal, Role
    from tastebud.agent.tools import Toolbox
    from tastebud.settings import load_settings
    from tastebud.app import App

    # the store and the CLI
    status = finite_json(cli("status", "--json").stdout)
    if bad_times:  # the earliest and latest stored times are the planted ones: unknown, not a crash
        assert status["first_event_at"] is None and status["last_event_at"] is None
    else:
        assert status["first_event_at"] == "2023-11-14T22:13:20Z"
    assert "first event" in cli("status").stdout
    cli("refresh", "--user", "u1", "--user", "u2", "--no-narratives")  # what an API read does first
    for user in ("u1", "u2"):
        shown = finite_json(cli("profile", "show", user, "--json").stdout)
        assert shown["user_id"] == user and shown["long_term"]["tags"]
        assert f"user {user}" in cli("profile", "show", user).stdout
        assert finite_json(cli("profile", "history", user, "--json").stdout)["versions"]
        assert "profile history" in cli("profile", "history", user).stdout
        recs = finite_json(cli("recommend", user, "-k", "3", "--json", "--explain").stdout)
        assert recs["items"], recs
        why = finite_json(cli("why", user, recs["items"][0]["item_id"], "--json").stdout)
        assert why["recommended"] and why["sentences"]
        assert "was #1 for user" in cli("why", user, recs["items"][0]["item_id"]).stdout

    # the chat tools, as an operator
    app = App(load_settings(), embedder=embedder)
    try:
        tools = Toolbox(app, Principal(Role.OPERATOR))
        call = tools.run("status")
        assert call.ok, call.error
        assert finite_json(json.dumps(call.result))["events"] == status["events"]
        for user in ("u1", "u2"):
            call = tools.run("get_history", {"user_id": user, "limit": 20})
            assert call.ok, call.error
            whens = [e["when"] for e in call.result["events"]]
            if bad_times and user == "u1":
                assert whens.count(None) == 2  # the year-9999 and the year-1 events
                assert "unknown time" in render.render_call(call)
            assert all(w is None or w.endswith(" UTC") for w in whens)
            finite_json(json.dumps(call.result))
            assert tools.run("get_profile", {"user_id": user}).ok
    finally:
        app.close()

    # the HTTP routes, in process
    import os

    from starlette.testclient import TestClient

    from tastebud.api.app import create_app
    from tastebud.api.keys import KeyStore

    os.environ["TASTEBUD_API_CHAT_PHRASING"] = "0"  # deterministic chat: no LLM in this test
    os.environ["TASTEBUD_SERVE_NARRATIVES"] = "0"
    try:
        app = App(load_settings(), embedder=embedder)
        try:
            _, key = KeyStore(app.store).create("operator")
        finally:
            app.close()
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(load_settings(), embedder=embedder)) as client:
            for path in ("/v1/status", "/v1/users/u1/profile", "/v1/users/u2/profile/history",
                         "/v1/users/u1/recommendations?k=3", "/v1/users/u2/recommendations?k=3"):
                answer = client.get(path, headers=headers)
                assert answer.status_code == 200, (path, answer.text)
                finite_json(answer.text)
            item = client.get("/v1/users/u2/recommendations?k=1", headers=headers).json()["items"][0]["item_id"]
            assert client.get(f"/v1/users/u2/recommendations/{item}/why", headers=headers).status_code == 200
            chat = client.post("/v1/chat", headers=headers, json={"message": "show the history", "user_id": "u1"})
            assert chat.status_code == 200, chat.text
    finally:
        del os.environ["TASTEBUD_API_CHAT_PHRASING"], os.environ["TASTEBUD_SERVE_NARRATIVES"]


def doctor(cli, *args: str, code: int) -> dict:
    return finite_json(cli("doctor", *args, "--json", code=code).stdout)


def test_reads_survive_planted_rows_and_doctor_fix_quarantines_them(world, cli, caplog):
    home = world
    assert doctor(cli, code=0)["problems"] == 0  # a clean home (the stub m9 is a notice)
    seqs = plant(home, [row for row, _ in PLANTED])

    # (1) every read works with the bad rows in place, and says what it could not show
    with caplog.at_level("WARNING", logger="tastebud.timefmt"):
        every_read_works(home, cli, bad_times=True)
    assert any("out of range" in r.getMessage() for r in caplog.records)

    # (2) doctor reports each planted row, with the rule it breaks, and exits 1
    report = doctor(cli, code=1)
    bad = {f["row"]["event_id"]: f for f in report["findings"] if f["kind"] == "bad_event"}
    assert set(bad) == {row[0] for row, _ in PLANTED}
    for row, reason in PLANTED:
        assert bad[row[0]]["reason"].startswith(reason), bad[row[0]]
        assert bad[row[0]]["target"] == f"event {seqs[row[0]]}" and bad[row[0]]["user_id"] == row[1]
    assert report["counts"] == {"bad_event": 4, "stub_item": 1}  # the reads above refreshed u1 and u2
    text = cli("doctor", code=1).stdout
    assert "timestamp past year 9999" in text and "4 problem(s)" in text and "doctor --fix" in text

    # (3) --fix quarantines them (same transaction as the delete), recomputes, and leaves nothing
    fixed = doctor(cli, "--fix", code=0)
    assert fixed["problems"] == 0 and fixed["fixed"]["events_quarantined"] == 4
    assert fixed["fixed"]["profiles_recomputed"] >= 2
    quarantined = sql(home, "SELECT kind, source, line_no, raw, reason, resolved_at FROM quarantine ORDER BY id")
    assert len(quarantined) == 4
    for (kind, source, line_no, raw, reason, resolved), (row, why) in zip(quarantined, PLANTED):
        stored = json.loads(raw)
        assert (kind, source, line_no, resolved) == ("events", "doctor", seqs[row[0]], None)
        assert reason.startswith(why)
        assert (stored["event_id"], stored["user_id"], stored["timestamp"], stored["value"]) == (row[0], row[1], row[4], row[5])
    assert not sql(home, "SELECT seq FROM events WHERE event_id LIKE 'bad-%'")
    listed = json.loads(cli("quarantine", "list", "--json").stdout)
    assert {r["source"] for r in listed} == {"doctor"} and len(listed) == 4

    every_read_works(home, cli, bad_times=False)
    after = doctor(cli, code=0)
    assert after["problems"] == 0 and after["counts"] == {"stub_item": 1}  # m9: only catalog data fills a stub
    assert "no problems" in cli("doctor").stdout
    again = doctor(cli, "--fix", code=0)  # idempotent: nothing left to do
    assert not any(again["fixed"].values()) and len(sql(home, "SELECT id FROM quarantine")) == 4


def test_doctor_repairs_inconsistent_rows_and_a_rerun_changes_nothing(world, cli, embedder):
    """Orphan vectors, a head pointing at a missing version, an event naming an item with
    no catalog row, a review without text, fields of the wrong type, a catalog row that
    is not JSON, a profile lagging its events."""
    from tastebud.retrieval.vectors import VectorStore, make_client
    from tastebud.settings import load_settings

    home = world
    vectors = VectorStore(make_client(load_settings()), embedder)
    vectors.sync_profiles([("ghost", "long", "Interests: nothing.", 1), ("ghost", "short", "Interests: none.", 1)])
    seqs = plant(home, [
        ("null-review", "u3", "m4", "review", T_MS, None, None),
        ("no-catalog-row", "u3", "zz", "rating", T_MS + 1, 4.0, None),
        ("late", "u2", "m3", "rating", T_MS + 2, 4.5, None),  # valid: only makes u2's profile lag
        ("text-time", "u3", "m1", "rating", "yesterday", 4.0, None),  # SQLite keeps what it is given
        ("text-value", "u3", "m2", "rating", T_MS + 3, "four", None),
    ])
    sql(home, "DELETE FROM items WHERE item_id = 'zz'")  # as an older version wrote events: no stub
    sql(home, "UPDATE items SET categories = 'Comedy|Crime' WHERE item_id = 'm8'")  # not JSON
    sql(home, "UPDATE profile_heads SET version = 99 WHERE user_id = 'u1'")

    # reads survive these too
    assert finite_json(cli("profile", "show", "u1", "--json").stdout)["version"] == 1  # the newest stored
    assert finite_json(cli("recommend", "u3", "-k", "3", "--json").stdout)["items"]
    cli("refresh", "--user", "u3", "--no-narratives")  # reads m8's catalog row leniently, with a warning

    report = doctor(cli, code=1)
    found = {(f["kind"], f["target"]) for f in report["findings"]}
    assert {("orphan_vector", "vector ghost:long"), ("orphan_vector", "vector ghost:short"),
            ("broken_profile_head", "user u1"), ("missing_item", "item zz"), ("bad_item", "item m8"),
            ("bad_event", f"event {seqs['null-review']}"), ("stale_profile", "user u2"),
            ("stub_item", "item m9")} <= found, found
    reasons = {f["target"]: f["reason"] for f in report["findings"]}
    assert reasons[f"event {seqs['null-review']}"] == "review event without text"
    assert reasons[f"event {seqs['text-time']}"] == "timestamp is not an integer ('yesterday')"
    assert reasons[f"event {seqs['text-value']}"] == "value is not a number ('four')"
    assert reasons["item m8"].startswith("categories is not a JSON list")

    fixed = doctor(cli, "--fix", code=0)
    assert fixed["problems"] == 0, fixed["findings"]
    counts = fixed["fixed"]
    assert (counts["events_quarantined"], counts["items_quarantined"], counts["stubs_created"],
            counts["heads_repointed"], counts["vectors_deleted"]) == (3, 1, 1, 1, 2)
    assert {f["target"] for f in fixed["findings"]} == {"item m8", "item m9", "item zz"}  # stubs now: notices
    assert not [r for r in vectors.profile_records() if r[1] == "ghost"]
    assert sql(home, "SELECT version FROM profile_heads WHERE user_id = 'u1'")[0][0] >= 1
    assert finite_json(cli("profile", "show", "u2", "--json").stdout)["last_event_seq"] == seqs["late"]
    assert sql(home, "SELECT is_stub, categories FROM items WHERE item_id = 'm8'") == [(1, "[]")]

    again = doctor(cli, "--fix", code=0)
    assert not any(again["fixed"].values()) and again["problems"] == 0
    quarantined = json.loads(cli("quarantine", "list", "--json").stdout)
    assert sorted(r["kind"] for r in quarantined) == ["catalog", "events", "events", "events"]

    # the quarantined catalog row is what a retry re-reads: corrected, it restores the item
    [catalog_row] = [r for r in quarantined if r["kind"] == "catalog"]
    row = json.loads(catalog_row["raw"])
    assert row["categories"] == "Comedy|Crime" and row["title"] == "Fargo"
    cli("quarantine", "retry", str(catalog_row["id"]))
    assert sql(home, "SELECT is_stub, title FROM items WHERE item_id = 'm8'") == [(0, "Fargo")]
    assert doctor(cli, code=0)["problems"] == 0
