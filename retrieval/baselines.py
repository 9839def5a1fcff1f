"""The baselines a recommender engineer reaches for first: Pop, ItemKNN, EASE.

All three learn from `TrainData.binary` (1 = the user interacted with the item
in train, whatever the rating; negative feedback excluded) and follow the
`Scorer` protocol of retrieval.evaluation: `fit(train)`, then
`score(user_ids) -> (users × catalog)` array. Items with no train interaction
get score 0 from every model (Pop: count 0, ItemKNN/EASE: no similarity), so
they rank last, in catalog order.

- Pop: number of train users who interacted with the item.
- ItemKNN: item-item cosine on the binary matrix,
  sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink), self-similarity
  zeroed, each item keeps its `neighbours` most similar items (default 100,
  shrink 10: the usual starting point, e.g. Dacrema et al. 2019). User score
  for item j = Σ over the user's train items i of sim(i, j).
- EASE (Steck 2019): B = I - P diagMat(1/diag(P)), P = (XᵀX + λI)^-1, diag(B)=0,
  λ=500; score = X_u B.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from retrieval.evaluation import TrainData


class _Base:
    name = "base"

    def __init__(self) -> None:
        self.train: TrainData | None = None

    def _x(self, user_ids: Sequence[str]) -> sp.csr_matrix:
        if self.train is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self.train.binary[self.train.rows(user_ids)]


class Pop(_Base):
    name = "pop"

    def fit(self, train: TrainData) -> "Pop":
        self.train = train
        self.popularity = np.asarray(train.binary.sum(axis=0), dtype=np.float64).ravel()
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        if self.train is None:
            raise RuntimeError("pop: fit() first")
        return np.broadcast_to(self.popularity, (len(user_ids), self.popularity.size)).copy()


def _active(x: sp.csr_matrix) -> np.ndarray:
    """Columns with at least one interaction: the only ones that can get a score."""
    return np.flatnonzero(np.diff(x.tocsc().indptr) > 0)


class ItemKNN(_Base):
    name = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, train: TrainData) -> "ItemKNN":
        self.train = train
        x = train.binary
        self.cols = _active(x)
        xa = x[:, self.cols].astype(np.float64)
        co = (xa.T @ xa).toarray()  # co-occurrence counts
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.shrink)
        np.fill_diagonal(sim, 0.0)
        n = sim.shape[0]
        k = min(self.neighbours, n - 1) if n > 1 else 0
        if 0 < k < n:
            # keep the top-k neighbours of each item i (row i = how much i pulls in j)
            keep = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            rows = np.repeat(np.arange(n), k)
            vals = sim[rows, keep.ravel()]
            self.sim = sp.csr_matrix((vals, (rows, keep.ravel())), shape=(n, n))
            self.sim.eliminate_zeros()
        else:
            self.sim = sp.csr_matrix(sim)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        x = self._x(user_ids)[:, self.cols]
        out = np.zeros((len(user_ids), self.train.n_items))
        out[:, self.cols] = (x @ self.sim).toarray()
        return out


class EASE(_Base):
    name = "ease"

    def __init__(self, lam: float = 500.0) -> None:
        super().__init__()
        self.lam = lam

    def fit(self, train: TrainData) -> "EASE":
        from scipy.linalg import cho_factor, cho_solve

        self.train = train
        x = train.binary
        self.cols = _active(x)
        xa = x[:, self.cols].astype(np.float64)
        gram = (xa.T @ xa).toarray()
        gram[np.diag_indices_from(gram)] += self.lam
        p = cho_solve(cho_factor(gram, overwrite_a=True, check_finite=False), np.eye(gram.shape[0]), overwrite_b=True, check_finite=False)
        b = p / (-np.diag(p))
        np.fill_diagonal(b, 0.0)
        self.b = b.astype(np.float32)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        x = self._x(user_ids)[:, self.cols]
        out = np.zeros((len(user_ids), self.train.n_items), dtype=np.float32)
        out[:, self.cols] = x @ self.b
        return out


def default_baselines() -> list[_Base]:
    return [Pop(), ItemKNN(), EASE()]
