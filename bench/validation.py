"""Choices made on the validation split of the training part (never the test split).

    .venv/bin/python bench/validation.py profile-vectors [DIR]
    .venv/bin/python bench/validation.py cold-users [DIR] [--weights 0,0.3,0.6,1,2,3,5] [--same-start 0,1] [--seeds 0,1,2]
    .venv/bin/python bench/validation.py new-items [DIR] [--weights 0,1,2]

DIR (default examples/ml-latest-small) is split by the warm protocol; `validation_split`
then applies the same protocol to the train part alone, and everything below is scored
on that validation split.

profile-vectors: NDCG@10 of the semantic parts alone and of the default blend (with
`semantic_long 0.1`, the short-history backoff off), with profile vectors as the embedding of the old profile text
("Interests: tags. Liked: titles.") or as the mean of the top items' vectors
(retrieval/profile_vectors.py), and without semantic parts.

cold-users: the cold-user protocol (200 sampled users at 1 / 3 / 5 events and stated
preferences only) on the validation split, for each weight of the short-history
popularity backoff (`cold_popularity` in the blend; halving point COLD_EVENTS) and of
the same_start part (`same_start`, retrieval/same_start.py), with
the warm validation NDCG@10 next to it; --ranker adds the learned ranker, trained on the
validation split's own training part without the sampled users.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _harness import old_profile_text, split_and_item_vectors  # noqa: E402  (bench/ is on sys.path)
from tastebud.retrieval.evaluation import evaluate_model, run_model  # noqa: E402
from tastebud.retrieval.offline import TastebudScorer, cold_item_split, run_cold_users  # noqa: E402
from tastebud.retrieval.profile_vectors import vectors_from_matrix  # noqa: E402
from tastebud.retrieval.recommender import COLD_EVENTS, COLD_KEY, SAME_START, SAME_START_WEIGHT  # noqa: E402


def setup(directory: Path):
    return split_and_item_vectors(directory, "tastebud-validation-")


def profile_vectors(directory: Path) -> None:
    settings, val, embedder, item_vectors, interest, blend = setup(directory)
    scorer = TastebudScorer(blend, interest, embedder, item_vectors=item_vectors).fit(val.train)
    users = list(scorer.profiles)
    texts = [old_profile_text(scorer.profiles[u], h) for u in users for h in ("long_term", "short_term")]
    encoded = embedder.encode(texts)
    kinds = {
        "text embedding": {u: {"long": encoded[2 * i], "short": encoded[2 * i + 1]} for i, u in enumerate(users)},
        "item-vector mean": {u: vectors_from_matrix(scorer.profiles[u], val.train.item_index, item_vectors)
                             for u in users},
    }
    # the popularity backoff and same_start off (they came later, bench/validation.py cold-users): the parts as they were compared
    base = {**blend, "semantic_short": 0.1, COLD_KEY: 0.0, SAME_START: 0.0}
    only = {**{p: 0.0 for p in base}, COLD_KEY: 0.0, SAME_START: 0.0}
    blends = {"semantic_long alone": {**only, "semantic_long": 1.0},
              "semantic_short alone": {**only, "semantic_short": 1.0},
              "blend, semantic_long 0.1": {**base, "semantic_long": 0.1},
              "blend without semantic parts": {**base, "semantic_long": 0.0, "semantic_short": 0.0}}
    for kind, vectors in kinds.items():
        scorer.vectors = vectors
        for name, weights in blends.items():
            variant = scorer.with_blend(weights, name)
            variant._parts_cache = {}
            print(f"{kind:18s} {name:30s} NDCG@10 {evaluate_model(variant, val, fit=False)['ndcg@10']:.4f}", flush=True)


def cold_users(directory: Path, weights: list[float], ranker: bool = False, same_start: Sequence[float] = (SAME_START_WEIGHT,),
               seeds: Sequence[int] = (0,)) -> None:
    settings, val, embedder, item_vectors, interest, blend = setup(directory)
    print(f"halving point COLD_EVENTS = {COLD_EVENTS:g} item events; 200 sampled users, seeds {list(seeds)} "
          "(NDCG@10 the mean over the samples)")
    for w, ss in itertools.product(weights, same_start):
        trial = {**blend, COLD_KEY: w, SAME_START: ss}
        got: dict[tuple[str, str], list[float]] = {}
        for seed in seeds:
            out = run_cold_users(val, trial, interest, embedder, item_vectors, 1, 50, seed, 200, ranker=ranker)
            for level, table in out["levels"].items():
                for model in ("tastebud", "ranker", "pop"):
                    if model in table["models"]:
                        got.setdefault((level, model), []).append(table["models"][model]["ndcg@10"])
        row = []
        for level in dict.fromkeys(level for level, _ in got):
            mean = {m: float(np.mean(got[(level, m)])) for m in ("tastebud", "ranker", "pop") if (level, m) in got}
            ranked = f", ranker {mean['ranker']:.4f}" if "ranker" in mean else ""
            row.append(f"{level} {mean['tastebud']:.4f}{ranked} (pop {mean['pop']:.4f})")
        warm = evaluate_model(TastebudScorer(trial, interest, embedder, item_vectors=item_vectors), val)["ndcg@10"]
        print(f"cold_popularity {w:g}, same_start {ss:g}: warm {warm:.4f}; " + "; ".join(row), flush=True)


def new_items(directory: Path, places: list[int]) -> None:
    settings, val, embedder, item_vectors, interest, blend = setup(directory)
    cold, _held = cold_item_split(val, 0.1, 0, 2)
    print(f"cold items on the validation split: {cold.stats}")
    warm_scorer = TastebudScorer(blend, interest, embedder, item_vectors=item_vectors).fit(val.train)
    cold_scorer = TastebudScorer(blend, interest, embedder, item_vectors=item_vectors).fit(cold.train)
    for n in places:
        trial = {**blend, "new_items": n}
        warm = evaluate_model(warm_scorer.with_blend(trial, f"new_items {n}"), val, fit=False)
        got = run_model(cold_scorer.with_blend(trial, f"new_items {n}"), cold, fit=False).summary()
        print(f"new_items {n}: warm NDCG@10 {warm['ndcg@10']:.4f}; cold items, every item a candidate: "
              f"HR@10 {got['hr@10']:.4f}, Recall@10 {got['recall@10']:.4f}, NDCG@10 {got['ndcg@10']:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("profile-vectors", "cold-users", "new-items"))
    ap.add_argument("directory", nargs="?", type=Path, default=ROOT / "examples" / "ml-latest-small")
    ap.add_argument("--weights", default=None, help="cold-users: 0,0.3,0.6,1,2,3,5; new-items: 0,1,2")
    ap.add_argument("--ranker", action="store_true", help="cold-users: also the learned ranker (trained without those users)")
    ap.add_argument("--same-start", default=str(SAME_START_WEIGHT), help="cold-users: weights of the same_start part, e.g. 0,1")
    ap.add_argument("--seeds", default="0", help="cold-users: the samples' seeds, e.g. 0,1,2")
    args = ap.parse_args()
    if args.what == "profile-vectors":
        profile_vectors(args.directory)
    elif args.what == "new-items":
        new_items(args.directory, [int(w) for w in (args.weights or "0,1,2").split(",")])
    else:
        cold_users(args.directory, [float(w) for w in (args.weights or "0,0.3,0.6,1,2,3,5").split(",")], args.ranker,
                   [float(w) for w in args.same_start.split(",")], [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
