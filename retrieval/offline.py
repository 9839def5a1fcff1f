"""`tastebud eval`: the protocol (docs/design.md#evaluation-protocol) run on a fresh home, tastebud next to
Pop, ItemKNN and EASE on the same split, plus ablations and blend fitting."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tastebud.profiles.interest import InterestConfig, build_interest_profile
from tastebud.retrieval.evaluation import Split, TrainData, evaluate, evaluate_model, split_events, validation_split
from tastebud.retrieval.recommender import (
    PARTS, ItemSide, Recommender, UserContext, interaction_matrix, profile_text, single_threaded_blas,
)

ABLATIONS = {
    "long_term_only": {"semantic_short": 0.0},
    "short_term_only": {"semantic_long": 0.0, "tag_match": 0.0},
    "no_semantic": {"semantic_long": 0.0, "semantic_short": 0.0},
    "no_co_occurrence": {"co_occurrence": 0.0},
}


class TastebudScorer:
    """The production recommender behind the harness's Scorer protocol: profiles
    are built from the train events only, exactly as refresh builds them."""

    def __init__(self, blend: Mapping[str, float], interest: InterestConfig, embedder: Any = None,
                 name: str = "tastebud", item_vectors: np.ndarray | None = None):
        self.name = name
        self.blend = dict(blend)
        self.interest = interest
        self.embedder = embedder
        self.item_vectors = item_vectors
        self.recommender: Recommender | None = None

    def fit(self, train: TrainData) -> "TastebudScorer":
        catalog = train.catalog or {}
        if self.item_vectors is None and self.embedder is not None:
            texts = [catalog[i].text_for_embedding() if i in catalog else i for i in train.items]
            self.item_vectors = self.embedder.encode(texts)
        events = (ev for user in train.users for ev in train.events[user])
        side = ItemSide.build(train.items, catalog, interaction_matrix(events, train.item_index), self.item_vectors)
        self.recommender = Recommender(side, self.blend)
        self.profiles = {u: build_interest_profile(u, evs, catalog, self.interest).computed() for u, evs in train.events.items()}
        self.vectors: dict[str, dict[str, np.ndarray]] = {u: {} for u in train.users}
        if self.embedder is not None:
            users = list(train.users)
            texts = [profile_text(self.profiles[u], h) for u in users for h in ("long_term", "short_term")]
            vecs = self.embedder.encode(texts)
            for i, u in enumerate(users):
                self.vectors[u] = {"long": vecs[2 * i], "short": vecs[2 * i + 1]}
        self.train = train
        self._parts_cache: dict[str, dict[str, np.ndarray]] = {}
        return self

    def with_blend(self, blend: Mapping[str, float], name: str) -> "TastebudScorer":
        """A copy sharing the fitted state, for ablations and fitting."""
        clone = TastebudScorer(blend, self.interest, self.embedder, name, self.item_vectors)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("name", "blend", "recommender")})
        clone.recommender = Recommender(self.recommender.side, blend)
        return clone

    def _parts(self, user: str) -> dict[str, np.ndarray]:
        if user not in self._parts_cache:
            ctx = UserContext(user, self.train.events.get(user, []), self.profiles.get(user), self.vectors.get(user, {}))
            with single_threaded_blas():
                parts, _ = self.recommender.parts(ctx)
                mask, near = self.recommender.blocked(ctx)
            if near is not None:
                parts["dislike_similarity"] = near
            parts["_blocked"] = mask
            self._parts_cache[user] = parts
        return self._parts_cache[user]

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(user_ids), len(self.train.items)), dtype=np.float64)
        for row, user in enumerate(user_ids):
            parts = self._parts(user)
            total = self.recommender.total(parts)
            out[row] = np.where(parts["_blocked"], -np.inf, total)
        return out


def fit_blend(scorer: TastebudScorer, split: Split, log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Coordinate ascent over a small grid of each part's weight, on NDCG@10."""
    scorer.fit(split.train)
    best = dict(scorer.blend)
    best_ndcg = evaluate_model(scorer.with_blend(best, "fit"), split, fit=False)["ndcg@10"]
    grid = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
    for _round in range(2):
        improved = False
        for part in PARTS:
            for value in grid:
                trial = {**best, part: value}
                if all(v == 0 for v in trial.values()) or trial == best:
                    continue
                ndcg = evaluate_model(scorer.with_blend(trial, "fit"), split, fit=False)["ndcg@10"]
                if ndcg > best_ndcg + 1e-5:
                    best, best_ndcg, improved = trial, ndcg, True
                    if log:
                        log(f"fit: {part}={value} -> validation NDCG@10 {ndcg:.4f}")
        if not improved:
            break
    return best


def run_eval(
    directory: str | Path, settings: Any, embedder: Any = None, narratives: bool = False, fit: bool = False,
    baselines: bool = True, ablations: bool = True, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest into a fresh temporary home, split, and evaluate everything on that split."""
    from tastebud.profiles.ingest import Ingestor
    from tastebud.profiles.movielens import ingest_movielens
    from tastebud.profiles.store import EventStore
    from tastebud.retrieval.baselines import default_baselines

    say = log or (lambda _msg: None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tastebud-eval-") as tmp:
        store = EventStore(f"sqlite:///{Path(tmp) / 'eval.db'}")
        ingest_movielens(Ingestor(store), directory)
        split = split_events(store.all_events(), store.items_by_id())
        store.close()
    say(f"split: {split.stats}")
    interest = InterestConfig.from_settings(settings)
    blend = dict(settings.blend)
    result: dict[str, Any] = {"protocol": {**split.stats, "train_fraction": 0.8, "relevance_threshold": 4.0, "k": 10},
                              "narratives": "used" if narratives else "not used (computed profiles only)"}
    if fit:
        say("fitting blend weights on a validation split of the training data")
        blend = fit_blend(TastebudScorer(blend, interest, embedder, "fit"), validation_split(split), say)
        result["fitted_blend"] = blend
    scorer = TastebudScorer(blend, interest, embedder)
    result["tastebud"] = _clean(evaluate_model(scorer, split))
    say(f"tastebud: {result['tastebud']}")
    result["blend"] = blend
    if baselines:
        result["baselines"] = {name: _clean(m) for name, m in evaluate(default_baselines(), split, progress=lambda n, m: say(f"{n}: {m}")).items()}
    if ablations:
        result["ablations"] = {}
        for name, override in ABLATIONS.items():
            result["ablations"][name] = _clean(evaluate_model(scorer.with_blend({**blend, **override}, name), split, fit=False))
            say(f"{name}: {result['ablations'][name]}")
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _clean(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
