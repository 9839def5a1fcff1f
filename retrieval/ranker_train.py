"""Training the ranker (retrieval/ranker.py) and scoring it under the offline protocol.

Training never sees a test part: features come from the validation-train part of
the training data (`validation_split`), labels from its validation part. At test
time the feature sources (item side, EASE, popularity) are refitted on the whole
training part and the trained model is applied unchanged.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tastebud.retrieval.evaluation import Split, TrainData, run_model, validation_split
from tastebud.retrieval.ranker import (
    CANDIDATES, FEATURES, RankerModel, RankerSources, candidates, features, interaction_count,
)
from tastebud.timefmt import iso_or_none

# Chosen on validation only (2-fold over validation users, NDCG@10 mean; blend 0.1209): lambdarank
# (31 leaves 0.106 one fold; 7 leaves, 200 in a leaf 0.114) overfits the ~3k positives; rank_xendcg,
# 7 leaves, 200 in a leaf, learning rate 0.03, 300 trees 0.123.
PARAMS = {"objective": "rank_xendcg", "learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 200,
          "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
          "verbose": -1, "num_threads": 2, "seed": 0, "deterministic": True, "force_row_wise": True}
ROUNDS = 300
VALIDATION_RULE = ("validation_split of the training part (the warm protocol applied to the train events only: "
                   "per user the last 20% of train by time are validation); features from the validation-train "
                   "part, label 1 = candidate among the user's relevant validation items; users without a relevant "
                   "candidate skipped; plus the same one cut earlier (validation_split of the validation-train "
                   "part); the test part is never read. Test-time features are refitted on the full training part.")


def _events(train: TrainData):
    return (ev for u in train.users for ev in train.events[u])


class RankerScorer:
    """The harness's Scorer: blend candidates (from a fitted TastebudScorer) re-ordered by the model."""

    def __init__(self, base: Any, model: RankerModel | None = None, name: str = "ranker", n: int = CANDIDATES):
        self.base, self.model, self.name, self.n = base, model, name, n
        self.sources: RankerSources | None = None

    def fit(self, train: TrainData) -> "RankerScorer":
        """Refit the feature sources (the base scorer is fitted by its owner, on the same train)."""
        self.sources = RankerSources.fit(train.items, _events(train))
        return self

    def user_rows(self, user: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidate columns, their features, the blend total over the catalog)."""
        base = self.base
        parts = base._parts(user)
        total = np.where(parts["_blocked"], -np.inf, base.recommender.total(parts))
        cand = candidates(total, self.n)
        x = features(base.recommender.side, self.sources, parts, base.train.events.get(user, []), cand)
        return cand, x, total

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        out = np.full((len(user_ids), len(self.base.train.items)), -np.inf)
        for row, user in enumerate(user_ids):
            if not self.model.serves(self.base.train.events.get(user, [])):  # as served: the blend, backoff and all
                out[row] = self.base.score([user])[0]
                continue
            cand, x, total = self.user_rows(user)
            out[row] = total - 1e6  # below every candidate, in blend order
            if cand.size:
                out[row, cand] = self.model.score(x)
        return out


def training_rows(scorer: RankerScorer, relevant: Mapping[str, Sequence[str]], users: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, Any]]:
    """(X, labels, group sizes, stats) for users with a relevant candidate."""
    xs, ys, groups = [], [], []
    index = scorer.base.train.item_index
    recall, histories = [], []
    for user in users:
        rel = {index[i] for i in relevant.get(user, ()) if i in index}
        cand, x, _ = scorer.user_rows(user)
        y = np.fromiter((c in rel for c in cand), dtype=np.float64, count=cand.size)
        recall.append(y.sum() / max(1, len(rel)))
        if y.sum() == 0:
            continue
        histories.append(interaction_count(scorer.base.train.events.get(user, [])))
        xs.append(x)
        ys.append(y)
        groups.append(cand.size)
    stats = {"users": len(users), "users_with_positive_candidate": len(groups),
             "rows": int(sum(groups)), "positives": int(sum(y.sum() for y in ys)),
             "candidate_recall": round(float(np.mean(recall)), 4) if recall else 0.0,
             "min_history": min(histories, default=0)}
    x = np.vstack(xs) if xs else np.zeros((0, len(FEATURES)))
    return x, (np.concatenate(ys) if ys else np.zeros(0)), groups, stats


def train_booster(x: np.ndarray, y: np.ndarray, groups: list[int], rounds: int = ROUNDS,
                  params: Mapping[str, Any] | None = None) -> Any:
    from tastebud.retrieval.ranker import lightgbm

    lgb = lightgbm()
    data = lgb.Dataset(x, y, group=groups, feature_name=list(FEATURES), free_raw_data=False)
    return lgb.train({**PARAMS, **(params or {})}, data, num_boost_round=rounds)


def _cut_rows(vsplit: Split, make_base: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, Any]]:
    """Rows from one earlier cut: the validation split of `vsplit`'s own training part."""
    earlier = validation_split(Split(vsplit.train, {}, {}, vsplit.config))
    scorer = RankerScorer(make_base().fit(earlier.train)).fit(earlier.train)
    return training_rows(scorer, earlier.relevant, earlier.eval_users)


def fit_on_validation(split: Split, make_base: Callable[[], Any], say: Callable[[str], None] = lambda _m: None,
                      rounds: int = ROUNDS, params: Mapping[str, Any] | None = None, check: bool = True,
                      earlier_cut: bool = True) -> tuple[RankerModel, dict[str, Any]]:
    """Train on the validation split of `split`'s training part (plus, earlier_cut, the same
    protocol one cut earlier: twice the positives; validation NDCG@10 0.123 -> 0.125). check:
    first train on half of the validation users and report NDCG@10 of ranker and blend on the other half."""
    from tastebud.retrieval.evaluation import Split as _Split

    t0 = time.perf_counter()
    vsplit = validation_split(split)
    base = make_base().fit(vsplit.train)
    scorer = RankerScorer(base).fit(vsplit.train)
    users = vsplit.eval_users
    info: dict[str, Any] = {"rule": VALIDATION_RULE, "validation_stats": vsplit.stats, "rounds": rounds,
                            "params": {**PARAMS, **(params or {})}, "candidates": scorer.n, "features": list(FEATURES)}
    g: list[int] = []
    extra = _cut_rows(vsplit, make_base) if earlier_cut else None
    if extra is not None:
        info["earlier_cut"] = extra[3]
        say(f"ranker rows from the earlier cut: {extra[3]}")
    if check and len(users) >= 4:
        rng = np.random.default_rng(0)
        held = set(rng.choice(len(users), size=len(users) // 2, replace=False).tolist())
        fit_users = [u for i, u in enumerate(users) if i not in held]
        check_users = [u for i, u in enumerate(users) if i in held]
        x, y, g, _ = training_rows(scorer, vsplit.relevant, fit_users)
        if extra is not None and g:
            x, y, g = np.vstack([x, extra[0]]), np.concatenate([y, extra[1]]), g + extra[2]
    if check and len(users) >= 4 and g:
        scorer.model = RankerModel(train_booster(x, y, g, rounds, params))
        half = _Split(vsplit.train, vsplit.test_events, {u: vsplit.relevant[u] for u in check_users}, vsplit.config)
        r = run_model(scorer, half, fit=False).summary()
        b = run_model(base, half, fit=False).summary()
        info["validation_check"] = {"fit_users": len(fit_users), "check_users": len(check_users),
                                    "ranker_ndcg@10": round(r["ndcg@10"], 4), "blend_ndcg@10": round(b["ndcg@10"], 4)}
        say(f"ranker validation check: {info['validation_check']}")
    x, y, g, stats = training_rows(scorer, vsplit.relevant, users)
    info["training"] = stats
    say(f"ranker training rows: {stats}")
    if not g:
        raise ValueError(f"no validation user has a relevant item among the blend's candidates ({stats})")
    if extra is not None and extra[2]:
        x, y, g = np.vstack([x, extra[0]]), np.concatenate([y, extra[1]]), g + extra[2]
    booster = train_booster(x, y, g, rounds, params)
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    shortest = min([stats["min_history"]] + ([extra[3]["min_history"]] if extra is not None and extra[2] else []))
    info["min_history"] = shortest
    return RankerModel(booster, None, {"candidates": scorer.n, "rounds": rounds, "min_history": shortest}), info


def ranker_run(split: Split, base: Any, make_base: Callable[[], Any], say: Callable[[str], None] = lambda _m: None):
    """(ModelRun of the ranker on `split`, how it was trained). `base`: the blend
    scorer already fitted on split.train (its candidates and parts are reused)."""
    model, info = fit_on_validation(split, make_base, say)
    scorer = RankerScorer(base, model).fit(split.train)
    return run_model(scorer, split, fit=False), info


def train_for_store(store: Any, make_base: Callable[[], Any], semantic: bool,
                    say: Callable[[str], None] = lambda _m: None) -> tuple[RankerModel, dict[str, Any]]:
    """The production model: every stored event is the training part (features from each
    user's first 80%, labels from the rest, by `validation_split`); the sources it serves
    with are refitted on all events. make_base: a fresh blend scorer (retrieval/offline.py's
    TastebudScorer; passed in, so this module does not import the one that imports it)."""
    from tastebud.retrieval.evaluation import EvalConfig, split_events, train_data_from

    catalog = store.items_by_id()
    whole = split_events(store.all_events(), catalog, EvalConfig())
    events = {u: whole.train.events[u] + whole.test_events[u] for u in whole.train.users}
    everything = Split(train_data_from(events, whole.train.items, catalog), {}, {}, whole.config)
    model, info = fit_on_validation(everything, make_base, say, check=False)
    model.sources = RankerSources.fit(sorted(catalog), store.all_events())
    model.meta.update({"trained_at": iso_or_none(int(time.time() * 1000)),
                       "trained_on_events": int(everything.stats.get("train_interactions") or
                                                sum(len(v) for v in events.values())),
                       "training": info["training"], "semantic": semantic})
    return model, info
