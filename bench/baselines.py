"""Pop, ItemKNN and EASE under the protocol of docs/design.md#evaluation-protocol, with wall times.

    .venv/bin/python bench/baselines.py [DIR] [--variants] [--split-types rating,tag] [--json]

DIR defaults to examples/ml-latest-small. The data goes through the real
ingestion into a throw-away TASTEBUD_HOME, then retrieval.evaluation splits it
and runs the models. --variants adds stronger ItemKNN settings next to the
reference one; --split-types changes which event types form the interaction
stream (default: everything but tags and searches, i.e. ratings on MovieLens).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE_NDCG = {"pop": 0.0751, "itemknn": 0.0772, "ease": 0.1023}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=str(ROOT / "examples" / "ml-latest-small"))
    parser.add_argument("--variants", action="store_true", help="also run stronger ItemKNN settings")
    parser.add_argument("--split-types", default=None, help="comma-separated event types forming the interactions")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tastebud.profiles.ingest import Ingestor
    from tastebud.profiles.movielens import ingest_movielens
    from tastebud.profiles.store import EventStore
    from tastebud.retrieval.baselines import EASE, ItemKNN, Pop, strong_itemknn
    from tastebud.retrieval.evaluation import EvalConfig, evaluate, split_store

    config = EvalConfig(k=args.k, split_types=frozenset(args.split_types.split(",")) if args.split_types else None)
    models = [Pop(), ItemKNN(), EASE(lam=500.0)]
    if args.variants:
        models[2:2] = [
            ItemKNN(shrink=10.0, name="itemknn_shrink10"),
            ItemKNN(neighbourhood="target", name="itemknn_target"),
            strong_itemknn(),
        ]

    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tastebud-bench-") as home:
        store = EventStore(f"sqlite:///{Path(home) / 'tastebud.db'}")
        t0 = time.perf_counter()
        ingest_movielens(Ingestor(store), args.data)
        t1 = time.perf_counter()
        split = split_store(store, config)
        t2 = time.perf_counter()
        store.close()
    results = evaluate(models, split, k=args.k)
    total = time.perf_counter() - wall

    if args.json:
        print(json.dumps({"data": args.data, "split": split.stats, "ingest_seconds": round(t1 - t0, 2),
                          "split_seconds": round(t2 - t1, 2), "total_seconds": round(total, 2), "models": results}, indent=2))
        return 0
    k = args.k
    print(f"data: {args.data}")
    print("split: " + ", ".join(f"{key} {value:,}" for key, value in split.stats.items()))
    print(f"ingest {t1 - t0:.1f}s, split {t2 - t1:.1f}s, cores {os.cpu_count()}")
    header = f"{'model':<24}{'Recall@' + str(k):>10}{'NDCG@' + str(k):>10}{'HR@' + str(k):>9}{'MRR@' + str(k):>9}{'cov@' + str(k):>9}{'fit s':>8}{'rank s':>8}  reference NDCG"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ref = REFERENCE_NDCG.get(name) if k == 10 and config.split_types is None else None
        print(f"{name:<24}{r[f'recall@{k}']:>10.4f}{r[f'ndcg@{k}']:>10.4f}{r[f'hr@{k}']:>9.4f}{r[f'mrr@{k}']:>9.4f}"
              f"{r[f'coverage@{k}']:>9.4f}{r['fit_seconds']:>8.1f}{r['rank_seconds']:>8.1f}  {'' if ref is None else f'{ref:.4f}'}")
    print(f"wall time {total:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
