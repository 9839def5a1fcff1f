"""What the same_start part (retrieval/same_start.py) adds to an item-side build.

    .venv/bin/python bench/item_side.py --home HOME [--repeat 3]

In one process, on the home's event store: the streaming interaction pass alone
(the baseline, as before the part existed), the same pass learning each user's first
items (StartTracker), and the shares' sparse product (same_start_matrix); then the
whole build both ways (ItemSide.build with and without starts). Prints the best of
--repeat runs of each, their ratios, and the part's size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ["TASTEBUD_HOME"] = str(args.home)
    from tastebud.profiles.store import EventStore
    from tastebud.retrieval.item_side import INTERACTION_COLUMNS, ItemSide, interaction_matrix_from_rows
    from tastebud.retrieval.same_start import StartTracker, same_start_matrix
    from tastebud.settings import load_settings

    store = EventStore.from_settings(load_settings())
    catalog = store.items_by_id()
    items = sorted(catalog)
    index = {iid: i for i, iid in enumerate(items)}

    def rows(starts=None):
        return interaction_matrix_from_rows(store.event_field_chunks(*INTERACTION_COLUMNS), index, starts)

    def tracked():
        tracker = StartTracker()
        m = rows(tracker)
        return m, tracker.matrix(*m.shape)

    plain_s, matrix = best(rows, args.repeat)
    tracked_s, (_, starts) = best(tracked, args.repeat)
    shares_s, (shares, _) = best(lambda: same_start_matrix(starts, matrix), args.repeat)
    build_plain_s, _ = best(lambda: ItemSide.build(items, catalog, matrix), args.repeat)
    build_s, side = best(lambda: ItemSide.build(items, catalog, matrix, starts=starts), args.repeat)
    out = {
        "events_pass_s": round(plain_s, 3), "events_pass_with_starts_s": round(tracked_s, 3),
        "pass_ratio": round(tracked_s / plain_s, 3), "shares_s": round(shares_s, 3),
        "build_without_s": round(build_plain_s, 3), "build_with_s": round(build_s, 3),
        "build_ratio": round(build_s / build_plain_s, 3),
        "whole_ratio": round((tracked_s + build_s) / (plain_s + build_plain_s), 3),
        "users": int(matrix.shape[0]), "items": len(items), "interactions": int(matrix.nnz),
        "same_start_pairs": int(side.same_start.nnz),
        "same_start_mib": round((side.same_start.data.nbytes + side.same_start.indices.nbytes
                                 + side.same_start.indptr.nbytes) / 2**20, 2),
        "similarity_pairs": int(side.similarity.nnz), "repeat": args.repeat,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
