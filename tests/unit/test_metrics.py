"""Metrics against values computed by hand (arithmetic in the comments).

Discounts: 1/log2(i+1) for 1-based position i:
  pos1 = 1/log2(2) = 1, pos2 = 1/log2(3) = 0.630930, pos3 = 1/log2(4) = 0.5,
  pos4 = 1/log2(5) = 0.430677.
"""

import numpy as np
import pytest

from tastebud.retrieval.metrics import (
    catalog_coverage,
    coverage_from_topk,
    hit_rate_at_k,
    metrics_from_hits,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)

RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "d", "x"}  # x is never ranked


def test_one_hit_in_top3():
    # top-3 = a b c -> hits at position 2 only
    # Recall@3 = 1 hit / 3 relevant = 0.333333
    assert recall_at_k(RANKED, RELEVANT, 3) == pytest.approx(1 / 3)
    # HR@3 = 1 (at least one hit)
    assert hit_rate_at_k(RANKED, RELEVANT, 3) == 1.0
    # MRR@3 = 1 / position of first hit = 1/2
    assert mrr_at_k(RANKED, RELEVANT, 3) == pytest.approx(0.5)
    # DCG@3 = pos2 = 0.630930; IDCG@3 over min(3, 3) = 3 positions = 1 + 0.630930 + 0.5 = 2.130930
    # NDCG@3 = 0.630930 / 2.130930 = 0.296082
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx(0.296082, abs=1e-6)


def test_two_hits_in_top5():
    # top-5 hits at positions 2 and 4
    # Recall@5 = 2/3 = 0.666667; MRR@5 = 1/2
    assert recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert mrr_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.5)
    # DCG@5 = pos2 + pos4 = 0.630930 + 0.430677 = 1.061606; IDCG@5 over min(3, 5) = 3 -> 2.130930
    # NDCG@5 = 1.061606 / 2.130930 = 0.498189
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.498189, abs=1e-6)


def test_more_relevant_than_k_caps_the_ideal_dcg():
    # R = 6 items, k = 3, ranked = a x b -> hits at positions 1 and 3
    relevant = {"a", "b", "c", "d", "e", "f"}
    ranked = ["a", "x", "b", "c"]
    # Recall@3 = 2/6 (denominator is |R|, not k)
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(2 / 6)
    # DCG@3 = pos1 + pos3 = 1 + 0.5 = 1.5; IDCG over min(6, 3) = 3 -> 2.130930; NDCG = 0.703918
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(0.703918, abs=1e-6)
    # first hit at position 1 -> MRR = 1
    assert mrr_at_k(ranked, relevant, 3) == 1.0


def test_perfect_and_empty_rankings():
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 2) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "b", "c"], {"a"}, 10) == pytest.approx(1.0)  # IDCG over min(1, 10) = 1 position
    for fn in (recall_at_k, hit_rate_at_k, mrr_at_k, ndcg_at_k):
        assert fn(["a", "b"], {"z"}, 2) == 0.0  # no hit
        assert fn(["a", "b"], set(), 2) == 0.0  # no relevant item (the harness skips such users)


def test_hit_beyond_k_does_not_count():
    # the only relevant item is at position 4, k = 3
    assert hit_rate_at_k(RANKED, {"d"}, 3) == 0.0
    assert mrr_at_k(RANKED, {"d"}, 3) == 0.0
    assert mrr_at_k(RANKED, {"d"}, 4) == pytest.approx(0.25)


def test_bad_k():
    with pytest.raises(ValueError):
        recall_at_k(RANKED, RELEVANT, 0)


def test_catalog_coverage():
    # lists {a, b} and {b, c}: 3 distinct items of a catalog of 10 -> 0.3
    assert catalog_coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    # with k = 1 only a and b count -> 0.2
    assert catalog_coverage([["a", "b"], ["b", "c"]], 10, k=1) == pytest.approx(0.2)
    # index form: -1 marks an empty slot; {0, 2, 5} of 8 items -> 0.375
    assert coverage_from_topk(np.array([[0, 2], [5, -1]]), 8) == pytest.approx(0.375)


def test_vectorised_matches_scalar():
    rankings = [
        (RANKED, RELEVANT),
        (["a", "x", "b", "c"], {"a", "b", "c", "d", "e", "f"}),
        (["q", "r", "s"], {"z"}),
        (["a", "b", "c"], {"c"}),
    ]
    k = 3
    hits = np.array([[item in rel for item in ranked[:k]] for ranked, rel in rankings])
    got = metrics_from_hits(hits, np.array([len(rel) for _, rel in rankings]))
    for u, (ranked, rel) in enumerate(rankings):
        assert got["recall"][u] == pytest.approx(recall_at_k(ranked, rel, k))
        assert got["ndcg"][u] == pytest.approx(ndcg_at_k(ranked, rel, k))
        assert got["hr"][u] == pytest.approx(hit_rate_at_k(ranked, rel, k))
        assert got["mrr"][u] == pytest.approx(mrr_at_k(ranked, rel, k))
    # last user: hit at position 3 -> MRR 1/3; NDCG = 0.5 / 1 = 0.5 (IDCG over min(1, 3) = 1)
    assert got["mrr"][3] == pytest.approx(1 / 3)
    assert got["ndcg"][3] == pytest.approx(0.5)
