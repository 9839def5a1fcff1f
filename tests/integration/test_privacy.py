"""Issue 14: forget a user everywhere, and export everything held about them.

The forget test fills every store with one user's data through the real paths
(file ingestion with a quarantined row, refresh with narratives from a scripted
model, item and profile vectors in a local Chroma, recommend, why, API keys,
API reads and a chat turn, the access log), forgets the user through
DELETE /v1/users/{id} with the user's own key, and then looks for the id in every
table, every Chroma collection and the raw bytes of every file under the home.
The user id is distinctive as bytes, so a hit anywhere means a copy was kept.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.agent_helpers import scripted
from tests.api_helpers import T0, seed_home

pytestmark = pytest.mark.integration

U = "user-zq93"
NEEDLE = U.encode()


def _user_files(home: Path, data: Path) -> None:
    """U's events (one review), a row rejected for an unknown type, and a line that does not parse."""
    rows = ["user_id,item_id,type,timestamp,value,text"]
    for n, item in enumerate(["m1", "m2", "m3", "m7"]):
        rows.append(f"{U},{item},rating,{T0 + n * 3600},{4.5},")
    rows.append(f"{U},m11,review,{T0 + 9 * 3600},,loved the heist scenes")
    rows.append(f"{U},m4,frown,{T0 + 10 * 3600},,")  # quarantined: unknown type
    (data / "u.csv").write_text("\n".join(rows) + "\n")
    (data / "u.jsonl").write_text(f'{{"user_id": "{U}", "item_id": "m5", "type": "like", "timestamp": {T0}}}\n'
                                  f'{{"user_id": "{U}", "type": oops}}\n')  # the second: not JSON


def _fill(home: Path, embedder) -> dict:
    from fastapi.testclient import TestClient

    from tastebud.api.app import create_app
    from tastebud.api.keys import KeyStore
    from tastebud.app import App
    from tastebud.settings import load_settings

    data = home.parent / "data"
    data.mkdir(exist_ok=True)
    _user_files(home, data)
    settings = load_settings(home=home, api_chat_phrasing=False, serve_narratives=False)
    app = App(settings, embedder=embedder, llm=scripted(*["Loves crime thrillers like Heat."] * 8))
    try:
        ing = app.ingestor()
        reports = [ing.ingest_events(str(data / "u.csv")), ing.ingest_events(str(data / "u.jsonl"))]
        assert sum(r.rejected for r in reports) == 2, [r.as_dict() for r in reports]
        refresher = app.refresher(narratives=True, concurrency=1)
        refresher.refresh([U], narratives=True)
        rec = app.recommendations.recommend(U, 3, source="cli")
        app.recommendations.why(U, rec.items[0].item_id)
        _, user_key = KeyStore(app.store).create("user", U, name="phone")
        _, operator_key = KeyStore(app.store).create("operator")
        exported = app.privacy.export(U)
    finally:
        app.close()
    with TestClient(create_app(settings, embedder=embedder), raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {user_key}"}
        assert client.get(f"/v1/users/{U}/recommendations", params={"k": 3}, headers=h).status_code == 200
        chat = client.post("/v1/chat", json={"message": "recommend me something for tonight"}, headers=h)
        assert chat.status_code == 200, chat.text
        assert list((home / "sessions").glob("*.json"))
        assert NEEDLE in (home / "logs" / "access.jsonl").read_bytes()
        assert client.get(f"/v1/users/{U}/export", headers={"Authorization": f"Bearer {operator_key}"}).status_code == 200
        gone = client.delete(f"/v1/users/{U}", headers=h)
        assert gone.status_code == 200, gone.text
        report = gone.json()
        again = client.delete(f"/v1/users/{U}", headers={"Authorization": f"Bearer {operator_key}"})
        assert again.status_code == 200 and again.json()["total"] == 0  # idempotent
        assert client.get("/v1/status", headers=h).status_code == 401  # its key went too
    return {"report": report, "export": exported}


def _hits_in_tables(db: Path) -> list[str]:
    hits = []
    with sqlite3.connect(db) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f'SELECT * FROM "{name}"'):
                if NEEDLE in repr(row).encode() or any(isinstance(v, bytes) and NEEDLE in v for v in row):
                    hits.append(f"{db.name}:{name}")
                    break
    return hits


def test_forget_leaves_the_user_id_nowhere(tmp_path, monkeypatch, embedder):
    home = seed_home(tmp_path / "home")
    monkeypatch.setenv("TASTEBUD_HOME", str(home))
    filled = _fill(home, embedder)
    removed = filled["report"]["removed"]
    for store in ("events", "profile_versions", "profile_heads", "rec_requests", "rec_items", "api_keys",
                  "quarantine", "profile_vectors", "chat_sessions", "log_lines"):
        assert removed[store] > 0, (store, removed)
    assert removed["quarantine"] == 2 and "item-side refresh" in filled["report"]["item_side"]

    # every table of every SQLite file under the home (the store, Chroma's)
    dbs = [p for p in home.rglob("*") if p.is_file() and p.read_bytes()[:16] == b"SQLite format 3\x00"]
    assert {p.name for p in dbs} >= {"tastebud.db", "chroma.sqlite3"}
    assert [h for db in dbs for h in _hits_in_tables(db)] == []
    # every Chroma collection: ids, metadata, documents
    import chromadb

    client = chromadb.PersistentClient(path=str(home / "chroma"))
    for col in client.list_collections():
        got = client.get_collection(col.name).get(include=["metadatas", "documents"])
        assert NEEDLE not in json.dumps(got, default=str).encode(), col.name
    del client
    # the raw bytes of every file: database, WAL, Chroma's files, sessions, logs, caches
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files) and any(p.suffix == ".bin" for p in files)
    assert [str(p.relative_to(home)) for p in files if NEEDLE in p.read_bytes()] == []
    # one audit row, without the id
    with sqlite3.connect(home / "tastebud.db") as conn:
        rows = conn.execute("SELECT requested_by, subject_hash, counts FROM erasures").fetchall()
    assert len(rows) == 1 and rows[0][0].startswith("api:") and len(rows[0][1]) == 64
    assert json.loads(rows[0][2])["events"] == removed["events"]


def test_export_validates_and_holds_every_event(tmp_path, monkeypatch, embedder):
    import jsonschema

    from tastebud.app import App
    from tastebud.retrieval.privacy import export_schema
    from tastebud.settings import load_settings

    home = seed_home(tmp_path / "home")
    monkeypatch.setenv("TASTEBUD_HOME", str(home))
    data = tmp_path / "data"
    data.mkdir()
    _user_files(home, data)
    app = App(load_settings(home=home), embedder=embedder)
    try:
        ing = app.ingestor()
        ingested = ing.ingest_events(str(data / "u.csv")).accepted + ing.ingest_events(str(data / "u.jsonl")).accepted
        app.refresher(narratives=False).refresh([U], narratives=False)
        app.recommendations.recommend(U, 3, source="cli")
        document = json.loads(json.dumps(app.privacy.export(U)))
        with app.store.engine.connect() as conn:
            from sqlalchemy import select

            from tastebud.profiles.migrations import events

            stored = set(conn.execute(select(events.c.event_id).where(events.c.user_id == U)).scalars())
    finally:
        app.close()
    jsonschema.validate(document, export_schema())
    assert len(document["events"]) == ingested == len(stored) == 6
    assert {e["event_id"] for e in document["events"]} == stored
    assert document["profile_versions"] and document["recommendations"][0]["items"][0]["reasons"]
    assert len(document["quarantined_rows"]) == 2
    assert any(e["text"] == "loved the heist scenes" for e in document["events"])


# ---- the same on PostgreSQL and a Chroma server ---------------------------------------------

def _seed_with(home: Path, **engines: str) -> Path:
    """tests.api_helpers.seed_home, on the given engines."""
    from tests.api_helpers import CATALOG, cli, events_csv

    home.mkdir(parents=True, exist_ok=True)
    data = home.parent / f"{home.name}-data"
    data.mkdir(exist_ok=True)
    (data / "catalog.csv").write_text(CATALOG)
    (data / "events.csv").write_text(events_csv())
    cli(home, "ingest", "catalog", str(data / "catalog.csv"), **engines)
    cli(home, "ingest", "events", str(data / "events.csv"), **engines)
    cli(home, "refresh", "--all", "--no-narratives", **engines)
    cli(home, "index", **engines)
    return home


def test_forget_leaves_the_user_id_nowhere_on_postgresql_and_a_chroma_server(tmp_path, monkeypatch, embedder):
    """Every PostgreSQL table (each row cast to text), every collection of the Chroma
    server (ids, metadatas, documents, through its client) and the raw bytes of every
    file under the home. The servers' own data directories are their operators'
    (as for any PostgreSQL or Chroma deployment) and are not scanned here."""
    import chromadb
    import httpx
    from sqlalchemy import create_engine, inspect, text

    from tests.services import chroma_server, postgres_server

    with postgres_server(skip_if_it_fails=True) as db_url, chroma_server(tmp_path / "chroma-server") as chroma_url:
        engines = {"database_url": db_url, "chroma_url": chroma_url}
        home = _seed_with(tmp_path / "home", **engines)
        monkeypatch.setenv("TASTEBUD_HOME", str(home))
        monkeypatch.setenv("TASTEBUD_DATABASE_URL", db_url)
        monkeypatch.setenv("TASTEBUD_CHROMA_URL", chroma_url)
        filled = _fill(home, embedder)
        removed = filled["report"]["removed"]
        for store in ("events", "profile_versions", "profile_heads", "rec_requests", "rec_items", "api_keys",
                      "quarantine", "profile_vectors", "chat_sessions", "log_lines"):
            assert removed[store] > 0, (store, removed)

        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                tables = inspect(conn).get_table_names()
                assert {"events", "profile_versions", "erasures", "profiling_optouts"} <= set(tables)
                hits = [t for t in tables
                        if conn.execute(text(f'SELECT 1 FROM "{t}" r WHERE strpos(r::text, :u) > 0 LIMIT 1'),
                                        {"u": U}).first()]
                others = conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
                audit = conn.execute(text("SELECT requested_by, subject_hash, counts FROM erasures")).all()
        finally:
            engine.dispose()
        assert hits == [] and others > 0
        assert len(audit) == 1 and audit[0][0].startswith("api:") and json.loads(audit[0][2])["events"] == removed["events"]

        url = httpx.URL(chroma_url)
        client = chromadb.HttpClient(host=url.host, port=url.port)
        names = [c.name for c in client.list_collections()]
        assert len(names) >= 2
        for name in names:
            got = client.get_collection(name).get(include=["metadatas", "documents"])
            assert NEEDLE not in json.dumps(got, default=str).encode(), name
        files = [p for p in home.rglob("*") if p.is_file()]
        assert [str(p.relative_to(home)) for p in files if NEEDLE in p.read_bytes()] == []
