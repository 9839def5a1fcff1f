"""Chroma (PersistentClient in a temp home) with the real embedding model."""

import numpy as np
import pytest

from tastebud.profiles.events import Item
from tastebud.retrieval.vectors import SyncReport, VectorStore, make_client, vector_content_hash

pytestmark = pytest.mark.integration

ITEMS = [
    Item("1", "Heat", categories=("Action", "Crime", "Thriller"), tags=("heist", "los angeles")),
    Item("2", "Toy Story", categories=("Animation", "Children", "Comedy"), tags=("pixar", "toys")),
    Item("3", "Alien", categories=("Horror", "Sci-Fi"), tags=("space", "monster")),
    Item("4", "Pride and Prejudice", categories=("Drama", "Romance"), tags=("jane austen", "period piece")),
]


@pytest.fixture
def vectors(settings, counting_embedder):
    return VectorStore.from_settings(settings, counting_embedder)


def test_collections_use_cosine_space(vectors, settings):
    assert settings.chroma_path.is_dir()
    for col in (vectors.items, vectors.profiles):
        assert col.collection.configuration["hnsw"]["space"] == "cosine"


def test_second_sync_encodes_nothing(vectors, counting_embedder):
    first = vectors.sync_items(ITEMS)
    assert first == SyncReport(new=4, updated=0, unchanged=0)
    assert len(counting_embedder.encoded) == 4
    counting_embedder.calls.clear()
    second = vectors.sync_items(ITEMS)
    assert second == SyncReport(new=0, updated=0, unchanged=4)
    assert counting_embedder.calls == []
    assert vectors.items.count() == 4


def test_changed_text_reencodes_only_that_id(vectors, counting_embedder):
    vectors.sync_items(ITEMS)
    before_ids, before = vectors.items.get_vectors(["1", "2", "3", "4"])
    counting_embedder.calls.clear()
    changed = Item("3", "Alien", categories=("Horror", "Sci-Fi"), tags=("space", "monster", "ridley scott"))
    report = vectors.sync_items([ITEMS[0], ITEMS[1], changed, ITEMS[3]])
    assert report == SyncReport(new=0, updated=1, unchanged=3)
    assert counting_embedder.encoded == [changed.text_for_embedding()]
    after_ids, after = vectors.items.get_vectors(["1", "2", "3", "4"])
    assert before_ids == after_ids == ["1", "2", "3", "4"]
    assert np.allclose(before[[0, 1, 3]], after[[0, 1, 3]])
    assert not np.allclose(before[2], after[2])
    meta = vectors.items.metadata(["3"])["3"]
    assert meta["content_hash"] == vector_content_hash(changed.text_for_embedding(), "all-MiniLM-L6-v2")
    assert vectors.items.count() == 4


def test_metadata_change_without_text_change_is_not_reencoded(vectors, counting_embedder):
    vectors.sync_items(ITEMS)
    counting_embedder.calls.clear()
    report = vectors.items.sync(["1"], [ITEMS[0].text_for_embedding()], [{"title": "Heat (1995)"}])
    assert report == SyncReport(new=0, updated=0, unchanged=1, metadata_only=1)
    assert counting_embedder.calls == []
    meta = vectors.items.metadata(["1"])["1"]
    assert meta["title"] == "Heat (1995)" and "categories" not in meta  # keys we stopped setting are gone


def test_query_returns_semantic_nearest(vectors):
    vectors.sync_items(ITEMS)
    hits = vectors.items.query("a bank robbery crime thriller", k=2)
    assert hits[0].id == "1" and hits[0].metadata["title"] == "Heat"
    assert 0 < hits[1].score < hits[0].score <= 1.0
    hits = vectors.items.query("an animated movie about toys for kids", k=1)
    assert [h.id for h in hits] == ["2"]
    # by vector: an item's own vector is its own nearest neighbour, similarity 1
    _, vec = vectors.items.get_vectors(["4"])
    top = vectors.items.query(vec[0], k=1)[0]
    assert top.id == "4" and top.score == pytest.approx(1.0, abs=1e-4)
    # metadata filter (categories are filtered in the event store; Chroma holds titles only)
    assert [h.id for h in vectors.items.query("space monster", k=4, where={"title": "Toy Story"})] == ["2"]
    assert set(vectors.items.metadata(["1"])["1"]) == {"title", "content_hash", "embedder"}
    # k larger than the collection is fine
    assert len(vectors.items.query("anything", k=50)) == 4


def test_profiles_and_persistence(settings, embedder, counting_embedder):
    store = VectorStore.from_settings(settings, counting_embedder)
    report = store.sync_profiles([("42", "long", "Loves crime thrillers and heists.", 1),
                                  ("42", "short", "Lately into animated family films.", 1)])
    assert report.new == 2
    got = store.profile_vectors("42")
    assert set(got) == {"long", "short"}
    hits = store.items.query(got["long"], k=1)  # empty items collection
    assert hits == []
    store.sync_items(ITEMS)
    assert store.items.query(got["long"], k=1)[0].id == "1"
    assert store.items.query(got["short"], k=1)[0].id == "2"
    meta = store.profiles.metadata(["42:long"])["42:long"]
    assert meta["user_id"] == "42" and meta["horizon"] == "long" and meta["version"] == 1
    # a new version with the same text: metadata only
    counting_embedder.calls.clear()
    again = store.sync_profiles([("42", "long", "Loves crime thrillers and heists.", 2)])
    assert again == SyncReport(unchanged=1, metadata_only=1) and counting_embedder.calls == []
    # a fresh client on the same directory sees everything, and still encodes nothing
    reopened = VectorStore(make_client(settings), counting_embedder)
    assert reopened.items.count() == 4 and reopened.profiles.count() == 2
    assert reopened.profiles.metadata(["42:long"])["42:long"]["version"] == 2
    assert reopened.sync_items(ITEMS).encoded == 0
    with pytest.raises(ValueError):
        store.sync_profiles([("42", "medium", "x", 1)])


def test_batches_smaller_than_the_input(settings, counting_embedder):
    store = VectorStore(make_client(settings), counting_embedder, batch_size=3)
    items = [Item(str(i), f"Movie number {i}", categories=("Drama",)) for i in range(10)]
    store.items.ENCODE_CHUNK = 4  # encode calls of 4, Chroma writes of at most 3
    assert store.sync_items(items).new == 10
    assert [len(c) for c in counting_embedder.calls] == [4, 4, 2]
    ids, matrix = store.items.all_vectors()
    assert sorted(ids, key=int) == [str(i) for i in range(10)] and matrix.shape == (10, 384)
    ids, matrix = store.items.get_vectors(["9", "missing", "0"])
    assert ids == ["9", "0"] and matrix.shape == (2, 384)


def test_bad_input(vectors):
    with pytest.raises(ValueError):
        vectors.items.sync(["a", "a"], ["x", "y"])
    with pytest.raises(ValueError):
        vectors.items.sync(["a"], ["x", "y"])
    with pytest.raises(ValueError):
        vectors.items.sync(["a"], ["x"], [{"content_hash": "forged"}])
    with pytest.raises(ValueError):
        vectors.items.query(np.ones(5), k=1)


def test_a_remembered_read_is_dropped_by_a_write_and_expires(settings, vectors):
    """The server's item-vector memo (retrieval/memo.py): repeated reads come from
    memory, this process's writes are seen at once, and the memo empties in time."""
    from tastebud.retrieval.memo import RecordMemo

    vectors.sync_items(ITEMS)
    vectors.items.memo = memo = RecordMemo(seconds=3600)
    first = vectors.items.get_hashed(["1", "3", "nope"])
    assert set(first) == {"1", "3"} and (memo.hits, memo.misses) == (0, 3)
    again = vectors.items.get_hashed(["3", "1"])
    assert (memo.hits, memo.misses) == (2, 3)  # from memory
    assert again["3"][0] == first["3"][0] and np.array_equal(again["3"][1], first["3"][1])

    changed = Item("3", "Alien", categories=("Horror", "Sci-Fi"), tags=("space", "monster", "ridley scott"))
    vectors.sync_items([changed])  # a write through this store drops what it touches
    after = vectors.items.get_hashed(["1", "3"])
    assert after["3"][0] == vector_content_hash(changed.text_for_embedding(), vectors.embedder.name) != first["3"][0]
    assert (memo.hits, memo.misses) == (3, 4)  # "1" still remembered, "3" read again

    other = VectorStore.from_settings(settings, vectors.embedder)  # another process re-indexes "1"
    other.sync_items([Item("1", "Heat", categories=("Action",), tags=("heist",))])
    assert vectors.items.get_hashed(["1"])["1"][0] == first["1"][0]  # not seen until the memo's time is up
    memo._until = 0.0
    assert vectors.items.get_hashed(["1"])["1"][0] != first["1"][0]


def test_a_read_that_overlapped_a_write_is_not_remembered():
    from tastebud.retrieval.memo import RecordMemo

    memo = RecordMemo(seconds=3600)
    _, _, token = memo.lookup(["a"])
    memo.drop(["a"])  # a write of "a" while "a" was being read: the read may hold the old value
    memo.keep({"a": "old"}, token)
    assert memo.lookup(["a"])[0] == {}
    _, _, token = memo.lookup(["a"])
    memo.keep({"a": "new"}, token)
    assert memo.lookup(["a"])[0] == {"a": "new"}


def test_a_read_that_starts_and_ends_inside_a_write_is_not_remembered(vectors):
    """A read taken while Chroma is still writing may hold the old vector; the drop
    after the write (VectorCollection._call) removes what it kept."""
    from tastebud.retrieval.memo import RecordMemo

    vectors.sync_items(ITEMS)
    col = vectors.items
    col.memo = memo = RecordMemo(seconds=3600)
    old_hash = col.get_hashed(["3"])["3"][0]
    memo.drop(None)
    changed = Item("3", "Alien", categories=("Horror",), tags=("space",))
    seen_inside: list[str] = []
    real_upsert = col.collection.upsert

    def upsert_with_a_read_inside(**kwargs):
        seen_inside.append(col.get_hashed(["3"])["3"][0])  # another thread's read, before the write lands
        return real_upsert(**kwargs)

    col.collection.upsert = upsert_with_a_read_inside
    try:
        vectors.sync_items([changed])
    finally:
        col.collection.upsert = real_upsert
    assert seen_inside == [old_hash]
    assert memo.lookup(["3"])[0] == {}  # what that read kept is gone
    assert col.get_hashed(["3"])["3"][0] == vector_content_hash(changed.text_for_embedding(), vectors.embedder.name)
