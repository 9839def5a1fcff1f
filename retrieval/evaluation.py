"""Offline evaluation: the per-user temporal split of docs/design.md#evaluation-protocol and a harness
that runs any number of scorers on the same split.

Protocol (docs/design.md#evaluation-protocol), as implemented here:

1. Interactions are the user's item events of the types in
   `EvalConfig.split_types`. Default: everything with an item except `tag`
   and `search`; on MovieLens that is the ratings only. Tags are left out on
   purpose: including them (ratings+tags in one stream) moves Pop/ItemKNN/EASE
   away from the reference numbers (see bench/baselines.py --split-types).
2. Per user, interactions are sorted by timestamp; ties keep ingestion order
   (the store's event seq: `store.all_events()` yields in seq order and the
   sort is stable).
3. The first floor(0.8 * n) are train, the rest test.
4. A test item is relevant when it was rated >= 4.0 (rating events) or, for
   implicit events, when the event is positive (any type but dislike, skip and
   search). Test items the user already has in train are dropped from the
   relevant set (they are excluded from ranking, so they could never be hit).
5. Users with no relevant test item are skipped.
6. Each evaluated user gets a ranking of every catalog item they did not
   interact with in train (any type, negatives included); ties are broken by
   catalog order (the stable sort), so results are deterministic.

What a model learns from: `TrainData`. `binary` has a 1 for every train
interaction that is not negative feedback (all ratings count, whatever their
value; dislike/skip do not); `ratings` holds the latest rating value (0 where
there is none); `events` has every train event per user for models, like the
tastebud recommender, that build profiles from the raw stream.

Scorers plug in through one of two small protocols:

- `Scorer`: `fit(train)` then `score(user_ids) -> (len(user_ids), n_items)`
  array whose columns follow `train.items`. The harness masks train items.
- `Ranker`: `fit(train)` then `rank(user_id, k, exclude) -> list[item_id]`
  for models that produce lists rather than dense scores.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import scipy.sparse as sp

from tastebud.retrieval.metrics import METRIC_NAMES, coverage_from_topk, metrics_from_hits

if TYPE_CHECKING:
    from tastebud.profiles.events import Event, Item
    from tastebud.profiles.store import EventStore

NEGATIVE_TYPES = frozenset({"dislike", "skip"})
NON_INTERACTION_TYPES = frozenset({"search", "tag"})


@dataclass(frozen=True)
class EvalConfig:
    train_fraction: float = 0.8
    relevance_threshold: float = 4.0
    # None = every event type with an item except NON_INTERACTION_TYPES.
    split_types: frozenset[str] | None = None
    k: int = 10

    def takes(self, type_: str) -> bool:
        if self.split_types is not None:
            return type_ in self.split_types
        return type_ not in NON_INTERACTION_TYPES


@dataclass
class TrainData:
    """What a model may see: the catalog and the train part of every user."""

    items: list[str]
    item_index: dict[str, int]
    users: list[str]
    user_index: dict[str, int]
    events: dict[str, list["Event"]]
    binary: sp.csr_matrix  # users × items, float32 1.0 for a positive train interaction
    ratings: sp.csr_matrix  # users × items, float32 latest rating value
    seen: sp.csr_matrix  # users × items, bool: every train interaction (the ranking excludes these)
    catalog: Mapping[str, "Item"] | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    def rows(self, user_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.user_index[u] for u in user_ids), dtype=np.int64, count=len(user_ids))


@dataclass
class Split:
    train: TrainData
    test_events: dict[str, list["Event"]]
    relevant: dict[str, list[str]]  # evaluated users only, in test order
    config: EvalConfig
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def eval_users(self) -> list[str]:
        return list(self.relevant)


@runtime_checkable
class Scorer(Protocol):
    name: str

    def fit(self, train: TrainData) -> Any: ...

    def score(self, user_ids: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class Ranker(Protocol):
    name: str

    def fit(self, train: TrainData) -> Any: ...

    def rank(self, user_id: str, k: int, exclude: set[str]) -> list[str]: ...


# ---- split ------------------------------------------------------------------
def _natural_key(item_id: str) -> tuple[int, int, str]:
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


def is_relevant(event: "Event", threshold: float) -> bool:
    if event.type == "rating":
        return event.value is not None and event.value >= threshold
    return event.type not in NEGATIVE_TYPES and event.type != "search"


def split_events(
    events: Iterable["Event"],
    catalog: Mapping[str, "Item"] | Sequence[str],
    config: EvalConfig | None = None,
) -> Split:
    """Split events (in ingestion order) per user by time; see the module doc."""
    config = config or EvalConfig()
    if not 0.0 < config.train_fraction < 1.0:
        raise ValueError("train_fraction must be in (0, 1)")
    by_user: dict[str, list["Event"]] = defaultdict(list)
    for ev in events:
        if ev.item_id is not None and config.takes(ev.type):
            by_user[ev.user_id].append(ev)

    catalog_items = dict(catalog) if isinstance(catalog, Mapping) else None
    item_ids = set(catalog_items if catalog_items is not None else catalog)
    for evs in by_user.values():
        item_ids.update(e.item_id for e in evs)
    items = sorted(item_ids, key=_natural_key)
    users = sorted(by_user, key=_natural_key)

    train_events: dict[str, list["Event"]] = {}
    test_events: dict[str, list["Event"]] = {}
    relevant: dict[str, list[str]] = {}
    for user in users:
        evs = sorted(by_user[user], key=lambda e: e.ts)  # stable: ties keep seq order
        cut = math.floor(config.train_fraction * len(evs))
        train, test = evs[:cut], evs[cut:]
        train_events[user], test_events[user] = train, test
        train_ids = {ev.item_id for ev in train}
        rel: list[str] = []
        for ev in test:
            if is_relevant(ev, config.relevance_threshold) and ev.item_id not in train_ids and ev.item_id not in rel:
                rel.append(ev.item_id)
        if rel:
            relevant[user] = rel

    train_data = train_data_from(train_events, items, catalog_items)
    stats = {
        "users": len(users),
        "eval_users": len(relevant),
        "items": len(items),
        "train_interactions": sum(len(v) for v in train_events.values()),
        "test_interactions": sum(len(v) for v in test_events.values()),
        "relevant_test_items": sum(len(v) for v in relevant.values()),
    }
    return Split(train=train_data, test_events=test_events, relevant=relevant, config=config, stats=stats)


def train_data_from(train_events: Mapping[str, list["Event"]], items: Sequence[str],
                    catalog: Mapping[str, "Item"] | None = None) -> TrainData:
    """The matrices of TrainData from each user's train events (users in the given order;
    items are the catalog columns, in order)."""
    item_index = {iid: i for i, iid in enumerate(items)}
    users = list(train_events)
    user_index = {u: i for i, u in enumerate(users)}
    b_rows, b_cols, r_rows, r_cols, r_vals, s_rows, s_cols = [], [], [], [], [], [], []
    for user in users:
        row = user_index[user]
        latest_rating: dict[int, float] = {}
        seen: set[int] = set()
        positive: set[int] = set()
        for ev in train_events[user]:
            if ev.item_id is None:
                continue  # a stated preference: no column
            col = item_index[ev.item_id]
            seen.add(col)
            if ev.type not in NEGATIVE_TYPES:
                positive.add(col)
            if ev.type == "rating" and ev.value is not None:
                latest_rating[col] = ev.value
        b_rows += [row] * len(positive)
        b_cols += sorted(positive)
        s_rows += [row] * len(seen)
        s_cols += sorted(seen)
        r_rows += [row] * len(latest_rating)
        r_cols += list(latest_rating)
        r_vals += list(latest_rating.values())
    shape = (len(users), len(items))

    def csr(rows, cols, vals, dtype) -> sp.csr_matrix:
        m = sp.csr_matrix((np.asarray(vals, dtype=dtype), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))), shape=shape)
        m.sort_indices()
        return m

    return TrainData(
        items=list(items),
        item_index=item_index,
        users=users,
        user_index=user_index,
        events=dict(train_events),
        binary=csr(b_rows, b_cols, np.ones(len(b_rows)), np.float32),
        ratings=csr(r_rows, r_cols, r_vals, np.float32),
        seen=csr(s_rows, s_cols, np.ones(len(s_rows)), bool),
        catalog=catalog,
    )


def split_store(store: "EventStore", config: EvalConfig | None = None) -> Split:
    """The protocol over everything in an event store (catalog = all its items)."""
    return split_events(store.all_events(), store.items_by_id(), config)


def validation_split(split: Split) -> Split:
    """The same protocol applied to the train part only (for fitting blend weights
    without touching the test part): per user, the last 20% of train become validation."""
    events = [ev for user in split.train.users for ev in split.train.events[user]]
    catalog = split.train.catalog if split.train.catalog is not None else split.train.items
    return split_events(events, catalog, split.config)


# ---- harness ------------------------------------------------------------------
def _topk_from_scores(scores: np.ndarray, seen_rows: sp.csr_matrix, k: int) -> np.ndarray:
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.shape[1] != seen_rows.shape[1]:
        raise ValueError(f"scorer returned {scores.shape[1]} columns for {seen_rows.shape[1]} catalog items")
    scores[~np.isfinite(scores)] = -np.inf
    coo = seen_rows.tocoo()
    scores[coo.row, coo.col] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    # fewer than k rankable items: mark the empty slots with -1
    blocked = np.take_along_axis(scores, order, axis=1) == -np.inf
    order[blocked] = -1
    return order


def topk_for(model: Scorer | Ranker, train: TrainData, user_ids: Sequence[str], k: int, batch_size: int = 256) -> np.ndarray:
    """(len(user_ids) × k) catalog indices, best first, train items excluded; -1 = empty slot."""
    out = np.full((len(user_ids), k), -1, dtype=np.int64)
    if hasattr(model, "score"):
        for start in range(0, len(user_ids), batch_size):
            chunk = list(user_ids[start : start + batch_size])
            scores = np.asarray(model.score(chunk))
            if scores.shape[0] != len(chunk):
                raise ValueError(f"{model.name}: score() returned {scores.shape[0]} rows for {len(chunk)} users")
            out[start : start + len(chunk)] = _topk_from_scores(scores, train.seen[train.rows(chunk)], k)
        return out
    for i, user in enumerate(user_ids):
        row = train.seen[train.user_index[user]]
        exclude = {train.items[c] for c in row.indices}
        ranked = [iid for iid in model.rank(user, k, exclude) if iid not in exclude][:k]
        cols = [train.item_index[iid] for iid in ranked if iid in train.item_index]
        out[i, : len(cols)] = cols
    return out


@dataclass
class ModelRun:
    """One model on one split: per-user metrics (in `users` order) and the top-k lists."""

    name: str
    users: list[str]
    per_user: dict[str, np.ndarray]
    topk: np.ndarray
    n_items: int
    k: int
    fit_seconds: float
    rank_seconds: float

    def summary(self) -> dict[str, Any]:
        k = self.k
        result: dict[str, Any] = {f"{name}@{k}": float(self.per_user[name].mean()) if self.users else 0.0 for name in METRIC_NAMES}
        result[f"coverage@{k}"] = coverage_from_topk(self.topk, self.n_items)
        result["users"] = len(self.users)
        result["fit_seconds"] = round(self.fit_seconds, 3)
        result["rank_seconds"] = round(self.rank_seconds, 3)
        return result


def run_model(model: Scorer | Ranker, split: Split, k: int | None = None, fit: bool = True) -> ModelRun:
    """Fit (unless told not to) and rank for every evaluated user; keep the per-user metrics."""
    k = k or split.config.k
    train = split.train
    t0 = time.perf_counter()
    if fit:
        model.fit(train)
    t1 = time.perf_counter()
    users = split.eval_users
    topk = topk_for(model, train, users, k)
    t2 = time.perf_counter()
    relevant_cols = [{train.item_index[i] for i in split.relevant[u]} for u in users]
    hits = np.array([[c in rel for c in row] for row, rel in zip(topk, relevant_cols)], dtype=bool).reshape(len(users), k)
    per_user = metrics_from_hits(hits, np.array([len(r) for r in relevant_cols]))
    return ModelRun(model.name, list(users), per_user, topk, train.n_items, k, t1 - t0, t2 - t1)


def evaluate_model(model: Scorer | Ranker, split: Split, k: int | None = None, fit: bool = True) -> dict[str, Any]:
    """Fit (unless told not to), rank for every evaluated user, return the metric dict."""
    return run_model(model, split, k, fit).summary()


def evaluate(
    models: Sequence[Scorer | Ranker],
    split: Split,
    k: int | None = None,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every model on the same split: {model.name: metric dict}."""
    results: dict[str, dict[str, Any]] = {}
    for model in models:
        if model.name in results:
            raise ValueError(f"two models are named {model.name!r}")
        results[model.name] = evaluate_model(model, split, k)
        if progress:
            progress(model.name, results[model.name])
    return results
