"""Bootstrap intervals over users (retrieval/bootstrap.py) on hand-computed cases."""

import numpy as np
import pytest

from tastebud.retrieval import bootstrap as bp


def test_plan_draws_n_users_per_resample_and_is_seeded():
    p = bp.plan(5, resamples=50, seed=7)
    assert p.counts.shape == (50, 5)
    assert (p.counts.sum(axis=1) == 5).all()  # each resample draws exactly n users
    assert np.array_equal(p.counts, bp.plan(5, resamples=50, seed=7).counts)
    assert not np.array_equal(p.counts, bp.plan(5, resamples=50, seed=8).counts)


def test_resample_mean_by_hand():
    # resample 0 draws users (0, 0, 2), resample 1 draws (1, 2, 2)
    p = bp.Plan(np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]), seed=0)
    values = np.array([1.0, 4.0, 10.0])
    # (1 + 1 + 10) / 3 = 4, (4 + 10 + 10) / 3 = 8
    assert bp.resample_means(values, p).tolist() == pytest.approx([4.0, 8.0])
    # percentile interval of {4, 8} at 95%: linear interpolation, 2.5% -> 4.1, 97.5% -> 7.9
    ci = bp.interval(values, p)
    assert ci["mean"] == pytest.approx(5.0)
    assert (ci["low"], ci["high"]) == pytest.approx((4.1, 7.9))


def test_constant_metric_has_a_degenerate_interval():
    p = bp.plan(40, resamples=300, seed=1)
    ci = bp.interval(np.full(40, 0.25), p)
    assert ci == pytest.approx({"mean": 0.25, "low": 0.25, "high": 0.25})


def test_resample_means_converge_to_the_mean_and_interval_shrinks_with_users():
    rng = np.random.default_rng(3)
    values = rng.random(200)
    p = bp.plan(200, resamples=4000, seed=2)
    means = bp.resample_means(values, p)
    assert means.mean() == pytest.approx(values.mean(), abs=0.002)
    ci = bp.interval(values, p)
    assert ci["low"] < values.mean() < ci["high"]
    # about ±1.96·sd/√n for a mean
    half = (ci["high"] - ci["low"]) / 2
    assert half == pytest.approx(1.96 * values.std() / np.sqrt(200), rel=0.1)
    big = rng.random(2000)
    ci_big = bp.interval(big, bp.plan(2000, resamples=1000, seed=2))
    assert ci_big["high"] - ci_big["low"] < (ci["high"] - ci["low"]) / 2


def test_paired_difference_uses_the_same_users():
    rng = np.random.default_rng(5)
    a = rng.random(300)
    p = bp.plan(300, resamples=1000, seed=4)
    # b = a - 0.002 for every user: a tiny but perfectly consistent gain -> a degenerate interval at 0.002
    d = bp.paired(a, a - 0.002, p)
    assert d["mean"] == pytest.approx(0.002) and d["low"] == pytest.approx(0.002) and d["wins"] == 1
    # an unpaired-looking 0.002 difference between noisy models is not a win
    b = rng.random(300)
    b = b - b.mean() + a.mean() - 0.002
    d = bp.paired(a, b, p)
    assert d["mean"] == pytest.approx(0.002) and d["low"] < 0 < d["high"] and d["wins"] == 0
    assert bp.paired(b, a, p)["wins"] == 0


def test_metric_intervals_cover_every_metric_but_coverage():
    p = bp.Plan(np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]), seed=0)
    out = bp.metric_intervals({"ndcg": np.array([1.0, 4.0, 10.0]), "hr": np.ones(3)}, p, k=10)
    assert out == {"ndcg@10": [4.1, 7.9], "hr@10": [1.0, 1.0], "coverage@10": None}


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError):
        bp.plan(3, resamples=0)
    with pytest.raises(ValueError):
        bp.interval(np.ones(4), bp.plan(3, resamples=5))


def test_pooled_difference_draws_each_user_with_all_their_rows():
    # user a has two rows (in two samples), b one, c three
    diffs = {"a": [1.0, 3.0], "b": [10.0], "c": [0.0, 0.0, 6.0]}
    # resample 0 draws (a, a, c): (4 + 4 + 6) / (2 + 2 + 3) = 2; resample 1 draws (b, c, c): (10 + 6 + 6) / (1 + 3 + 3) = 22/7
    p = bp.Plan(np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]), seed=0)
    got = bp.pooled_paired(diffs, p)
    assert got["mean"] == pytest.approx(20.0 / 6.0)  # every row once: (1 + 3 + 10 + 0 + 0 + 6) / 6
    lo, hi = 2.0 + 0.025 * (22 / 7 - 2.0), 2.0 + 0.975 * (22 / 7 - 2.0)
    assert (got["low"], got["high"]) == pytest.approx((lo, hi)) and got["wins"] == 1
    with pytest.raises(ValueError):
        bp.pooled_paired({"a": [1.0]}, p)
