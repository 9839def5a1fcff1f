"""All 610 ml-latest-small users through the operator's commands, computed parts only.

`tastebud ingest movielens` -> `refresh --all --no-narratives` -> lagging profiles
and counts from `status`, `profile show/history` and a second refresh; then one new
event makes exactly one user's profile lag, and a default `refresh` takes only them.
In-process Typer runs with the session's embedding model (the refresh also keeps
every profile's vectors in Chroma). No timing asserts: bench/refresh.py times it.
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

N_USERS = 610


@pytest.fixture
def cli(home, embedder, monkeypatch):
    from typer.testing import CliRunner

    from tastebud.cli.main import State, _register, app

    monkeypatch.setattr(State, "parts", {"embedder": embedder})  # injected into the App, not patched
    _register()
    runner = CliRunner()

    def invoke(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, (result.output, result.exception)
        if State._app is not None:
            State._app.close()
            State._app = None
        return json.loads(result.stdout)

    return invoke


def test_refresh_every_ml_latest_small_user_without_narratives(cli, home, ml_small):
    cli("ingest", "movielens", str(ml_small))
    before = cli("status")
    assert before["users"] == N_USERS and before["profiles"] == 0 and before["profiles_stale"] == N_USERS

    report = cli("refresh", "--all", "--no-narratives")
    assert report["users"] == N_USERS and report["new_versions"] == N_USERS and report["unchanged"] == 0
    assert report["narratives_stale"] == N_USERS
    assert report["narratives_llm"] == report["narratives_template"] == report["output_tokens"] == 0
    # profile vectors average item vectors: the catalog is not indexed yet, so the items the
    # profiles cite are embedded first (those only), then both horizons of every user stored
    hooks = report["hooks"]
    assert hooks["written"] == 2 * N_USERS and hooks["without_item_vectors"] == 0 and hooks["unchanged"] == 0
    assert 0 < hooks["items_indexed"] < 9742

    after = cli("status")
    assert after["profiles"] == N_USERS and after["profiles_stale"] == 0 and after["narratives_stale"] == N_USERS
    assert cli("refresh") == {"users": 0}  # no profile lags: nothing to do

    profile = cli("profile", "show", "414")
    assert profile["version"] == 1 and profile["narrative_source"] == "stale"
    assert profile["long_term"]["narrative"]  # the template text stands in, marked stale
    tags = profile["long_term"]["tags"]
    assert tags and all(t["evidence_event_ids"] for t in tags)
    assert all(t["weight"] > 0 for t in tags) and [t["weight"] for t in tags] == sorted((t["weight"] for t in tags), reverse=True)

    from tastebud.retrieval.vectors import VectorStore
    from tastebud.settings import Settings

    vectors = VectorStore.from_settings(Settings(), embedder=None)
    assert vectors.items.count() == hooks["items_indexed"]

    again = cli("refresh", "--all", "--no-narratives")  # same events: same content, no new versions
    assert again["new_versions"] == 0 and again["unchanged"] == N_USERS
    assert again["hooks"]["written"] == 0  # nothing new: nothing stored

    # a refresh killed after saving profiles, before their vectors were stored: its
    # marker stays, nothing lags, and the next plain refresh stores the missing vectors
    vectors.profiles.collection.delete(ids=["414:long", "414:short", "1:long"])
    (home / "runs").mkdir(exist_ok=True)
    (home / "runs" / "run-999999999").touch()  # no such process: it was killed
    assert cli("refresh") == {"users": 0, "repaired_vectors": {"repaired_interrupted_runs": 1, "written": 3}}
    assert cli("refresh") == {"users": 0}  # finished: no marker left
    assert not list((home / "runs").glob("run-*"))

    events = home / "new.csv"
    events.write_text("user_id,item_id,type,timestamp,value\n414,1,rating,2024-01-01T00:00:00Z,5\n")
    cli("ingest", "events", str(events))
    assert cli("status")["profiles_stale"] == 1
    one = cli("refresh", "--no-narratives")
    assert one["users"] == 1 and one["new_versions"] == 1
    assert one["hooks"]["written"] + one["hooks"]["unchanged"] == 2  # only that user's vectors were looked at
    history = cli("profile", "history", "414")["versions"]
    assert [v["version"] for v in history] == [1, 2]
    assert len(history[-1]["trigger_event_ids"]) == 1
    assert cli("status")["profiles_stale"] == 0
