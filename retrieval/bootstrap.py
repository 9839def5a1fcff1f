"""Bootstrap confidence intervals over users, for offline evaluation.

Every ranking metric of the protocol is a mean over evaluated users, so the
unit that is resampled is the user. One resampling plan (a seeded matrix of
user indices, `resamples × users`) is drawn per protocol and shared by every
model on that protocol, so two models are always compared on the same
resampled users (a paired bootstrap).

- `interval(per_user, plan)`: the metric's mean, and the 2.5th and 97.5th
  percentiles of its mean over the resamples (95% percentile interval).
- `paired(a, b, plan)`: the same for the per-user difference a − b. A
  difference whose interval contains 0 is not a win.
- `pooled_paired(diffs_by_user, plan)`: a difference pooled over several samples in
  which a user may appear more than once (the cold-user protocol run with several
  seeds): the user is still the unit resampled, with all of their rows, and the
  statistic is the mean over the drawn rows (sum of their differences / their count).
- Coverage gets no interval (`None`): it is |∪ top-k| / catalog, a property of
  the set of lists, not a mean over users. A resample with replacement holds
  about 63% distinct users, so its coverage is biased low and the percentile
  interval of it would not even contain the observed value.

Percentiles use numpy's default (linear) interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 20260115
LEVEL = 0.95


@dataclass(frozen=True)
class Plan:
    """`counts[b, u]`: how often user u was drawn in resample b (each row sums to n_users)."""

    counts: np.ndarray  # resamples × users, float64
    seed: int
    level: float = LEVEL

    @property
    def resamples(self) -> int:
        return self.counts.shape[0]

    @property
    def users(self) -> int:
        return self.counts.shape[1]

    def describe(self) -> dict:
        return {"method": "percentile bootstrap over evaluated users", "resamples": self.resamples,
                "seed": self.seed, "level": self.level, "users": self.users}


def plan(n_users: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, level: float = LEVEL) -> Plan:
    """Draw `resamples` samples of n_users users with replacement (seeded)."""
    if resamples <= 0:
        raise ValueError("resamples must be positive")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    counts = np.zeros((resamples, n_users), dtype=np.float64)
    if n_users:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n_users, size=(resamples, n_users))
        rows = np.repeat(np.arange(resamples), n_users)
        np.add.at(counts, (rows, idx.ravel()), 1.0)
    return Plan(counts, seed, level)


def resample_means(per_user: np.ndarray, p: Plan) -> np.ndarray:
    """The mean of `per_user` on each resample: shape (resamples,)."""
    per_user = np.asarray(per_user, dtype=np.float64)
    if per_user.shape != (p.users,):
        raise ValueError(f"per-user values have shape {per_user.shape}, the plan has {p.users} users")
    if p.users == 0:
        return np.zeros(p.resamples)
    return p.counts @ per_user / p.users


def _bounds(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(samples, [tail, 100.0 - tail])
    return float(lo), float(hi)


def interval(per_user: np.ndarray, p: Plan) -> dict[str, float]:
    """{"mean", "low", "high"}: the observed mean and its percentile interval."""
    per_user = np.asarray(per_user, dtype=np.float64)
    means = resample_means(per_user, p)
    lo, hi = _bounds(means, p.level)
    return {"mean": float(per_user.mean()) if per_user.size else 0.0, "low": lo, "high": hi}


def paired(a: np.ndarray, b: np.ndarray, p: Plan) -> dict[str, float]:
    """The difference of means a − b with its interval, on the same resampled users.
    `wins` is +1 when the whole interval is above 0, −1 when below, 0 when it holds 0."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    out = interval(diff, p)
    out["wins"] = 1 if out["low"] > 0 else (-1 if out["high"] < 0 else 0)
    return out


def metric_intervals(per_user: Mapping[str, np.ndarray], p: Plan, k: int, digits: int = 4) -> dict[str, list[float] | None]:
    """{"ndcg@10": [low, high], …, "coverage@10": None} for one model (coverage: see the module doc)."""
    out: dict[str, list[float] | None] = {}
    for name, values in per_user.items():
        ci = interval(values, p)
        out[f"{name}@{k}"] = [round(ci["low"], digits), round(ci["high"], digits)]
    out[f"coverage@{k}"] = None
    return out


def pooled_paired(diffs_by_user: Mapping[str, "list[float] | np.ndarray"], p: Plan) -> dict[str, float]:
    """paired() for rows grouped by user (a user's rows are drawn together); the plan is
    over the distinct users, in the mapping's order."""
    sums = np.array([float(np.sum(v)) for v in diffs_by_user.values()], dtype=np.float64)
    rows = np.array([len(v) for v in diffs_by_user.values()], dtype=np.float64)
    if sums.shape != (p.users,):
        raise ValueError(f"{sums.size} users, the plan has {p.users}")
    means = (p.counts @ sums) / np.maximum(p.counts @ rows, 1.0)
    lo, hi = _bounds(means, p.level)
    mean = float(sums.sum() / rows.sum()) if rows.sum() else 0.0
    return {"mean": mean, "low": lo, "high": hi, "wins": 1 if lo > 0 else (-1 if hi < 0 else 0)}
