"""The cold-user protocol pooled over several samples: one sample of 200 users is too
few to tell a cold-start difference of a few thousandths from noise.

    .venv/bin/python bench/cold_users.py [DIR] [--split test|validation] [--seeds 0,1,2] [--out FILE]

For each seed, `run_cold_users` (the protocol of `tastebud eval --protocol cold-users`,
without the learned ranker, which serves the blend at these lengths) on DIR's warm
split (`--split test`, the default: scored against the test items, as `eval` is) or on
the validation split of its training part. Then, per level, each model's NDCG@10 over
every (sample, user) row, and paired differences pooled over the samples with the user
as the unit resampled (retrieval/bootstrap.py `pooled_paired`: a user drawn into two
samples is drawn with both rows). Samples overlap; the pooled interval accounts for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _harness import split_and_item_vectors  # noqa: E402  (bench/ is on sys.path)
from tastebud.retrieval import bootstrap as bp  # noqa: E402
from tastebud.retrieval.offline import run_cold_users  # noqa: E402

PAIRS = (("tastebud", "pop"), ("tastebud", "tastebud no_same_start"), ("tastebud", "tastebud no_semantic"),
         ("tastebud no_semantic", "pop"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", nargs="?", type=Path, default=ROOT / "examples" / "ml-latest-small")
    ap.add_argument("--split", choices=("test", "validation"), default="test")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--resamples", type=int, default=bp.DEFAULT_RESAMPLES)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    settings, split, embedder, vectors, interest, blend = split_and_item_vectors(
        args.directory, "tastebud-cold-users-", validation=args.split == "validation")
    rows: dict[str, dict[str, dict[str, list[float]]]] = {}  # level -> model -> user -> ndcg per sample
    for seed in seeds:
        keep: dict = {}
        run_cold_users(split, blend, interest, embedder, vectors,  # its own tables (10 resamples) are not used
                       bp.DEFAULT_SEED, 10, seed, 200, keep=keep)
        for level, runs in keep.items():
            for run in runs:
                by_user = rows.setdefault(level, {}).setdefault(run.name, {})
                for user, value in zip(run.users, run.per_user["ndcg"]):
                    by_user.setdefault(user, []).append(float(value))
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    out: dict = {"split": args.split, "seeds": seeds, "sample": 200, "bootstrap_seed": bp.DEFAULT_SEED,
                 "resamples": args.resamples, "levels": {}}
    for level, models in rows.items():
        users = list(models["pop"])
        p = bp.plan(len(users), args.resamples, bp.DEFAULT_SEED)
        entry = {"user_rows": sum(len(v) for v in models["pop"].values()), "distinct_users": len(users),
                 "ndcg@10": {m: round(float(np.mean([x for u in users for x in v[u]])), 4) for m, v in models.items()},
                 "pooled": {}}
        for a, b in PAIRS:
            if a in models and b in models:
                diffs = {u: list(np.subtract(models[a][u], models[b][u])) for u in users}
                entry["pooled"][f"{a} - {b}"] = {k: (round(v, 4) if isinstance(v, float) else v)
                                                 for k, v in bp.pooled_paired(diffs, p).items()}
        out["levels"][level] = entry
        pooled = "; ".join(f"{k} {v['mean']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]" for k, v in entry["pooled"].items())
        print(f"{level}: " + ", ".join(f"{m} {x:.4f}" for m, x in entry["ndcg@10"].items()) + f" | {pooled}", flush=True)
    out["seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
