"""`tastebud recommend` and `tastebud why` end to end on a small hand-made world:
real SQLite, real Chroma and the real embedding model in a temporary home."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastebud.profiles.events import Event, Item
from tests.profile_helpers import DAY, T0, rating

CRIME = ["m1", "m2", "m3", "m7", "m11"]
SAGA = "A young blacksmith and a red dragon cross the burning mountains to win back the ember crown from the sorcerer king."
CATALOG = [
    Item("m1", "Heat", None, ("Crime", "Thriller")),
    Item("m2", "Ronin", None, ("Action", "Crime", "Thriller")),
    Item("m3", "The Usual Suspects", None, ("Crime", "Mystery")),
    Item("m4", "Paddington", None, ("Comedy", "Children")),
    Item("m5", "Toy Story", None, ("Animation", "Comedy")),
    Item("m6", "Alien", None, ("Horror", "Sci-Fi")),
    Item("m7", "Se7en", None, ("Crime", "Mystery", "Thriller")),
    Item("m8", "Fargo", None, ("Comedy", "Crime", "Drama")),
    Item("m9", "Amelie", None, ("Comedy", "Romance")),
    Item("m10", "The Notebook", None, ("Drama", "Romance")),
    Item("m11", "Casino", None, ("Crime", "Drama")),
    Item("m12", "Jaws", None, ("Horror", "Thriller")),
    Item("m13", "Inception", None, ("Action", "Sci-Fi")),
    Item("m14", "Up", None, ("Animation", "Adventure", "Comedy")),
    Item("ds1", "Dragon Saga: The Ember Crown", SAGA, ("Fantasy", "Adventure")),
    Item("ds2", "Dragon Saga: The Ember Crown II", SAGA, ("Fantasy", "Adventure")),
]
# u1 likes crime, explicitly dislikes ds1 (whose sequel ds2 is a near-duplicate),
# rates Casino 1/5 and Fargo 3/5. u2 has the same likes and no negative feedback.
U1_BLOCKED = {"m1", "m2", "m3", "m8", "m11", "ds1", "ds2"}


def world() -> list[Event]:
    events: list[Event] = []
    for b in range(8):  # background users: crime fans who also love the saga
        user = f"b{b}"
        liked = CRIME + ["ds1", "ds2", "m13"] + (["m6", "m12"] if b % 2 else ["m4", "m5", "m14"])
        for n, item in enumerate(liked):
            events.append(rating(user, item, 4.0 + ((b + n) % 3) * 0.5, n))
    for b in range(3):  # a few comedy fans
        for n, item in enumerate(["m4", "m5", "m9", "m14", "m8"]):
            events.append(rating(f"c{b}", item, 4.5, n))
    for user in ("u1", "u2"):
        events += [rating(user, "m1", 5.0, 1), rating(user, "m2", 5.0, 2), rating(user, "m3", 4.0, 3)]
    events += [
        Event("u1-ds1-dislike", "u1", "ds1", "dislike", T0 + 4 * DAY),
        rating("u1", "m11", 1.0, 5),
        rating("u1", "m8", 3.0, 6),
    ]
    return events


@pytest.fixture
def cli(home, embedder, monkeypatch):
    """The Typer app in-process, every App sharing the session's real embedding model."""
    from typer.testing import CliRunner

    from tastebud.cli.main import State, _register, app

    monkeypatch.setattr(State, "parts", {"embedder": embedder})  # injected into the App, not patched
    _register()
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        if State._app is not None:
            State._app.close()
        return result

    yield invoke
    if State._app is not None:
        State._app.close()
        State._app = None


@pytest.fixture
def loaded(store, cli):
    store.upsert_items(CATALOG)
    store.write_batch(world())
    cli("refresh", "--all", "--no-narratives")
    cli("index")
    return store


def recommend(cli, *args: str) -> dict:
    return json.loads(cli("recommend", *args, "--json").stdout)


def event_ids_in(obj) -> set[str]:
    """Every event id anywhere in a why/evidence document."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "event_id" and isinstance(value, str):
                found.add(value)
            elif key in ("evidence_event_ids", "event_ids") and isinstance(value, list):
                found.update(value)
            else:
                found |= event_ids_in(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= event_ids_in(value)
    return found


def test_disliked_low_rated_consumed_and_near_duplicates_never_recommended(loaded, cli, embedder):
    vecs = embedder.encode([CATALOG[-2].text_for_embedding(), CATALOG[-1].text_for_embedding()])
    assert float(vecs[0] @ vecs[1]) >= 0.92  # precondition: the sequel is a near-duplicate

    shown = {it["item_id"] for it in recommend(cli, "u1", "-k", "20")["items"]}
    assert shown, "u1 gets recommendations"
    assert not shown & U1_BLOCKED
    assert shown == {i.item_id for i in CATALOG} - U1_BLOCKED  # everything else is still on offer

    control = [it["item_id"] for it in recommend(cli, "u2", "-k", "20")["items"]]
    assert {"ds1", "ds2", "m11", "m8"} <= set(control)  # without the negative feedback they would be shown
    assert control[0] in ("m7", "m11", "ds1", "ds2")  # and they rank high: co-raters of Heat/Ronin love them


def test_recommend_json_shape_and_parts_sum_to_score(loaded, cli):
    out = recommend(cli, "u1", "-k", "5")
    assert isinstance(out["request_id"], str) and len(out["request_id"]) == 36
    assert [it["rank"] for it in out["items"]] == [1, 2, 3, 4, 5]
    titles = {i.item_id: i.title for i in CATALOG}
    for it in out["items"]:
        assert {"item_id", "title", "rank", "score", "parts"} <= set(it)
        assert it["title"] == titles[it["item_id"]]
        assert sum(it["parts"].values()) == pytest.approx(it["score"], abs=1e-5)
    scores = [it["score"] for it in out["items"]]
    assert scores == sorted(scores, reverse=True)
    explained = recommend(cli, "u1", "-k", "3", "--explain")
    assert all("evidence" in it for it in explained["items"])


def test_why_evidence_belongs_to_the_user_and_survives_a_profile_refresh(loaded, cli, store):
    first = recommend(cli, "u1", "-k", "5")
    top = first["items"][0]
    why = json.loads(cli("why", "u1", top["item_id"], "--json").stdout)
    assert why["recommended"] is True and why["request_id"] == first["request_id"]
    mine = {e.event_id for e in store.events_for_user("u1")}
    ids = event_ids_in(why["evidence"])
    assert ids and ids <= mine
    # co-occurrence cites the user's own past items that pulled this one in
    cited = {e["item_id"] for e in why["evidence"].get("co_occurrence", [])}
    assert cited and cited <= {"m1", "m2", "m3"}
    assert any("people who liked those also liked this" in s for s in why["sentences"])
    old_version = why["profile_version"]

    store.write_batch([rating("u1", "m13", 5.0, 20), rating("u1", "m6", 4.5, 21)])
    cli("refresh", "--user", "u1", "--no-narratives")
    second = recommend(cli, "u1", "-k", "5")
    assert second["request_id"] != first["request_id"] and second["profile_version"] > old_version
    assert "m13" not in {it["item_id"] for it in second["items"]}

    again = json.loads(cli("why", "u1", top["item_id"], "--request", first["request_id"], "--json").stdout)
    assert again["request_id"] == first["request_id"] and again["profile_version"] == old_version
    assert again["parts"] == pytest.approx(top["parts"], abs=1e-6)
    assert event_ids_in(again["evidence"]) <= {e.event_id for e in store.events_for_user("u1")}
    plain = cli("why", "u1", top["item_id"], "--request", first["request_id"]).stdout
    assert first["request_id"] in plain and f"profile v{old_version}" in plain

    # someone else's request id is not an answer for u1
    other = recommend(cli, "u2", "-k", "3")
    cli("why", "u1", other["items"][0]["item_id"], "--request", other["request_id"], "--json", code=1)


def test_why_for_an_item_never_recommended_says_so(loaded, cli):
    recommend(cli, "u1", "-k", "3")
    out = json.loads(cli("why", "u1", "m1", "--json", code=1).stdout)
    assert out["recommended"] is False and "was never recommended" in out["message"]
    plain = cli("why", "u1", "m1", code=1)
    assert "was never recommended to user 'u1'" in plain.stdout


def test_category_exclude_and_cold_start(loaded, cli):
    categories = {i.item_id: i.categories for i in CATALOG}
    crime = recommend(cli, "u2", "-k", "10", "--category", "crime")["items"]
    assert crime and all("Crime" in categories[it["item_id"]] for it in crime)

    rest = recommend(cli, "u2", "-k", "20", "--exclude", "m13", "--exclude", "Crime")["items"]
    assert rest and all("Crime" not in categories[it["item_id"]] and it["item_id"] != "m13" for it in rest)

    cold = recommend(cli, "newcomer", "-k", "3", "--category", "Comedy")
    popular_comedy = sorted(  # positive interactions of everyone; ties in catalog (id) order
        (i.item_id for i in CATALOG if "Comedy" in i.categories),
        key=lambda iid: (-len({e.user_id for e in world() if e.item_id == iid and e.type == "rating"}), iid),
    )
    got = [it["item_id"] for it in cold["items"]]
    assert got == popular_comedy[:3]
    assert all(set(it["parts"]) == {"popularity"} for it in cold["items"])
    why = json.loads(cli("why", "newcomer", got[0], "--json").stdout)
    assert why["sentences"][0].startswith("Popular:") and not event_ids_in(why["evidence"])


def test_service_reuses_cached_item_side(loaded, settings, embedder, monkeypatch):
    """A second service over the same home loads the item side from disk; results
    agree with a service that builds it from scratch."""
    import tastebud.retrieval.service as service_module
    from tastebud.profiles.store import EventStore
    from tastebud.retrieval.service import RecommendationService
    from tastebud.retrieval.vectors import VectorStore

    store = EventStore.from_settings(settings)
    try:
        vectors = VectorStore.from_settings(settings, embedder)
        fresh = RecommendationService(store, vectors, settings.blend, cache_dir=None).recommend("u2", 5)
        RecommendationService(store, vectors, settings.blend).recommend("u2", 5)  # builds and writes the cache
        assert len(list((settings.home / "cache").glob("item_side-*.npz"))) == 1

        def no_build(*args, **kwargs):
            raise AssertionError("the cached item side should have been used")

        monkeypatch.setattr(service_module, "build_item_side", no_build)
        cached = RecommendationService(store, vectors, settings.blend)
        again = cached.recommend("u2", 5)
        assert [i.item_id for i in again.items] == [i.item_id for i in fresh.items]
        assert np.allclose([i.score for i in again.items], [i.score for i in fresh.items])
        assert [i.evidence for i in again.items] == [i.evidence for i in fresh.items]
        assert cached.side.near is not None and cached.side.vectors is not None
    finally:
        store.close()


def test_a_newcomer_with_one_item_gets_what_people_who_started_there_went_on_to_like(loaded, cli, store):
    """The four even background users had Heat (m1) among their first ten items and
    went on to like Up (m14) as their eleventh; eleven users in all started with Heat
    (the eight, u1, u2 and the newcomer, whose events the item side holds too)."""
    store.write_batch([rating("newbie", "m1", 5.0, 30)])
    cli("refresh", "--user", "newbie", "--no-narratives")
    out = recommend(cli, "newbie", "-k", "15")
    up = next(it for it in out["items"] if it["item_id"] == "m14")
    assert up["parts"]["same_start"] == pytest.approx(5 / 6 * 4 / (11 + 5), rel=1e-5)  # weight 1 x fade 5/(1+5)
    assert sum(up["parts"].values()) == pytest.approx(up["score"], abs=1e-5)
    why = json.loads(cli("why", "newbie", "m14", "--json").stdout)
    assert why["evidence"]["same_start"]["items"][0] | {"share": 0} == {
        "item_id": "m1", "title": "Heat", "started": 11, "went_on": 4, "share": 0}
    assert ("People who started where you did went on to interact with it positively: 4 of the 11 whose first 10 items "
            "included Heat.") in why["sentences"]
