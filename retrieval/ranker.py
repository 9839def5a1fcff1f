"""A learned ranker (LightGBM, `rank_xendcg` objective) over the blend's candidates, with exact explanations.

The blend picks CANDIDATES items per request; the ranker re-orders them from FEATURES.
Explanations are LightGBM's per-item feature contributions (`pred_contrib`): with the
bias they sum exactly to the raw score, so the logged parts are the score itself, as
the blend's weighted parts are. lightgbm is imported only to train or to score.

Feature sources the item side lacks (EASE, recency-weighted popularity) live in
`RankerSources`, fitted on the same interactions as the model's features.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tastebud.errors import ModelError
from tastebud.profiles.interest import user_mean_rating
from tastebud.retrieval.blas import single_threaded_blas
from tastebud.retrieval.recommender import ItemSide, Recommender, UserContext, positive_weights
from tastebud.retrieval.ranker_files import (  # noqa: F401  (ranker_dir: re-exported for callers)
    FEATURES, META_FILE, MODEL_FILE, SOURCES_FILE, present, ranker_dir, read_meta,
)
from tastebud.retrieval.reclog import ScoredItem

BIAS = "ranker_bias"  # the model's expected raw score: logged so the parts sum to the score
CANDIDATES = 200  # blend top-N the ranker re-orders
SHORT_POSITIVES = 20  # the short co-occurrence horizon: the user's last N positive items
EASE_LAMBDA = 500.0
EASE_KEEP = 200  # EASE weights kept per target item: a sparse B a request can slice
RECENT_HALF_LIFE_DAYS = 180.0
# The two features read at the user's own time (their latest event), so a user who was
# active years ago is matched with what was new and popular then, not now.
YEAR_DAYS = 365.0
DAY_MS = 86_400_000.0
# negative feedback and non-interactions are not EASE history (as TrainData.binary)
NOT_HISTORY = frozenset({"dislike", "skip", "search", "tag"})


class StaleRanker(ModelError):
    """A saved model from a version with other features: the blend serves until it is retrained."""


def lightgbm() -> Any:
    """lightgbm without its scikit-learn wrappers: importing those costs a one-shot
    `tastebud recommend` ~2 s, and only Booster and train are used here."""
    import sys

    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        import lightgbm as lgb

        return lgb
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # lightgbm.compat: "not installed"
    try:
        import lightgbm as lgb
    finally:
        if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
            del sys.modules["sklearn"]
    return lgb


def history_cols(events: Iterable[Any], index: Mapping[str, int]) -> list[int]:
    """Catalog columns of the user's positive interactions (EASE's input row)."""
    cols = {index[e.item_id] for e in events
            if e.item_id is not None and e.type not in NOT_HISTORY and e.item_id in index}
    return sorted(cols)


def is_interaction(e: Any) -> bool:
    """An item event the offline protocol counts (tags and searches are not)."""
    return e.item_id is not None and e.type not in ("search", "tag")


def interaction_count(events: Iterable[Any]) -> int:
    return sum(1 for e in events if is_interaction(e))


def _prune_columns(b: np.ndarray, keep: int) -> sp.csr_matrix:
    """Keep, for every target column, its `keep` largest |weights| (rows = source item)."""
    n = b.shape[0]
    keep = min(keep, n)
    rows, cols, vals = [], [], []
    bt = b.T  # row j = weights into target j
    for start in range(0, n, 1024):
        block = bt[start:start + 1024]
        top = np.argpartition(-np.abs(block), keep - 1, axis=1)[:, :keep]
        rows.append(top.ravel())
        cols.append(np.repeat(np.arange(start, start + block.shape[0]), keep))
        vals.append(np.take_along_axis(block, top, axis=1).ravel())
    m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float32)
    m.eliminate_zeros()
    return m


@dataclass
class RankerSources:
    """EASE (sparse, source x target), recency-weighted popularity, and each item's
    interaction times (sorted, item by item: times[indptr[i]:indptr[i + 1]]) over `items`."""

    items: list[str]
    ease: sp.csr_matrix
    popularity_recent: np.ndarray
    times_indptr: np.ndarray
    times: np.ndarray
    sorted_times: np.ndarray = field(init=False, repr=False)  # every interaction time: the windows' totals

    def __post_init__(self) -> None:
        self.sorted_times = np.sort(self.times)

    @classmethod
    def fit(cls, items: Sequence[str], events: Iterable[Any], lam: float = EASE_LAMBDA, keep: int = EASE_KEEP,
            half_life_days: float = RECENT_HALF_LIFE_DAYS) -> "RankerSources":
        from tastebud.retrieval.baselines import EASE

        index = {iid: i for i, iid in enumerate(items)}
        users: dict[str, int] = {}
        rows, cols, ts = [], [], []
        for e in events:
            if e.item_id is None or e.type in NOT_HISTORY or e.item_id not in index:
                continue
            rows.append(users.setdefault(e.user_id, len(users)))
            cols.append(index[e.item_id])
            ts.append(e.ts)
        n = len(items)
        binary = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(max(1, len(users)), n))
        binary.data[:] = 1.0  # repeats summed: back to 1
        ease = EASE(lam).fit(SimpleNamespace(binary=binary))
        b = sp.csr_matrix((n, n), dtype=np.float32)
        if ease.cols.size:
            small = _prune_columns(ease.b, EASE_KEEP if keep is None else keep).tocoo()
            b = sp.csr_matrix((small.data, (ease.cols[small.row], ease.cols[small.col])), shape=(n, n), dtype=np.float32)
        recent = np.zeros(n, np.float64)
        if ts:
            t = np.asarray(ts, np.float64)
            age_days = (t.max() - t) / 86_400_000.0  # ms
            np.add.at(recent, np.asarray(cols), 0.5 ** (age_days / half_life_days))
        recent = np.log1p(recent)
        top = recent.max() if recent.size else 0.0
        indptr, times = _item_times(np.asarray(cols, np.int64), np.asarray(ts, np.float64), n)
        return cls(list(items), b, (recent / top if top > 0 else recent).astype(np.float32), indptr, times)

    def reindex(self, items: Sequence[str]) -> "RankerSources":
        """The same sources over another catalog order; items unknown to them get 0."""
        if list(items) == self.items:
            return self
        old = {iid: i for i, iid in enumerate(self.items)}
        pos = np.array([old.get(i, -1) for i in items], dtype=np.int64)
        known = np.flatnonzero(pos >= 0)
        move = sp.csr_matrix((np.ones(known.size, np.float32), (pos[known], known)), shape=(len(self.items), len(items)))
        pop = np.zeros(len(items), np.float32)
        pop[known] = self.popularity_recent[pos[known]]
        lengths = np.diff(self.times_indptr)
        seg = [self.times[self.times_indptr[p]:self.times_indptr[p + 1]] if p >= 0 else self.times[:0] for p in pos]
        indptr = np.concatenate([[0], np.cumsum([lengths[p] if p >= 0 else 0 for p in pos])]).astype(np.int64)
        times = np.concatenate(seg) if seg else np.zeros(0)
        return RankerSources(list(items), (move.T @ self.ease @ move).tocsr(), pop, indptr, times)

    def item_age_days(self, cand: np.ndarray, at_ms: float) -> np.ndarray:
        """Days from each item's first interaction to at_ms (0 if after it; NaN if never seen)."""
        if not self.times.size:
            return np.full(len(cand), np.nan)
        starts, ends = self.times_indptr[cand], self.times_indptr[cand + 1]
        first = np.where(ends > starts, self.times[np.minimum(starts, self.times.size - 1)], np.nan)
        return np.maximum(0.0, (at_ms - first) / DAY_MS)

    def interactions_before(self, cand: np.ndarray, at_ms: float, days: float = YEAR_DAYS) -> np.ndarray:
        """Each item's interactions in the `days` up to at_ms."""
        starts, ends = self.times_indptr[cand], self.times_indptr[cand + 1]
        upto = _search_segments(self.times, starts, ends, at_ms, right=True)
        return (upto - _search_segments(self.times, starts, ends, at_ms - days * DAY_MS, right=False)).astype(np.float64)

    def share_before(self, cand: np.ndarray, at_ms: float, days: float = YEAR_DAYS) -> np.ndarray:
        """interactions_before as a share of all interactions in that window: the same scale
        whether the sources hold a training cut of the events or all of them."""
        every = self.sorted_times
        total = np.searchsorted(every, at_ms, "right") - np.searchsorted(every, at_ms - days * DAY_MS, "left")
        return self.interactions_before(cand, at_ms, days) / total if total else np.zeros(len(cand))

    @property
    def end(self) -> float:
        return float(self.sorted_times[-1]) if self.times.size else float("nan")

    def save(self, path: Path) -> None:
        out = {"items": np.asarray(self.items, dtype=object), "popularity_recent": self.popularity_recent,
               "ease_data": self.ease.data, "ease_indices": self.ease.indices, "ease_indptr": self.ease.indptr,
               "ease_shape": np.asarray(self.ease.shape), "times_indptr": self.times_indptr, "times": self.times}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "RankerSources":
        with np.load(path, allow_pickle=True) as z:
            ease = sp.csr_matrix((z["ease_data"], z["ease_indices"], z["ease_indptr"]), shape=tuple(z["ease_shape"]))
            return cls([str(i) for i in z["items"]], ease, z["popularity_recent"], z["times_indptr"], z["times"])


def _search_segments(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, x: float, right: bool) -> np.ndarray:
    """np.searchsorted(values[s:e], x) for every (s, e) at once (each segment sorted): one
    bisection over all candidates, a few dozen vector steps instead of 2 calls per item."""
    lo, hi = starts.astype(np.int64), ends.astype(np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo - starts
        mid = (lo + hi) // 2
        probe = values[np.minimum(mid, max(0, values.size - 1))] if values.size else np.zeros(mid.size)
        go_right = open_ & ((probe <= x) if right else (probe < x))
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(open_ & ~go_right, mid, hi)


def _item_times(cols: np.ndarray, ts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ts, cols))
    indptr = np.zeros(n + 1, np.int64)
    np.add.at(indptr, cols + 1, 1)
    return np.cumsum(indptr), ts[order]


def features(side: ItemSide, sources: RankerSources, parts: Mapping[str, np.ndarray], events: Sequence[Any],
             cand: np.ndarray) -> np.ndarray:
    """len(cand) x len(FEATURES): the recommender's unweighted parts plus the ranker's own."""
    liked = positive_weights(events)
    ids = [i for i in liked if i in side.index][-SHORT_POSITIVES:]
    if ids:
        w = np.array([liked[i][0] for i in ids], np.float32)
        short = np.asarray(side.similarity[[side.index[i] for i in ids]][:, cand].T @ w).ravel()
        short = short / short.max() if short.max() > 0 else short
    else:
        short = np.zeros(len(cand), np.float32)
    hist = history_cols(events, side.index)
    ease = np.asarray(sources.ease[hist][:, cand].sum(axis=0)).ravel() if hist else np.zeros(len(cand))
    mean = user_mean_rating(events)
    n_events = interaction_count(events)
    at = user_time(events)
    if at is not None and sources.times.size:  # as far as the sources know: a model trained a month ago
        at = min(at, float(sources.end))     # reads today's user at its own last day, not in an empty window
    cols = {"co_occurrence_short": short, "popularity_recent": sources.popularity_recent[cand], "ease": ease,
            "user_events": np.full(len(cand), np.log1p(n_events)),
            "user_mean_rating": np.full(len(cand), np.nan if mean is None else mean),
            "item_age_days": sources.item_age_days(cand, at) if at is not None else np.full(len(cand), np.nan),
            "popularity_share_year": sources.share_before(cand, at) if at is not None else np.full(len(cand), np.nan)}
    out = np.empty((len(cand), len(FEATURES)), np.float64)
    for j, name in enumerate(FEATURES):
        out[:, j] = cols[name] if name in cols else parts[name][cand]
    return out


def user_time(events: Sequence[Any]) -> float | None:
    """The user's own "now": their latest item event (searches and tags not counted, as
    the offline protocol drops them), so a user back after years is read at that time."""
    times = [e.ts for e in events if is_interaction(e)]
    return float(max(times)) if times else None


def candidates(total: np.ndarray, n: int = CANDIDATES) -> np.ndarray:
    """The blend's top n finite scores, best first (ties by catalog order)."""
    finite = np.flatnonzero(np.isfinite(total))
    if finite.size > n:
        finite = finite[np.argpartition(-total[finite], n - 1)[:n]]
    return finite[np.lexsort((finite, -total[finite]))]


class RankerModel:
    """A LightGBM booster with the feature sources it was trained with."""

    def __init__(self, booster: Any, sources: RankerSources | None = None, meta: Mapping[str, Any] | None = None):
        self.booster, self.sources, self.meta = booster, sources, dict(meta or {})
        self.n_candidates = int(self.meta.get("candidates", CANDIDATES))
        # the shortest history among the users it learned from: shorter ones are outside
        # what it knows, and the blend (with its popularity backoff) serves them
        self.min_history = int(self.meta.get("min_history", 1))

    def serves(self, events: Sequence[Any]) -> bool:
        return interaction_count(events) >= max(1, self.min_history)

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=1), np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """rows x (features + bias); each row sums to the raw score."""
        return np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), np.float64)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.sources is not None:
            self.sources.save(folder / SOURCES_FILE)
        tmp = folder / f".{MODEL_FILE}.{os.getpid()}.tmp"
        tmp.write_text(self.booster.model_to_string())
        os.replace(tmp, folder / MODEL_FILE)
        tmp = folder / f".{META_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({**self.meta, "features": list(FEATURES)}, indent=2) + "\n")
        os.replace(tmp, folder / META_FILE)

    @classmethod
    def load(cls, folder: Path) -> "RankerModel":
        state, meta = read_meta(folder)
        if state != "in use":
            said = f"has an unreadable {META_FILE}" if state == "unreadable" else \
                "was trained on other features than this version uses"
            raise StaleRanker(f"the ranker in {folder} {said}; rerun `tastebud train-ranker` and restart "
                              "long-running servers (until then recommendations use the blend)")
        lgb = lightgbm()
        booster = lgb.Booster(model_str=(folder / MODEL_FILE).read_text())
        return cls(booster, RankerSources.load(folder / SOURCES_FILE), meta)

    @staticmethod
    def present(folder: Path) -> bool:
        return present(folder)


class RankedRecommender:
    """The blend's Recommender with the ranker re-ordering its candidates. Requests the
    ranker was not trained for (histories shorter than any it learned from, opted out,
    seeds, intent, diversity) go to the blend, unchanged."""

    def __init__(self, base: Recommender, model: RankerModel):
        self.base, self.model, self.side = base, model, base.side
        self.sources = model.sources.reindex(base.side.items)

    def recommend(self, ctx: UserContext, k: int = 10, category: str | None = None, exclude: Iterable[str] = (),
                  diversify: float | None = None) -> list[ScoredItem]:
        if ctx.opted_out or not self.model.serves(ctx.events) or ctx.seeds or ctx.intent_vector is not None or diversify:
            return self.base.recommend(ctx, k, category, exclude, diversify)
        with single_threaded_blas():
            return self._recommend(ctx, k, category, exclude)

    def _recommend(self, ctx: UserContext, k: int, category: str | None, exclude: Iterable[str]) -> list[ScoredItem]:
        base, side = self.base, self.side
        parts, why = base.parts(ctx)
        mask, _near = base.blocked(ctx, category, exclude)
        total = np.where(mask, -np.inf, base.total(parts))
        cand = candidates(total, self.model.n_candidates)
        if cand.size == 0:
            return []
        x = features(side, self.sources, parts, ctx.events, cand)
        raw = self.model.score(x)  # contributions cost ~20x a prediction: only for the k shown
        order = np.lexsort((np.arange(cand.size), -raw))[:k]
        chosen = cand[order]
        contrib = self.model.contributions(x[order])
        recent = recent_pulls(side, ctx.events, chosen)
        pulls = None
        if why["cols"]:
            pulls = side.similarity[why["cols"]][:, chosen].toarray() * why["weights"][:, None]
        out = []
        n_events = interaction_count(ctx.events)
        for rank, (row, col) in enumerate(zip(order, chosen), start=1):
            item = base._explain(int(col), rank, 0.0, parts, why, ctx, base.blend,
                                 None if pulls is None else pulls[:, rank - 1])
            item.parts = {name: float(contrib[rank - 1, j]) for j, name in enumerate(FEATURES)}
            item.parts[BIAS] = float(contrib[rank - 1, -1])
            item.score = float(sum(item.parts.values()))
            values = {name: (None if not np.isfinite(v) else round(float(v), 4)) for name, v in zip(FEATURES, x[row])}
            item.evidence.update({"ranker": {"features": values}, "ranker_user": {"events": n_events}})
            if recent is not None:
                item.evidence["co_occurrence_short"] = recent(rank - 1)
            out.append(item)
        return out


def recent_pulls(side: ItemSide, events: Sequence[Any], chosen: np.ndarray) -> Any:
    """What the short co-occurrence reason cites for the i-th chosen item: the recent items
    that pulled it in (weight x similarity, strongest first); None without recent positives."""
    liked = positive_weights(events)
    ids = [i for i in liked if i in side.index][-SHORT_POSITIVES:]
    if not ids:
        return None
    pulls = side.similarity[[side.index[i] for i in ids]][:, chosen].toarray() * \
        np.array([liked[i][0] for i in ids])[:, None]

    def cite(i: int) -> list[dict[str, Any]]:
        col = pulls[:, i]
        return [{"item_id": ids[j], "title": side.title(ids[j]), "type": liked[ids[j]][1].type,
                 "value": liked[ids[j]][1].value, "contribution": round(float(col[j]), 4)}
                for j in np.argsort(-col, kind="stable")[:3] if col[j] > 0]
    return cite
