"""The recommender's arithmetic on hand-made data: co-occurrence orientation and
weights, explanations that are the score, filters, cold start, the item-side cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.profiles.events import Event, Item
from tastebud.retrieval import recommender as R
from tastebud.retrieval.recommender import (
    PARTS, ItemSide, Recommender, UserContext, interaction_matrix, item_similarity, near_pairs, positive_weights,
)

T0 = 1_600_000_000_000


def ev(user, item, type_="rating", value=None, n=0):
    return Event(f"{user}-{item}-{type_}-{n}", user, item, type_, T0 + n * 1000, value)


def catalog(n=8):
    cats = ["Comedy", "Drama", "Horror", "Comedy", "Drama", "Horror", "Comedy", "Drama"]
    return {f"i{k}": Item(f"i{k}", f"Title {k}", None, (cats[k % len(cats)],), ("tag-a",) if k % 2 else ()) for k in range(n)}


def side_for(events, cat=None, vectors=None, **kw):
    cat = cat or catalog()
    items = sorted(cat)
    index = {iid: i for i, iid in enumerate(items)}
    return ItemSide.build(items, cat, interaction_matrix(events, index), vectors, **kw)


# ------------------------------------------------------------------ interactions and weights
def test_interaction_matrix_takes_latest_rating_and_implicit_value_and_skips_negatives():
    index = {"a": 0, "b": 1, "c": 2, "d": 3}
    events = [ev("u", "a", value=2.0, n=0), ev("u", "a", value=4.5, n=1), ev("u", "b", "like", n=2),
              ev("u", "b", "purchase", n=3), ev("u", "c", "dislike", n=4), ev("u", "d", "search", n=5),
              ev("u", "a", "tag", n=6), ev("v", "b", "rating", 3.0, n=7), ev("v", "b", "like", n=8)]
    m = interaction_matrix(events, index).toarray()
    assert m[0].tolist() == [4.5, R.IMPLICIT_VALUE, 0.0, 0.0]  # tag after a rating keeps the rating
    assert m[1].tolist() == [0.0, 3.0, 0.0, 0.0]  # a rating wins over an implicit event


def test_positive_weights_recent_items_strongest_event_and_negatives_drop():
    events = [ev("u", "a", value=5.0, n=0), ev("u", "b", value=1.0, n=1), ev("u", "c", value=4.0, n=2),
              ev("u", "d", "like", n=3), ev("u", "c", "dislike", n=4), ev("u", "a", "tag", n=5)]
    got = positive_weights(events)
    mean = (5.0 + 1.0 + 4.0) / 3
    assert set(got) == {"a", "d"}  # b is low-rated, c disliked later
    assert list(got) == ["d", "a"]  # recency order: a was touched last
    w_a, e_a = got["a"]
    assert e_a.type == "rating"  # the 5-star rating outweighs the later tag
    assert w_a == pytest.approx((1 + (5.0 - mean) / 2) * 0.5 ** (5 / R.POSITION_HALF_LIFE))
    assert got["d"][0] == pytest.approx(0.5 ** (2 / R.POSITION_HALF_LIFE))  # two events came after it


def test_positive_weights_keeps_only_the_most_recent(monkeypatch):
    monkeypatch.setattr(R, "RECENT_POSITIVES", 3)
    events = [ev("u", f"x{k}", "like", n=k) for k in range(6)]
    assert list(positive_weights(events)) == ["x3", "x4", "x5"]


def test_item_similarity_is_rating_cosine_with_shrink_and_top_neighbours():
    x = sp.csr_matrix(np.array([[5, 4, 0, 1], [4, 0, 3, 1], [0, 5, 2, 0]], dtype=np.float32))
    sim = item_similarity(x, neighbours=2, shrink=1.0).toarray()
    dense = x.toarray()
    norms = np.linalg.norm(dense, axis=0)
    full = dense.T @ dense / (np.outer(norms, norms) + 1.0)
    np.fill_diagonal(full, 0)
    for i in range(4):
        top = set(np.argsort(-full[i])[:2])
        assert set(np.flatnonzero(sim[i])) == top
        for j in top:
            assert sim[i, j] == pytest.approx(full[i, j], rel=1e-5)


def test_co_occurrence_uses_the_target_neighbourhood():
    """side.similarity[j, i] = sim(i, j) when j is among i's neighbours: a
    candidate is scored only from its own nearest items."""
    x = sp.csr_matrix(np.array([[5, 4, 0, 1], [4, 0, 3, 1], [0, 5, 2, 0], [1, 1, 1, 1]], dtype=np.float32))
    cat = {f"i{k}": Item(f"i{k}", f"T{k}") for k in range(4)}
    side = ItemSide.build(sorted(cat), cat, x, neighbours=1, shrink=0.0)
    own = item_similarity(x, neighbours=1, shrink=0.0).toarray()
    assert np.allclose(side.similarity.toarray(), own.T)


def test_near_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 8)).astype(np.float32)
    v[1] = v[0] + 0.01
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    got = near_pairs(v, threshold=0.5, chunk=7).toarray()
    full = v @ v.T
    np.fill_diagonal(full, 0)
    want = np.where(full >= 0.5, full, 0)
    assert np.allclose(got, want, atol=1e-6)
    assert got[0, 1] > 0.99


def test_a_rebuild_keeps_the_near_pairs_only_while_items_and_vectors_are_the_same():
    rng = np.random.default_rng(1)
    items = [f"i{n}" for n in range(6)]
    cat = {i: Item(i, i, None, ("Drama",), ()) for i in items}
    index = {iid: n for n, iid in enumerate(items)}
    v = rng.normal(size=(6, 4)).astype(np.float32)
    v[1] = v[0] + 0.01
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    first = ItemSide.build(items, cat, interaction_matrix([ev("u", "i0", value=4.0)], index), v)
    more = interaction_matrix([ev("u", "i0", value=4.0), ev("w", "i2", value=5.0)], index)
    again = ItemSide.build(items, cat, more, v.copy(), previous=first)
    assert again.near is first.near and again.pop_counts[2] == 1  # the new events count, the pairs carry over
    moved = v.copy()
    moved[1] = -moved[0]  # an item's text changed: its vector, and so its pairs, too
    changed = ItemSide.build(items, cat, more, moved, previous=first)
    assert changed.near is not first.near and changed.near[0, 1] == 0 and first.near[0, 1] > 0.99
    assert np.allclose(changed.near.toarray(), near_pairs(moved).toarray())


def test_a_rebuild_takes_the_item_vectors_it_replaces_while_the_catalog_is_the_same(store):
    from tastebud.retrieval.service import _build_item_side

    cat = catalog()
    store.upsert_items(list(cat.values()))
    store.write_batch(_world())
    asked = []

    class Items:
        def get_vectors(self, ids):
            asked.append(len(ids))
            return list(ids), np.stack([np.eye(16, dtype=np.float32)[int(i[1:])] for i in ids])

    class Vectors:
        items = Items()

    first, complete = _build_item_side(store, Vectors(), store.items_by_id())
    assert asked == [8] and complete
    store.write_batch([ev("late", "i7", value=5.0, n=99)])
    again, complete = _build_item_side(store, Vectors(), store.items_by_id(), previous=first)
    assert asked == [8] and complete and again.vectors is first.vectors  # new events only: Chroma not read
    assert again.pop_counts[again.index["i7"]] == first.pop_counts[first.index["i7"]] + 1
    store.upsert_items([Item("i3", "A new title", None, ("Comedy",), ())])  # its text, so its vector, may change
    _build_item_side(store, Vectors(), store.items_by_id(), previous=again)
    assert asked == [8, 8]

    class Unindexed(Items):  # i0 has no vector yet: a `tastebud index` may add it without a catalog change
        def get_vectors(self, ids):
            return super().get_vectors([i for i in ids if i != "i0"])

    class Partly:
        items = Unindexed()

    partial, complete = _build_item_side(store, Partly(), store.items_by_id())
    assert asked == [8, 8, 7] and not complete
    _build_item_side(store, Vectors(), store.items_by_id(), previous=partial)
    assert asked == [8, 8, 7, 8]

# ------------------------------------------------------------------ scoring and explanations
def _world():
    others = []
    for u in range(6):  # i0, i1, i2 and i3 go together; i5 and i6 together
        for k, item in enumerate(["i0", "i1", "i2", "i3"]):
            others.append(ev(f"o{u}", item, value=4.0 + (u + k) % 2, n=k))
        if u < 3:
            others += [ev(f"o{u}", "i5", value=4.0, n=10), ev(f"o{u}", "i6", value=5.0, n=11)]
    return others


def profile():
    return {"version": 3, "long_term": {"tags": [{"tag": "Comedy", "weight": 0.6, "evidence_event_ids": ["u-i0-rating-0"]}]},
            "short_term": {"tags": []}, "dislikes": {"tags": []}}


def test_parts_sum_to_score_and_co_occurrence_evidence_is_the_score():
    mine = [ev("u", "i0", value=5.0, n=0), ev("u", "i1", value=4.0, n=1), ev("u", "i7", value=1.0, n=2)]
    side = side_for(_world() + mine)
    blend = {"co_occurrence": 1.0, "popularity": 0.2, "tag_match": 0.3}
    rec = Recommender(side, blend)
    ctx = UserContext("u", mine, profile())
    items = rec.recommend(ctx, k=5)
    assert items and items[0].item_id in ("i2", "i3")
    liked = positive_weights(mine)
    cols = [side.index[i] for i in liked]
    weights = np.array([liked[i][0] for i in liked])
    raw = side.similarity[cols].toarray().T @ weights  # what co-occurrence sums, per item
    for it in items:
        assert sum(it.parts.values()) == pytest.approx(it.score, abs=1e-9)
        col = side.index[it.item_id]
        assert it.parts["co_occurrence"] == pytest.approx(raw[col] / raw.max(), rel=1e-5)
        for e in it.evidence.get("co_occurrence", []):
            j = side.index[e["item_id"]]
            assert e["contribution"] == pytest.approx(liked[e["item_id"]][0] * side.similarity[j, col], abs=1e-4)
            assert e["event_id"] in {m.event_id for m in mine}
        if it.parts["co_occurrence"] > 0:
            assert it.evidence["co_occurrence"], "a co-occurrence score must cite the past items behind it"
        assert {t["tag"] for t in it.evidence.get("tag_match", [])} <= {"Comedy"}


def test_consumed_disliked_and_near_duplicates_never_shown():
    cat = catalog()
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(len(cat), 16)).astype(np.float32)
    vecs[5] = vecs[6] + 0.001  # i5 and i6: near-duplicates
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    mine = [ev("u", "i0", value=5.0, n=0), ev("u", "i6", "dislike", n=1), ev("u", "i4", value=1.5, n=2)]
    side = side_for(_world() + mine, cat, vecs)
    items = Recommender(side, {"co_occurrence": 1.0, "popularity": 0.5}).recommend(UserContext("u", mine, profile()), k=20)
    shown = {it.item_id for it in items}
    assert shown and not shown & {"i0", "i4", "i5", "i6"}
    # without the dislike, i5 and i6 are recommendable
    ok = [mine[0]]
    shown = {it.item_id for it in Recommender(side, {"co_occurrence": 1.0, "popularity": 0.5}).recommend(UserContext("u", ok, profile()), k=20)}
    assert {"i5", "i6"} <= shown


def test_category_exclude_and_cold_start():
    side = side_for(_world())
    rec = Recommender(side, {"co_occurrence": 1.0, "popularity": 0.2})
    cold = UserContext("new", [], None)
    drama = rec.recommend(cold, k=10, category="drama")
    assert [it.item_id for it in drama] == ["i1", "i4", "i7"]  # i1 is the only popular one; ties in catalog order
    assert all(it.parts == {"popularity": pytest.approx(side.popularity[side.index[it.item_id]])} for it in drama)
    assert rec.recommend(cold, k=10, category="No Such Category") == []
    shown = {it.item_id for it in rec.recommend(cold, k=10, exclude=["i0", "HORROR", "tag-a"])}
    assert shown == {"i4", "i6"}  # i0 by id, i2/i5 Horror, odd items carry tag-a
    everything = {it.item_id for it in rec.recommend(cold, k=10, exclude=["unknown-thing"])}
    assert len(everything) == len(side.items)


def test_blocked_matches_a_brute_force_filter():
    cat = catalog(8)
    side = side_for(_world(), cat)
    rec = Recommender(side, {"popularity": 1.0})
    mask, _ = rec.blocked(UserContext("u", [ev("u", "i3", value=4.0)], None), "Comedy", ["i6", "tag-a"])
    brute = [iid == "i3" or "Comedy" not in cat[iid].categories or iid == "i6" or "tag-a" in cat[iid].tags for iid in side.items]
    assert mask.tolist() == brute


def test_mmr_diversify_returns_k_distinct_items():
    cat = catalog()
    vecs = np.eye(len(cat), 16, dtype=np.float32)
    side = side_for(_world(), cat, vecs)
    items = Recommender(side, {"popularity": 1.0}).recommend(UserContext("u", [ev("u", "i7", "like")], profile()), k=4, diversify=0.5)
    assert len({it.item_id for it in items}) == 4 and [it.rank for it in items] == [1, 2, 3, 4]


# ------------------------------------------------------------------ the item-side cache
def test_item_side_cache_round_trip_and_fingerprint(store, tmp_path):
    from tastebud.retrieval.service import cached_item_side, item_side_fingerprint

    cat = catalog()
    store.upsert_items(list(cat.values()))
    store.write_batch(_world())
    first = cached_item_side(store, None, tmp_path)
    files = list(tmp_path.glob("item_side-*.npz"))
    assert len(files) == 1
    again = cached_item_side(store, None, tmp_path)
    assert again.items == first.items
    assert (again.similarity != first.similarity).nnz == 0 and np.array_equal(again.popularity, first.popularity)
    assert again.tag_vocab == first.tag_vocab
    key = item_side_fingerprint(store, store.items_by_id(), None)
    store.write_batch([ev("late", "i7", value=5.0, n=99)])
    assert item_side_fingerprint(store, store.items_by_id(), None) != key
    rebuilt = cached_item_side(store, None, tmp_path)
    assert rebuilt.pop_counts[rebuilt.index["i7"]] == first.pop_counts[first.index["i7"]] + 1
    assert len(list(tmp_path.glob("item_side-*.npz"))) == 1  # the outdated file is gone
    next(tmp_path.glob("item_side-*.npz")).write_bytes(b"garbage")
    assert cached_item_side(store, None, tmp_path).items == first.items  # a broken cache is rebuilt
    published = tmp_path / "item_side-published.npz"  # what a live process left for the workers
    published.write_bytes(b"kept")
    store.write_batch([ev("later", "i7", value=5.0, n=100)])
    cached_item_side(store, None, tmp_path)
    assert published.read_bytes() == b"kept"


def test_a_fully_indexed_item_side_is_found_without_asking_the_vector_store(store, tmp_path):
    """Once every catalog item had a vector, the cached side depends on the events,
    the catalog and the embedder's name only: `vectors` (a function that would open
    Chroma) is not called. With items not indexed yet it is, for the vector count."""
    from tastebud.retrieval.service import cached_item_side

    cat = catalog()
    store.upsert_items(list(cat.values()))
    store.write_batch(_world())
    indexed = set(cat)

    class Items:
        def get_vectors(self, ids):
            found = [i for i in ids if i in indexed]
            return found, np.stack([np.eye(16, dtype=np.float32)[int(i[1:])] for i in found])

        def count(self):
            return len(indexed)

    class Embedder:
        name = "fake-model"

    class Vectors:
        items, embedder = Items(), Embedder()

    opened = []

    def vectors():
        opened.append(1)
        return Vectors()

    built = cached_item_side(store, vectors, tmp_path, "fake-model")
    assert opened and built.vectors is not None
    assert [p.name.endswith("-all.npz") for p in tmp_path.glob("item_side-*.npz")] == [True]
    opened.clear()
    again = cached_item_side(store, vectors, tmp_path, "fake-model")
    assert not opened and np.array_equal(again.vectors, built.vectors)
    assert cached_item_side(store, vectors, tmp_path, "another-model") is not None and opened  # another model: rebuilt

    indexed.discard("i3")  # an item without a vector: the side is keyed by the count, so Chroma is asked each time
    store.write_batch([ev("late", "i7", value=5.0, n=99)])
    opened.clear()
    partial = cached_item_side(store, vectors, tmp_path, "fake-model")
    assert opened and not partial.vectors[partial.index["i3"]].any()
    assert [p.name.endswith(f"-{len(indexed)}.npz") for p in tmp_path.glob("item_side-*.npz")] == [True]
    opened.clear()
    cached_item_side(store, vectors, tmp_path, "fake-model")
    assert opened
    assert cached_item_side(store, None, tmp_path).vectors is None  # no vector store: never a side that has vectors


def test_every_part_is_named():
    assert set(PARTS) == {"semantic_long", "semantic_short", "co_occurrence", "popularity", "tag_match"}


def test_item_vectors_fill_items_not_indexed_yet_with_zeros():
    from tastebud.retrieval.service import _item_vectors

    class Items:
        def get_vectors(self, ids):
            found = [i for i in ids if i != "b"]
            return found, np.stack([np.full(3, float(k + 1), np.float32) for k, _ in enumerate(found)])

    class Vectors:
        items = Items()

    got = _item_vectors(Vectors(), ["a", "b", "c"])
    assert got.tolist() == [[1.0] * 3, [0.0] * 3, [2.0] * 3]


def test_seeded_recommendations_are_the_seeds_neighbours_ranked_for_the_user():
    """"something like i5": i6 goes with i5 in everyone's ratings and is closest
    in content; the seed itself is never shown; the seed part is the mean of
    the scaled co-occurrence row and the scaled cosine, and parts sum to the score."""
    cat = catalog()
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(len(cat), 16)).astype(np.float32)
    vecs[6] = vecs[5] + 0.4 * rng.normal(size=16)  # i6 near i5 in content, not a near-duplicate
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    mine = [ev("u", "i0", value=5.0, n=0), ev("u", "i1", value=4.0, n=1)]
    side = side_for(_world() + mine, cat, vecs)
    rec = Recommender(side, {"co_occurrence": 1.0, "popularity": 0.2})
    plain = rec.recommend(UserContext("u", mine, profile()), k=3)
    seeded = rec.recommend(UserContext("u", mine, profile(), seeds=("i5",)), k=3)
    assert plain[0].item_id in ("i2", "i3")  # the user's own taste leads without a seed
    assert seeded[0].item_id == "i6"
    assert "i5" not in {it.item_id for it in rec.recommend(UserContext("u", mine, profile(), seeds=("i5",)), k=20)}
    col5 = side.index["i5"]
    co = side.similarity[col5].toarray().ravel()
    cos = side.vectors @ side.vectors[col5]
    scale = lambda x: (x - x.min()) / (x.max() - x.min())  # noqa: E731
    expected = (scale(co) + scale(cos)) / 2
    for it in seeded:
        col = side.index[it.item_id]
        assert it.parts["seed"] == pytest.approx(R.SEED_WEIGHT * expected[col], rel=1e-5)
        assert sum(it.parts.values()) == pytest.approx(it.score, abs=1e-9)
        assert it.evidence["seed"]["item_ids"] == ["i5"]
        assert it.evidence["seed"]["cosine"] == pytest.approx(float(cos[col]), abs=1e-4)
    # cold start: a new user's "something like i5" is led by the seed as well
    cold = rec.recommend(UserContext("new", [], None, seeds=("i5",)), k=1)
    assert cold[0].item_id == "i6" and cold[0].parts["seed"] > 0


# ------------------------------------------------------------------ short histories lean on popularity
def test_popularity_weight_grows_as_history_shrinks_and_the_log_holds_it():
    blend = {"semantic_long": 0.0, "semantic_short": 0.0, "co_occurrence": 0.5, "popularity": 0.1, "tag_match": 0.2}
    history = [ev("u", "i0", value=5.0, n=0), ev("u", "i1", "like", n=1)]
    others = [ev(f"o{k}", f"i{j}", value=4.0, n=2 + k) for k in range(6) for j in range(2, 2 + k % 4)]
    rec = Recommender(side_for(history + others), blend, cold_popularity=2.0, cold_events=3.0)
    assert R.history_length(history + [Event("s", "u", None, "like", T0, None, "Comedy")]) == 2  # statements are not items
    got = rec.blend_for(2)
    assert got["popularity"] == pytest.approx(0.1 + 2.0 * 3.0 / (2 + 3.0))  # 1.3
    assert {p: v for p, v in got.items() if p != "popularity"} == {p: v for p, v in blend.items() if p != "popularity"}
    assert rec.blend_for(1000)["popularity"] == pytest.approx(0.1 + 6.0 / 1003.0)
    assert Recommender(rec.side, blend, cold_popularity=0.0).blend_for(2) == blend  # off: the blend as given
    for item in rec.recommend(UserContext("u", history, None), k=3):
        assert item.parts["popularity"] == pytest.approx(1.3 * float(rec.side.popularity[rec.side.index[item.item_id]]))
        assert sum(item.parts.values()) == pytest.approx(item.score)  # the log still sums to the score
    for item in rec.recommend(UserContext("u", history, None, seeds=("i2",)), k=3):  # an explicit request leads
        assert item.parts["popularity"] == pytest.approx(0.1 * float(rec.side.popularity[rec.side.index[item.item_id]]))


# ------------------------------------------------------------------ places for new items
def _new_item_world(new_vector):
    """i0-i5 rated by others, i6 and i7 by nobody; the profile vector points at e3."""
    events = [ev(u, f"i{k}", value=4.0 + (k + j) % 2, n=10 * j + k)
              for j, u in enumerate(("a", "b", "c")) for k in range(6) if (k + j) % 3]
    events += [ev("u", "i0", value=5.0, n=100), ev("u", "i1", value=4.0, n=101)]
    vecs = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0.7, 0.7, 0, 0.1], [0, 1, 0, 0.2],
                     [0.5, 0.5, 0.5, 0.3], [0, 0, 1, 0.1], [0, 0, 0, -1], new_vector], dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    side = side_for(events, vectors=vecs)
    profile_vector = np.array([0, 0, 0, 1], dtype=np.float32)
    ctx = R.UserContext("u", [e for e in events if e.user_id == "u"], None, {"long": profile_vector, "short": profile_vector})
    return side, ctx


BLEND = {"semantic_long": 0.1, "semantic_short": 0.1, "co_occurrence": 0.35, "popularity": 0.1, "tag_match": 0.1}


def test_a_never_rated_item_closest_to_the_profile_takes_the_last_place_when_asked_and_says_so():
    from tastebud.retrieval.why import render_why, render_why_zh

    side, ctx = _new_item_world([0, 0, 0, 1])  # i7: exactly the profile's direction
    assert side.pop_counts[side.index["i7"]] == 0 and side.pop_counts[side.index["i6"]] == 0
    plain = [r.item_id for r in Recommender(side, BLEND).recommend(ctx, k=3)]
    assert "i7" not in plain  # off by default: co-occurrence and popularity cannot reach it
    got = Recommender(side, {**BLEND, "new_items": 1}).recommend(ctx, k=3)
    assert [r.item_id for r in got] == plain[:2] + ["i7"] and got[2].rank == 3
    assert got[2].evidence["new_item"] == {"positive_interactions": 0, "places": 1}
    assert all("new_item" not in r.evidence for r in got[:2])
    assert got[2].score == pytest.approx(sum(got[2].parts.values()))  # still its own score, logged as parts
    entry = {"parts": got[2].parts, "evidence": got[2].evidence}
    assert render_why(entry)[0].startswith("New: nobody has interacted with it yet, so it holds the place kept")
    assert render_why_zh(entry)[0].startswith("新作品：还没有人与它互动过")
    seeded = Recommender(side, {**BLEND, "new_items": 1}).recommend(R.UserContext(**{**ctx.__dict__, "seeds": ("i3",)}), k=3)
    assert "i7" not in [r.item_id for r in seeded]  # "something like X" asks for X's neighbours


def test_a_new_item_less_close_to_the_profile_than_the_chosen_ones_gets_no_place():
    side, ctx = _new_item_world([1, 0, 0, 0.05])  # i7 points away from the profile
    got = [r.item_id for r in Recommender(side, {**BLEND, "new_items": 1}).recommend(ctx, k=3)]
    assert got == [r.item_id for r in Recommender(side, BLEND).recommend(ctx, k=3)]


def test_the_offline_scorer_gives_new_items_the_places_recommend_gives_them():
    """`eval` ranks by scores, not through recommend(): the same items must end in the same places."""
    from tastebud.retrieval.offline import TastebudScorer

    side, ctx = _new_item_world([0, 0, 0, 1])
    rec = Recommender(side, {**BLEND, "new_items": 1})
    served = [r.item_id for r in rec.recommend(ctx, k=3)]
    assert served[-1] == "i7"
    scorer = TastebudScorer({**BLEND, "new_items": 1}, interest=None)
    scorer.recommender, scorer.k = rec, 3
    parts, _ = rec.parts(ctx)
    mask, near = rec.blocked(ctx)
    if near is not None:
        parts["dislike_similarity"] = near
    blend = rec.blend_for(R.history_length(ctx.events))
    total = np.where(mask, -np.inf, rec.total(parts, blend))
    scorer._give_new_items_their_places(total, parts, blend)
    assert [side.items[c] for c in np.argsort(-total, kind="stable")[:3]] == served


def test_a_side_published_by_another_version_is_not_adopted(store, tmp_path):
    import json

    from tastebud.retrieval.service import RecommendationService

    cat = catalog()
    store.upsert_items(list(cat.values()))
    store.write_batch(_world())
    live = RecommendationService(store, None, {"co_occurrence": 1.0}, cache_dir=tmp_path)
    assert live.publish_side(seq=5)
    worker = RecommendationService(store, None, {"co_occurrence": 1.0}, cache_dir=tmp_path)
    assert worker.adopt_published(newer_than=4) == 5
    pointer = tmp_path / "item_side-published.json"
    pointer.write_text(json.dumps({"seq": 9, "format": "2|n100-s10.0-i4.0-d0.75"}))  # before same_start
    assert worker.adopt_published(newer_than=5) is None
