"""Pop, ItemKNN and EASE on matrices small enough to check by hand."""

import numpy as np
import pytest

from tastebud.profiles.events import Event
from tastebud.retrieval.baselines import EASE, ItemKNN, Pop, default_baselines
from tastebud.retrieval.evaluation import split_events


def _train(rows: dict[str, list[str]], catalog=("A", "B", "C", "D", "E")):
    """Each user's items become train interactions (plus one test rating, so the split keeps them all)."""
    events, n = [], 0
    for user, items in rows.items():
        for ts, item in enumerate(items + ["E"]):
            n += 1
            events.append(Event(f"e{n}", user, item, "rating", ts, 5.0))
    split = split_events(events, list(catalog))
    for user, items in rows.items():  # sanity: the 80% cut falls where the test expects
        assert [e.item_id for e in split.train.events[user]] == items
    return split.train


def test_pop_counts_train_users():
    train = _train({"u1": ["A", "B", "C", "D"], "u2": ["A", "B", "C", "D"], "u3": ["A", "C", "D", "B"]})
    pop = Pop().fit(train)
    # A, B, C, D each have 3 users; E (test only) has 0
    assert list(pop.score(["u1"])[0]) == [3, 3, 3, 3, 0]


def small_train():
    # 5 events per user, so the 80% cut keeps the first 4 in train: u1 {A,B,X1,Y1}, u2 {A,B,C,Y2},
    # u3 {C,D,X3,Y3}; X*/Y* are one user's each, so they co-occur with nothing of the others.
    events, n = [], 0
    hist = {"u1": ["A", "B", "X1", "Y1", "T"], "u2": ["A", "B", "C", "Y2", "T"], "u3": ["C", "D", "X3", "Y3", "T"]}
    for user, items in hist.items():
        for ts, item in enumerate(items):
            n += 1
            events.append(Event(f"e{n}", user, item, "rating", ts, 5.0))
    catalog = ["A", "B", "C", "D", "T", "X1", "X3", "Y1", "Y2", "Y3"]
    return split_events(events, catalog).train


def test_itemknn_cosine_by_hand():
    train = small_train()
    idx = train.item_index
    # item users: A {1,2}, B {1,2}, C {2,3}, D {3}
    # cos(A,C) = |{2}| / (sqrt2 * sqrt2) = 0.5, cos(B,C) = 0.5, cos(C,D) = 1/(sqrt2 * 1) = 0.707107
    knn = ItemKNN(neighbours=0).fit(train)  # keep every neighbour
    s = knn.score(["u1", "u3"])
    # u1 {A,B,X1,Y1} -> C = cos(A,C) + cos(B,C) + 0 + 0 = 1.0 ; D = 0 (no co-rater with A, B, X1, Y1)
    assert s[0, idx["C"]] == pytest.approx(1.0)
    assert s[0, idx["D"]] == pytest.approx(0.0)
    # u3 {C,D,X3,Y3} -> A = cos(C,A) = 0.5
    assert s[1, idx["A"]] == pytest.approx(0.5)
    # shrink 1: cos(A,C) = 1 / (2 + 1) -> u1's C = 2/3
    assert ItemKNN(neighbours=0, shrink=1.0).fit(train).score(["u1"])[0, idx["C"]] == pytest.approx(2 / 3)
    # one neighbour per source item: A keeps B (cos 1), B keeps A, so nothing reaches C from u1
    assert ItemKNN(neighbours=1).fit(train).score(["u1"])[0, idx["C"]] == pytest.approx(0.0)
    assert knn.neighbours_of("A", 1) == [("B", pytest.approx(1.0))]


def test_ease_matches_columnwise_ridge_regression():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 12)) < 0.3).astype(np.float64)
    x[:, 11] = 0.0  # an item nobody has: EASE skips it and scores it 0
    events, n = [], 0
    for u in range(x.shape[0]):
        for ts, item in enumerate(str(i) for i in np.flatnonzero(x[u])):
            n += 1
            events.append(Event(f"e{n}", str(u), item, "rating", ts, 5.0))
    train = split_events(events, [str(i) for i in range(12)]).train
    xt = train.binary.toarray()  # the 80% train part of x
    lam = 5.0
    ease = EASE(lam=lam).fit(train)
    scores = ease.score(train.users)
    # EASE column j = ridge regression of X_j on the other columns:
    # b_j = (X_-jᵀ X_-j + λI)^-1 X_-jᵀ X_j, and the score is X b_j
    active = [j for j in range(xt.shape[1]) if xt[:, j].any()]
    for j in active[:5]:
        others = [c for c in active if c != j]
        a = xt[:, others]
        b = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ xt[:, j])
        assert np.allclose(scores[:, j], a @ b, atol=1e-4)
    inactive = [j for j in range(xt.shape[1]) if not xt[:, j].any()]
    assert inactive and np.all(scores[:, inactive] == 0)
    assert np.allclose(np.diag(ease.b), 0.0)


def test_models_must_be_fitted_first():
    for model in default_baselines():
        with pytest.raises(RuntimeError):
            model.score(["u"])


@pytest.mark.slow
def test_reference_numbers_on_ml_latest_small(store, ml_small):
    """The reference (docs/design.md#reference-baselines): NDCG@10 Pop 0.0751, ItemKNN 0.0772, EASE(λ=500) 0.1023."""
    from tastebud.profiles.ingest import Ingestor
    from tastebud.profiles.movielens import ingest_movielens
    from tastebud.retrieval.evaluation import evaluate, split_store

    ingest_movielens(Ingestor(store), ml_small)
    split = split_store(store)
    assert split.stats["eval_users"] == 592
    got = {name: r["ndcg@10"] for name, r in evaluate(default_baselines(), split).items()}
    # tie-breaking among equally popular items alone moves Pop by about ±0.0005
    assert got["pop"] == pytest.approx(0.0751, abs=0.002)
    assert got["itemknn"] == pytest.approx(0.0772, abs=0.002)
    assert got["ease"] == pytest.approx(0.1023, abs=0.002)
