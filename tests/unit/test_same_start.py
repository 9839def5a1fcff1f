"""The same_start part (retrieval/same_start.py) on hand-computed values: each user's
first items from a stream in any order, the shares of what people went on to like,
and the recommender's use of them: weight, log, evidence and the `why` sentence."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.profiles.events import Event, Item
from tastebud.retrieval.recommender import SAME_START, ItemSide, Recommender, UserContext, interaction_matrix
from tastebud.retrieval.same_start import START_ITEMS, START_SHRINK, StartTracker, same_start_matrix, start_part
from tastebud.retrieval.why import render_why, render_why_zh

T0 = 1_600_000_000_000


def ev(user, item, value=None, t=0, type_="rating"):
    return Event(f"{user}-{item}-{type_}-{t}", user, item, type_, T0 + t * 1000, value)


def test_the_tracker_keeps_each_users_first_distinct_items_whatever_the_stream_order():
    rng = random.Random(7)
    for trial in range(200):
        k = rng.randint(1, 5)
        stream = [(rng.randrange(3), rng.randrange(8), rng.randrange(6)) for _ in range(rng.randint(1, 40))]  # user, item, ts
        tracker = StartTracker(k)
        for row, col, ts in stream:
            tracker.add(row, col, ts)
        for row in {r for r, _, _ in stream}:
            ordered = sorted(((ts, pos, col) for pos, (r, col, ts) in enumerate(stream) if r == row))
            want: list[int] = []
            for _, _, col in ordered:
                if col not in want:
                    want.append(col)
            assert [c for _, _, c in tracker.firsts[row]] == want[:k], (trial, stream)


def test_shares_are_what_those_who_started_with_an_item_went_on_to_like():
    # first two items: a starts with x, y; b with x, z; c with y. Only ratings >= 4 after the start count.
    index = {"x": 0, "y": 1, "z": 2, "w": 3}
    events = [ev("a", "x", 4.0, 1), ev("a", "y", 5.0, 2), ev("a", "z", 5.0, 3), ev("a", "w", 3.0, 4),
              ev("b", "z", 2.0, 2), ev("b", "x", 5.0, 1), ev("b", "y", 4.0, 3),  # out of time order on purpose
              ev("c", "y", 5.0, 1)]
    tracker = StartTracker(2)
    interactions = interaction_matrix(events, index, tracker)
    shares, started = same_start_matrix(tracker.matrix(*interactions.shape), interactions)
    assert started.tolist() == [2, 2, 1, 0]
    want = np.zeros((4, 4))
    want[0, 2] = 1 / (2 + START_SHRINK)  # a: x -> z
    want[1, 2] = 1 / (2 + START_SHRINK)  # a: y -> z (y was liked, but inside a's start: not "went on")
    want[0, 1] = 1 / (2 + START_SHRINK)  # b: x -> y
    want[2, 1] = 1 / (1 + START_SHRINK)  # b: z -> y (z rated 2 still starts b)
    np.testing.assert_allclose(shares.toarray(), want, rtol=1e-6)
    np.testing.assert_allclose(start_part(shares, [0, 2]), (want[0] + want[2]) / 2, rtol=1e-6)


def test_each_item_keeps_its_strongest_followers():
    starts = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=np.float32))
    liked = sp.csr_matrix(np.array([[0, 5, 4, 0], [0, 5, 4, 4], [0, 5, 0, 0]], dtype=np.float32))
    shares, _ = same_start_matrix(starts, liked, keep=2)
    assert shares[0].toarray().ravel().tolist() == pytest.approx([0, 3 / 8, 2 / 8, 0])  # item 3 (1 follower) dropped


def _world(starters: int = 10):
    """`starters` users start with i0 and go on to like i11; i13 is the most popular item,
    liked by people who start elsewhere."""
    cat = {f"i{k}": Item(f"i{k}", f"Title {k}", None, ("Drama",), ()) for k in range(14)}
    events = []
    for u in range(starters + 2):
        first = ["i0", *[f"i{k}" for k in range(1, 10)]] if u < starters else [f"i{k}" for k in range(1, 11)]
        for t, item in enumerate(first):
            events.append(ev(f"o{u}", item, 3.0, t))
        events += [ev(f"o{u}", "i11", 5.0, 20)] if u < starters else [ev(f"o{u}", "i12", 5.0, 20), ev(f"o{u}", "i13", 5.0, 21)]
    events += [ev(f"p{u}", "i13", 5.0, 30) for u in range(starters + 2)]
    items = sorted(cat)
    index = {iid: i for i, iid in enumerate(items)}
    tracker = StartTracker()
    interactions = interaction_matrix(events, index, tracker)
    return ItemSide.build(items, cat, interactions, None, starts=tracker.matrix(*interactions.shape))


def test_a_new_user_gets_what_people_who_started_alike_went_on_to_like_and_why_says_it():
    side = _world()
    blend = {"co_occurrence": 0.35, "popularity": 0.1}
    rec = Recommender(side, blend, cold_popularity=0.0)
    assert rec.blend_for(1)[SAME_START] == pytest.approx(1.0 * 5 / (1 + 5))
    items = rec.recommend(UserContext("new", [ev("new", "i0", 4.0, 0)], None), k=3)
    top = items[0]
    assert top.item_id == "i11", [(i.item_id, i.parts) for i in items]  # beats the more popular i13
    col = side.index["i11"]
    share = 10 / (10 + START_SHRINK)
    assert top.parts[SAME_START] == pytest.approx(5 / 6 * share, rel=1e-6)
    assert sum(top.parts.values()) == pytest.approx(top.score, abs=1e-9)  # the log sums to the score
    assert top.evidence[SAME_START]["items"] == [{"item_id": "i0", "title": "Title 0", "started": 10, "went_on": 10,
                                                  "share": round(share, 4)}]
    assert side.same_start[side.index["i0"], col] == pytest.approx(share)
    en = render_why({"parts": top.parts, "evidence": top.evidence})
    assert en[0] == ("People who started where you did went on to interact with it positively: "
                     f"10 of the 10 whose first {START_ITEMS} items included Title 0.")
    zh = render_why_zh({"parts": top.parts, "evidence": top.evidence})
    assert zh[0] == f"和你起点相同的人后来对它有正面互动：最初 {START_ITEMS} 部作品里有《Title 0》的 10 人中，有 10 人。"
    without = Recommender(side, {**blend, SAME_START: 0.0}, cold_popularity=0.0)  # the ablation: off by the blend
    assert SAME_START not in without.blend_for(1)
    assert without.recommend(UserContext("new", [ev("new", "i0", 4.0, 0)], None), k=1)[0].item_id == "i13"


def test_the_counts_of_fewer_than_ten_people_are_not_cited():
    side = _world(starters=4)
    top = Recommender(side, {"co_occurrence": 0.35}, cold_popularity=0.0).recommend(
        UserContext("new", [ev("new", "i0", 4.0, 0)], None), k=1)[0]
    assert top.item_id == "i11" and top.evidence[SAME_START]["items"] == [
        {"item_id": "i0", "title": "Title 0", "share": round(4 / (4 + START_SHRINK), 4)}]
    entry = {"parts": top.parts, "evidence": top.evidence}
    assert render_why(entry)[0] == ("People who started where you did went on to interact with it positively: "
                                    f"some of those whose first {START_ITEMS} items included Title 0.")
    assert render_why_zh(entry)[0] == f"和你起点相同的人后来对它有正面互动：其中有些人最初 {START_ITEMS} 部作品里有《Title 0》。"


def test_the_part_fades_as_the_history_grows():
    rec = Recommender(_world(), {"co_occurrence": 0.35}, cold_popularity=0.0)
    assert rec.blend_for(0)[SAME_START] == pytest.approx(1.0)
    assert rec.blend_for(95)[SAME_START] == pytest.approx(5 / 100)


def test_the_stores_streaming_pass_learns_the_same_starts_as_the_time_ordered_events_and_the_cache_keeps_them(
        store, tmp_path):
    from tastebud.retrieval.service import cached_item_side

    side = _world()
    rng = random.Random(3)
    events = []
    for u in range(6):  # more than ten items each, stored out of time order
        items = [f"i{k}" for k in rng.sample(range(14), 13)]
        events += [ev(f"s{u}", item, float(rng.choice([2, 3, 4, 5])), rng.randrange(40), type_="rating") for item in items]
    stored = sorted(events, key=lambda e: (e.user_id, e.item_id))  # as a ratings file is laid out: not by time
    store.upsert_items(list(side.catalog.values()))
    store.write_batch(stored)
    built = cached_item_side(store, None, tmp_path)
    by_time = sorted(stored, key=lambda e: e.ts)  # stable: ties keep the stored order, as the store's seq does
    items = sorted(side.catalog)
    index = {iid: i for i, iid in enumerate(items)}
    tracker = StartTracker()
    interactions = interaction_matrix(by_time, index, tracker)
    want = ItemSide.build(items, side.catalog, interactions, None, starts=tracker.matrix(*interactions.shape))
    assert built.same_start.nnz > 0
    assert abs(built.same_start - want.same_start).max() < 1e-7 and np.array_equal(built.started, want.started)
    again = cached_item_side(store, None, tmp_path)  # read back from the cache file
    assert abs(again.same_start - built.same_start).max() == 0 and np.array_equal(again.started, built.started)


def test_a_stored_time_that_cannot_be_read_starts_nobody_and_breaks_nothing():
    from tastebud.retrieval.item_side import interaction_matrix_from_rows

    index = {"x": 0, "y": 1}
    tracker = StartTracker(1)
    rows = [("a", "x", "rating", 4.0, "not a time"), ("a", "y", "rating", 5.0, 2.0e12), ("b", "x", "rating", 4.0, True),
            ("b", "y", "rating", 4.0, 5), ("c", "x", "rating", 4.0, -5), ("c", "y", "rating", 4.0, -2.5)]
    # SQLite keeps whatever a direct write gave it; a time before 1970 is refused at ingestion
    m = interaction_matrix_from_rows([rows], index, tracker)
    assert m.nnz == 6  # every interaction still counts
    assert tracker.matrix(*m.shape).toarray().tolist() == [[0, 1], [0, 1], [0, 0]]  # a float time reads as its int
