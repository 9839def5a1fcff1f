"""Issue 14 part 4: opt-out of profiling, and retention.

Opt-out runs through the real CLI (`tastebud optout`), the HTTP API (in-process,
the real app with its live updater) and the chat router (no LLM), over a real
SQLite store, a local Chroma and the real embedder. Retention runs through
`tastebud refresh` with TASTEBUD_RETENTION_DAYS on a home whose events span old
and new dates, after narratives were written by a scripted model.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.agent_helpers import scripted
from tests.api_helpers import cli, create_key, seed_home

pytestmark = pytest.mark.integration

U = "u1"


def _rows(db: Path, table: str, user: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (user,)).fetchone()[0]


def _profile_vector_ids(home: Path, user: str) -> list[str]:
    import chromadb

    client = chromadb.PersistentClient(path=str(home / "chroma"))
    try:
        ids = []
        for col in client.list_collections():
            got = client.get_collection(col.name).get(include=["metadatas"])
            ids += [i for i, m in zip(got["ids"], got["metadatas"]) if i.startswith(f"{user}:") or (m or {}).get("user_id") == user]
        return ids
    finally:
        del client


def _popularity_order_minus_seen(home: Path, embedder, user: str) -> list[str]:
    """What the Pop baseline would serve: every item by positive-interaction popularity
    (ties in catalog order, as the recommender breaks them), minus what the user has seen."""
    import numpy as np

    from tastebud.app import App
    from tastebud.settings import load_settings

    app = App(load_settings(home=home), embedder=embedder)
    try:
        side = app.recommendations.side
        seen = {e.item_id for e in app.store.events_for_user(user)}
    finally:
        app.close()
    order = np.lexsort((np.arange(len(side.items)), -np.asarray(side.popularity, dtype=np.float64)))
    return [side.items[i] for i in order if side.items[i] not in seen]


def test_opt_out_through_cli_and_api_then_back_in(tmp_path, embedder):
    from fastapi.testclient import TestClient

    from tastebud.api.app import create_app
    from tastebud.settings import load_settings

    home = seed_home(tmp_path / "home")
    db = home / "tastebud.db"
    assert _rows(db, "profile_versions", U) and _profile_vector_ids(home, U)
    operator = create_key(home, "operator")
    user_key = create_key(home, "user", U)

    out = cli(home, "optout", U, "--json")
    report = json.loads(out.stdout)
    assert report["opted_out"] and report["removed"]["profile_versions"] >= 1 and report["removed"]["profile_vectors"] == 2
    for table in ("profile_versions", "profile_heads", "narrative_queue"):
        assert _rows(db, table, U) == 0, table
    assert _rows(db, "events", U) == 3 and _rows(db, "api_keys", U) == 1  # events and keys stay
    assert _profile_vector_ids(home, U) == []
    # a refresh of everyone makes nothing for the user
    cli(home, "refresh", "--all", "--no-narratives")
    assert _rows(db, "profile_versions", U) == 0 and _profile_vector_ids(home, U) == []

    expected = _popularity_order_minus_seen(home, embedder, U)
    settings = load_settings(home=home, api_chat_phrasing=False, serve_narratives=False)
    with TestClient(create_app(settings, embedder=embedder), raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {user_key}"}
        recs = client.get(f"/v1/users/{U}/recommendations", params={"k": 20}, headers=h)
        assert recs.status_code == 200, recs.text
        items = recs.json()["items"]
        assert [it["item_id"] for it in items] == expected  # popularity only, minus seen
        assert all(set(it["parts"]) == {"popularity"} for it in items)
        why = client.get(f"/v1/users/{U}/recommendations/{items[0]['item_id']}/why", headers=h).json()
        assert "opted out of profiling" in why["sentences"][0], why
        assert client.get(f"/v1/users/{U}/profile", headers=h).status_code == 404

        # new events through the live path make no profile either
        posted = client.post("/v1/events", headers=h, json={"events": [
            {"user_id": U, "item_id": "m7", "type": "rating", "timestamp": int(time.time()), "value": 5.0}]})
        assert posted.status_code == 200 and posted.json()["results"][0]["status"] == "accepted", posted.text
        assert client.get(f"/v1/users/{U}/recommendations", params={"k": 3}, headers=h).status_code == 200
        ops = {"Authorization": f"Bearer {operator}"}
        assert client.post("/v1/admin/refresh", headers=ops, json={"all": True}).status_code == 200
        time.sleep(0.5)  # let the live thread take up anything it was given
        assert _rows(db, "profile_versions", U) == 0 and _rows(db, "profile_heads", U) == 0
        assert "m7" not in [it["item_id"] for it in client.get(
            f"/v1/users/{U}/recommendations", params={"k": 20}, headers=h).json()["items"]]  # seen now

        # a user key reaches only itself; opting back in rebuilds on the next read
        assert client.post("/v1/users/u2/optout", headers=h).status_code == 403
        back = client.delete(f"/v1/users/{U}/optout", headers=h)
        assert back.status_code == 200 and back.json()["was_opted_out"], back.text
        profile = client.get(f"/v1/users/{U}/profile", headers=h)
        assert profile.status_code == 200, profile.text
        recs = client.get(f"/v1/users/{U}/recommendations", params={"k": 5}, headers=h).json()["items"]
        assert any(set(it["parts"]) != {"popularity"} for it in recs)
        # and opting out again through the API removes it again
        again = client.post(f"/v1/users/{U}/optout", headers=ops)
        assert again.status_code == 200 and again.json()["removed"]["profile_versions"] >= 1
    assert _rows(db, "profile_versions", U) == 0 and _profile_vector_ids(home, U) == []
    cli(home, "optin", U)
    cli(home, "refresh", "--no-narratives")  # lagging users only: the opted-in user is one
    assert _rows(db, "profile_heads", U) == 1 and len(_profile_vector_ids(home, U)) == 2


def test_chat_stop_profiling_me_opts_out_with_a_clear_reply(tmp_path, embedder):
    from tastebud.agent.agent import Agent
    from tastebud.agent.roles import Principal, Role
    from tastebud.app import App
    from tastebud.settings import load_settings

    home = seed_home(tmp_path / "home")
    db = home / "tastebud.db"
    app = App(load_settings(home=home), embedder=embedder)
    try:
        user = Agent(app, Principal(Role.USER, U), phrasing=False)
        turn = user.ask("please stop profiling me")
        call = turn.tool_calls[0]
        assert call.name == "opt_out" and call.ok and call.args == {"user_id": U}, call.as_dict()
        assert "stopped profiling you" in turn.answer and "popularity only" in turn.answer
        assert _rows(db, "profile_versions", U) == 0 and _profile_vector_ids(home, U) == []
        rec = user.ask("recommend me something").tool_calls[0]
        assert rec.ok and all(set(it["why"][:1]) and "opted out" in it["why"][0] for it in rec.result["items"])
        back = user.ask("opt me back in")
        assert back.tool_calls[0].args == {"user_id": U, "undo": True} and "opted back in" in back.answer

        zh = Agent(app, Principal(Role.USER, "u2"), phrasing=False)
        turn = zh.ask("不要再给我做画像")
        assert turn.tool_calls[0].name == "opt_out" and turn.tool_calls[0].ok
        assert "已停止对你做画像分析" in turn.answer and _rows(db, "profile_versions", "u2") == 0
        assert zh.ask("停止分析我").tool_calls[0].result["already"]

        staff = Agent(app, Principal(Role.SUPPORT), phrasing=False)
        refused = staff.ask("stop profiling me").tool_calls[0]
        assert refused.refused and _rows(db, "profile_versions", "u2") == 0
    finally:
        app.close()


def _strings(value) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(_strings, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(_strings, value)) if value else set()
    return set()


def test_retention_deletes_old_events_and_rebuilds_the_profiles_that_cited_them(tmp_path, embedder):
    from tastebud.app import App
    from tastebud.settings import load_settings
    from tests.api_helpers import CATALOG

    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    now = int(time.time())
    old, new = now - 400 * 86400, now - 2 * 86400
    rows = ["event_id,user_id,item_id,type,timestamp,value"]
    rows += [f"old-r1-{n},r1,{item},rating,{old + n * 3600},5.0" for n, item in enumerate(["m1", "m2", "m7", "m11"])]
    rows += [f"new-r1-{n},r1,{item},rating,{new + n * 3600},4.5" for n, item in enumerate(["m4", "m5", "m14"])]
    rows += [f"old-r2-{n},r2,{item},rating,{old + n * 3600},4.0" for n, item in enumerate(["m6", "m12"])]
    rows += [f"new-b{u}-{n},b{u},{item},rating,{new + n * 3600},4.0" for u in range(4)
             for n, item in enumerate(["m1", "m4", "m5", "m9", "m14"])]
    (data / "catalog.csv").write_text(CATALOG)
    (data / "events.csv").write_text("\n".join(rows) + "\n")
    cli(home, "ingest", "catalog", str(data / "catalog.csv"))
    cli(home, "ingest", "events", str(data / "events.csv"))
    app = App(load_settings(home=home), embedder=embedder, llm=scripted(*["Loves crime thrillers like Heat."] * 40))
    try:  # narratives from a model, then a few more versions, so history has something to cite
        app.refresher(narratives=True, concurrency=1).refresh(["r1", "r2", "b0", "b1", "b2", "b3"], narratives=True)
        before = app.profiles.latest("r1")
    finally:
        app.close()
    removed = {f"old-r1-{n}" for n in range(4)} | {f"old-r2-{n}" for n in range(2)}
    assert _strings(before["long_term"]["tags"]) & removed  # the profile cites old events now
    db = home / "tastebud.db"

    out = cli(home, "refresh", "--no-narratives", "--json", retention_days=30)
    report = json.loads(out.stdout)
    assert report["retention"]["events"] == 6 and report["retention"]["profiles_removed"] == 1, report
    with sqlite3.connect(db) as conn:
        ids = {r[0] for r in conn.execute("SELECT event_id FROM events")}
        cutoff = (now - 30 * 86400) * 1000
        assert conn.execute("SELECT COUNT(*) FROM events WHERE ts < ?", (cutoff,)).fetchone()[0] == 0
        versions = conn.execute("SELECT user_id, version, data, trigger_event_ids FROM profile_versions").fetchall()
        heads = dict(conn.execute("SELECT user_id, narrative_source FROM profile_heads").fetchall())
        queued = {r[0] for r in conn.execute("SELECT user_id FROM narrative_queue")}
    assert not ids & removed and len(ids) == 3 + 20
    for user, version, data_json, triggers in versions:  # no version of any profile cites a removed event
        cited = _strings(json.loads(data_json)) | set(json.loads(triggers))
        assert not cited & removed, (user, version, sorted(cited & removed))
    assert "r2" not in heads and _rows(db, "profile_versions", "r2") == 0 and _profile_vector_ids(home, "r2") == []
    app = App(load_settings(home=home), embedder=embedder)
    try:
        after = app.profiles.latest("r1")
    finally:
        app.close()
    assert heads["r1"] == "stale" and "r1" in queued  # the template stands in; the narrative is asked for again
    assert after["long_term"]["narrative"] != before["long_term"]["narrative"]
    assert "Heat" not in json.dumps(after)  # m1 (Heat) was only in the removed events
    # the bytes went too: no copy of a removed event id in the database file or its WAL
    files = [p for p in home.iterdir() if p.name.startswith("tastebud.db")]
    assert [p.name for p in files if any(r.encode() in p.read_bytes() for r in removed)] == []
