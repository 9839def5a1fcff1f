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
