"""Profile vectors computed from item vectors (retrieval/profile_vectors.py), stored in
a real Chroma in a temp home, item vectors from the real embedding model."""

import numpy as np
import pytest

from tastebud.profiles.events import Item
from tastebud.retrieval.profile_vectors import ProfileVectorSync, centroid, store_profile_vectors, vectors_from_matrix
from tastebud.retrieval.vectors import VectorStore

pytestmark = pytest.mark.integration

ITEMS = [
    Item("1", "Heat", categories=("Action", "Crime", "Thriller"), tags=("heist",)),
    Item("2", "Toy Story", categories=("Animation", "Children", "Comedy"), tags=("pixar",)),
    Item("3", "Alien", categories=("Horror", "Sci-Fi"), tags=("space",)),
    Item("4", "Pride and Prejudice", categories=("Drama", "Romance"), tags=("period piece",)),
]


def profile(user, long_items, short_items=(), version=1):
    def top(pairs):
        return [{"item_id": i, "title": i, "score": s} for i, s in pairs]

    return {"user_id": str(user), "version": version, "long_term": {"tags": [], "top_items": top(long_items)},
            "short_term": {"tags": [], "top_items": top(short_items)}}


def test_centroid_is_the_score_weighted_mean_at_unit_length():
    vecs = {"a": np.array([1.0, 0.0], np.float32), "b": np.array([0.0, 1.0], np.float32)}
    got = centroid([{"item_id": "a", "score": 3.0}, {"item_id": "b", "score": 1.0}, {"item_id": "gone", "score": 9.0}],
                   vecs.get)
    np.testing.assert_allclose(got, np.array([3.0, 1.0]) / np.sqrt(10.0), rtol=1e-6)  # 'gone' has no vector
    assert centroid([{"item_id": "gone", "score": 1.0}], vecs.get) is None
    assert centroid([{"item_id": "a", "score": 0.0}], vecs.get) is None  # no weight, no say


@pytest.fixture
def vectors(settings, counting_embedder):
    store = VectorStore.from_settings(settings, counting_embedder)
    store.sync_items(ITEMS)
    return store


def test_stored_profile_vectors_are_what_the_recommender_derives(vectors, counting_embedder):
    encoded = len(counting_embedder.calls)
    p = profile(7, [("1", 2.0), ("3", 1.0)], [("2", 1.0)])
    assert store_profile_vectors(vectors, [p]) == {"written": 2, "unchanged": 0, "without_item_vectors": 0, "items_indexed": 0}
    assert len(counting_embedder.calls) == encoded  # computed from item vectors: no model call
    ids, matrix = vectors.items.all_vectors()
    derived = vectors_from_matrix(p, {i: n for n, i in enumerate(ids)}, matrix)
    stored = vectors.profile_vectors("7")
    assert set(stored) == set(derived) == {"long", "short"}
    for horizon in stored:
        np.testing.assert_allclose(stored[horizon], derived[horizon], atol=1e-6)
    # the long-term vector sits between Heat and Alien, nearer Heat (weight 2 to 1)
    hits = [h.id for h in vectors.items.query(stored["long"], k=2)]
    assert hits == ["1", "3"]


def test_unchanged_profiles_are_not_rewritten_and_a_changed_item_text_is_noticed(vectors):
    p = profile(7, [("1", 2.0), ("3", 1.0)], [("2", 1.0)])
    store_profile_vectors(vectors, [p])
    assert store_profile_vectors(vectors, [{**p, "version": 2}]) == {"written": 0, "unchanged": 2, "without_item_vectors": 0, "items_indexed": 0}
    # a new text for Alien: its vector and hash change, and so does the long-term profile vector
    before = vectors.profile_vectors("7")["long"]
    vectors.sync_items([Item("3", "Alien", categories=("Horror", "Sci-Fi"), tags=("space", "xenomorph", "ripley"))])
    assert store_profile_vectors(vectors, [p]) == {"written": 1, "unchanged": 1, "without_item_vectors": 0, "items_indexed": 0}
    assert not np.allclose(vectors.profile_vectors("7")["long"], before)


def test_a_horizon_without_item_vectors_loses_its_old_vector(vectors):
    store_profile_vectors(vectors, [profile(7, [("1", 1.0)], [("2", 1.0)])])
    report = store_profile_vectors(vectors, [profile(7, [("1", 1.0)], [("not-indexed", 1.0)], version=2)])
    assert report == {"written": 0, "unchanged": 1, "without_item_vectors": 1, "items_indexed": 0}
    assert set(vectors.profile_vectors("7")) == {"long"}  # no stale short-term vector left behind


def test_a_run_buffers_across_chunks_and_stores_at_flush(vectors):
    hook = ProfileVectorSync(lambda: vectors, batch_users=100)
    hook.begin()
    for start in range(0, 10, 4):  # three chunks, as Refresher._refresh_chunks hands them over
        hook([profile(u, [("1", 1.0), (str(2 + u % 3), 0.5)], [("4", 1.0)]) for u in range(start, min(start + 4, 10))])
    assert vectors.profiles.count() == 0  # buffered
    figures = hook.flush()
    assert (figures["written"], figures["unchanged"], figures["without_item_vectors"]) == (20, 0, 0)
    assert vectors.profiles.count() == 20
    hook([profile(3, [("4", 1.0)], [("4", 1.0)], version=2)])  # outside a run: at once
    assert hook.figures["written"] == 21 and hook.figures["unchanged"] == 1  # long changed, short did not


def test_cited_items_without_vectors_are_indexed_first_when_the_caller_can(vectors):
    late = Item("5", "Paddington", categories=("Children", "Comedy"), tags=("bear",))
    asked = []

    def index_items(ids):
        asked.append(list(ids))
        return vectors.sync_items([late] if "5" in ids else [])

    report = store_profile_vectors(vectors, [profile(8, [("5", 1.0), ("1", 1.0)], [("5", 1.0)])], index_items)
    assert asked == [["5"]]  # only the missing one
    assert report == {"written": 2, "unchanged": 0, "without_item_vectors": 0, "items_indexed": 1}
    assert [h.id for h in vectors.items.query(vectors.profile_vectors("8")["short"], k=1)] == ["5"]


def test_forgetting_in_an_empty_home_does_not_fix_a_wrong_vector_size(settings):
    """erase_user flushes Chroma with a placeholder record; with nothing stored and the
    model not loaded, its size is unknown, and a guessed one would stick to the collection."""
    vectors = VectorStore.from_settings(settings)  # a LazyEmbedder: the size is not known
    assert vectors.erase_user("nobody") == 0
    vec = np.ones(384, np.float32) / np.sqrt(384)
    assert vectors.store_profiles([("7", "long", "h", vec, 1)]).new == 1
    np.testing.assert_allclose(vectors.profile_vectors("7")["long"], vec, atol=1e-6)


def test_profile_vectors_get_the_lean_graph_and_an_older_collection_is_rebuilt_whole(settings, counting_embedder):
    """Nothing searches profile vectors by similarity, so their collection's graph is
    built cheaply; a home made with Chroma's default graph keeps working and is rebuilt
    on request, every vector written again and the item vectors left alone."""
    import chromadb

    from tastebud.retrieval.vectors import GRAPHS, PROFILES

    old = chromadb.PersistentClient(str(settings.chroma_path))
    old.create_collection(PROFILES, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    vectors = VectorStore.from_settings(settings, counting_embedder)
    vectors.sync_items(ITEMS)
    users = [profile(n, [("1", 2.0), ("3", 1.0)], [(str(n % 4 + 1), 1.0)]) for n in range(5)]
    store_profile_vectors(vectors, users)
    before = {str(n): vectors.profile_vectors(str(n)) for n in range(5)}
    assert not vectors.profile_graph_is_current()
    items_id = vectors.items.collection.id
    running = VectorStore.from_settings(settings, counting_embedder)  # a process that holds the old collection
    running.profile_vectors("0")

    vectors.recreate_profile_collection()
    assert vectors.profile_vectors("0") == {}
    # its next write reopens the collection by name and lands in the new one
    store_profile_vectors(running, [users[4]])
    assert set(vectors.profile_vectors("4")) == {"long", "short"} and running.profile_graph_is_current()
    assert store_profile_vectors(vectors, users)["written"] == 8  # user 4's came from the other process
    assert vectors.profile_graph_is_current()
    hnsw = VectorStore.from_settings(settings, counting_embedder).profiles.collection.configuration["hnsw"]
    assert {k: hnsw[k] for k in GRAPHS[PROFILES]} == GRAPHS[PROFILES]  # as Chroma keeps it, read afresh
    for user, stored in before.items():
        after = vectors.profile_vectors(user)
        assert set(after) == set(stored) == {"long", "short"}
        for horizon in stored:
            np.testing.assert_allclose(after[horizon], stored[horizon], atol=1e-6)
    assert vectors.items.collection.id == items_id and vectors.items.collection.count() == len(ITEMS)


def test_a_new_home_makes_its_profile_collection_with_the_lean_graph(settings, counting_embedder):
    from tastebud.retrieval.vectors import GRAPHS, ITEMS as ITEM_COLLECTION, PROFILES

    vectors = VectorStore.from_settings(settings, counting_embedder)
    assert vectors.profile_graph_is_current()
    assert vectors.profiles.collection.configuration["hnsw"]["max_neighbors"] == GRAPHS[PROFILES]["max_neighbors"] == 8
    assert vectors.items.collection.configuration["hnsw"]["max_neighbors"] == 16  # items are searched: Chroma's default
    assert GRAPHS[ITEM_COLLECTION] == {}


def test_index_rebuild_profiles_through_the_cli(tmp_path):
    """The operator's upgrade: `index` says the collection is old, `index --rebuild-profiles`
    recreates it and writes every vector again, and a second rebuild finds nothing to do."""
    import json
    import os
    import time

    import chromadb

    from tests.api_helpers import cli, seed_home

    home = tmp_path / "home"
    (home / "chroma").mkdir(parents=True)
    chromadb.PersistentClient(str(home / "chroma")).create_collection(
        "profiles", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    seed_home(home)
    told = cli(home, "index", "--json")
    assert "tastebud index --rebuild-profiles" in told.stderr
    before = json.loads(told.stdout)["profiles"]
    from tastebud.live.follow import stats_dir

    # this test's pid: a live process that runs (fresh for an hour: no race with a slow start)
    stats_dir(home).mkdir(exist_ok=True)
    (stats_dir(home) / "live-stats.json").write_text(json.dumps({"pid": os.getpid(), "written_at": time.time() + 3600}))
    refused = cli(home, "index", "--rebuild-profiles", check=False)
    assert refused.returncode == 74 and f"a live process of this home is running (pid {os.getpid()})" in refused.stderr
    (stats_dir(home) / "live-stats.json").unlink()
    rebuilt = json.loads(cli(home, "index", "--rebuild-profiles", "--json").stdout)["profiles"]
    assert rebuilt["collection_recreated"] is True and before["written"] == 0
    assert rebuilt["written"] == before["unchanged"] > 0 and rebuilt["unchanged"] == 0
    again = cli(home, "index", "--rebuild-profiles", "--json")
    assert json.loads(again.stdout)["profiles"]["collection_recreated"] is False and "rebuild" not in again.stderr
