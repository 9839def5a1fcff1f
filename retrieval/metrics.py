"""Top-k ranking metrics with binary relevance.

Two forms of each metric: a scalar one over one ranked list (readable, used in
tests and for single users) and a vectorised one over a hits matrix (used by the
evaluation harness). Both share these definitions, for a ranked list r and a set
of relevant items R (|R| > 0):

- Recall@k   = |top-k ∩ R| / |R|
- HR@k       = 1 if |top-k ∩ R| > 0 else 0
- MRR@k      = 1 / (position of the first hit, 1-based) if it is within k, else 0
- NDCG@k     = DCG@k / IDCG@k with binary gain, DCG@k = Σ_{i<k, r_i ∈ R} 1/log2(i+2)
               (i 0-based), IDCG@k = Σ_{i < min(|R|, k)} 1/log2(i+2)
- coverage@k = |∪ top-k lists| / catalog size

A user with no relevant item scores 0 on every metric (the harness skips such
users before it gets here, as the protocol says).
"""

from __future__ import annotations

from typing import Collection, Hashable, Iterable, Sequence

import numpy as np

METRIC_NAMES = ("recall", "ndcg", "hr", "mrr")


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _hits(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> list[bool]:
    if k <= 0:
        raise ValueError("k must be positive")
    return [item in relevant for item in list(ranked)[:k]]


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    hits = _hits(ranked, relevant, k)
    return sum(hits) / len(relevant) if relevant else 0.0


def hit_rate_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    return 1.0 if any(_hits(ranked, relevant, k)) else 0.0


def mrr_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    for pos, hit in enumerate(_hits(ranked, relevant, k)):
        if hit:
            return 1.0 / (pos + 1)
    return 0.0


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    hits = _hits(ranked, relevant, k)
    if not relevant:
        return 0.0
    disc = _discounts(k)
    dcg = float(sum(d for d, h in zip(disc, hits) if h))
    idcg = float(disc[: min(len(relevant), k)].sum())
    return dcg / idcg


def catalog_coverage(lists: Iterable[Sequence[Hashable]], catalog_size: int, k: int | None = None) -> float:
    if catalog_size <= 0:
        raise ValueError("catalog_size must be positive")
    seen: set[Hashable] = set()
    for ranked in lists:
        seen.update(list(ranked)[:k] if k is not None else ranked)
    return len(seen) / catalog_size


# ---- vectorised -----------------------------------------------------------
def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user metrics from a boolean (users × k) hits matrix and |R| per user.

    `hits[u, i]` says whether the i-th ranked item of user u is relevant; k is
    hits.shape[1]. Returns arrays of shape (users,) keyed by METRIC_NAMES.
    """
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if hits.ndim != 2 or hits.shape[0] != n_relevant.shape[0]:
        raise ValueError("hits must be (users × k) and n_relevant (users,)")
    k = hits.shape[1]
    disc = _discounts(k)
    n_hits = hits.sum(axis=1)
    safe_rel = np.where(n_relevant > 0, n_relevant, 1.0)
    recall = np.where(n_relevant > 0, n_hits / safe_rel, 0.0)
    hr = (n_hits > 0).astype(np.float64)
    first = np.argmax(hits, axis=1)
    mrr = np.where(n_hits > 0, 1.0 / (first + 1), 0.0)
    idcg_table = np.concatenate([[0.0], np.cumsum(disc)])  # idcg_table[m] = Σ_{i<m} disc[i]
    idcg = idcg_table[np.minimum(n_relevant, k).astype(np.int64)]
    dcg = hits.astype(np.float64) @ disc
    ndcg = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)
    return {"recall": recall, "ndcg": ndcg, "hr": hr, "mrr": mrr}


def coverage_from_topk(topk: np.ndarray, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one row of an index matrix."""
    if catalog_size <= 0:
        raise ValueError("catalog_size must be positive")
    topk = np.asarray(topk)
    valid = topk[topk >= 0]  # -1 marks an empty slot (a ranker returned fewer than k)
    return float(np.unique(valid).size) / catalog_size
