"""Recommendation latency and item-embedding throughput at ml-latest-small scale.

    .venv/bin/python bench/recommend.py [DIR] [--users 200] [--items N] [--home PATH] [--profile] [--ranker] [--json]

1. A fresh temporary TASTEBUD_HOME (or --home, reused if it already holds the
   data): ingest DIR, refresh every profile without narratives (the profile
   hook writes profile vectors to Chroma), index the catalog items.
2. Throughput: our `VectorStore.sync_items` (hash check, encode, Chroma upsert)
   into an empty collection next to a raw `model.encode` of the same texts,
   alternating raw, sync, raw, sync (other load on the machine hits both);
   the ratio compares the best run of each (target >= 0.9). The first sync run
   is the home's real index.
3. Latency: `RecommendationService.recommend(user, k=10)` for --users users
   (every n-th of the sorted ids), after one warm-up call; the model load and
   the item-side build are reported separately (cold build, then a load of the
   on-disk item-side cache by a second service). p50/p95/max over the users;
   --profile adds a cProfile of the timed loop.
4. --ranker: trains the learned ranker on the home's events (retrieval/ranker_train.py,
   without semantic parts unless it is already trained) and times the same users with
   it on (target p95 < 50 ms), after the blend's passes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _harness import run_in_home  # noqa: E402  (bench/ is on sys.path as the script's folder)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=str(ROOT / "examples" / "ml-latest-small"))
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--items", type=int, default=0, help="throughput on the first N items only (0 = all)")
    parser.add_argument("--home", default=None, help="use (and keep) this home instead of a temporary one")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed recommend loop")
    parser.add_argument("--latency-only", action="store_true", help="skip the throughput part (it needs the torch backend)")
    parser.add_argument("--ranker", action="store_true", help="also time recommendations with the learned ranker")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    run_in_home(args, "tastebud-bench-rec-", run)
    return 0


def run(args, home: Path, say) -> dict:
    from tastebud.profiles.ingest import Ingestor
    from tastebud.profiles.movielens import ingest_movielens
    from tastebud.retrieval.service import RecommendationService
    from tastebud.retrieval.vectors import VectorStore, make_client
    from tastebud.settings import load_settings
    from tastebud.app import App

    result: dict = {"data": args.data, "home": str(home) if args.home else "temporary"}
    app = App(load_settings())
    t = time.perf_counter()
    embedder = app.embedder
    result["model_load_s"] = round(time.perf_counter() - t, 2)
    store = app.store

    if store.status()["events"] == 0:
        t = time.perf_counter()
        ingest_movielens(Ingestor(store), args.data)
        result["ingest_s"] = round(time.perf_counter() - t, 2)
        say(f"ingest: {result['ingest_s']} s")
    if store.lagging_users():
        t = time.perf_counter()
        report = app.refresher(narratives=False).refresh(store.lagging_users(), narratives=False)
        result["refresh_s"] = round(time.perf_counter() - t, 2)
        say(f"refresh (no narratives, profile vectors synced): {report.users} users in {result['refresh_s']} s")

    # ---- throughput: raw encode vs sync_items, alternating -------------------------
    items = list(store.items_by_id().values())
    items.sort(key=lambda i: i.item_id)
    if args.items:
        items = items[: args.items]
    texts = [i.text_for_embedding() for i in items]
    # raw: the backend's own encode of all texts at once (sentence-transformers' model.encode
    # for torch; OnnxEmbedder.encode, tokenizer + session, for onnx)
    model = getattr(embedder, "model", None)
    raw_encode = (lambda t: model.encode(t, batch_size=embedder.batch_size, convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=False)) if model is not None \
        else embedder.encode
    raw_runs, sync_runs = [], []
    scratch = tempfile.TemporaryDirectory(prefix="tastebud-bench-chroma-")
    try:
        for round_ in range(0 if args.latency_only else 2):
            t = time.perf_counter()
            raw_encode(texts)
            raw_runs.append(len(texts) / (time.perf_counter() - t))
            say(f"raw encode run {round_ + 1}: {raw_runs[-1]:.1f} items/s")
            if round_ == 0 and app.vectors.items.count() == 0:
                target = app.vectors  # the home's real index
            else:
                s = load_settings(home=Path(scratch.name) / f"run{round_}")
                target = VectorStore(make_client(s), embedder)
            t = time.perf_counter()
            report = target.sync_items(items)
            sync_runs.append(report.encoded / (time.perf_counter() - t))
            say(f"sync_items run {round_ + 1}: {sync_runs[-1]:.1f} items/s ({report.as_dict()})")
    finally:
        scratch.cleanup()
    if app.vectors.items.count() < len(store.items_by_id()):
        app.vectors.sync_items(store.items_by_id().values())
    result["throughput"] = None if args.latency_only else {
        "items": len(texts),
        "raw_encode_items_per_s": [round(r, 1) for r in raw_runs],
        "sync_items_items_per_s": [round(r, 1) for r in sync_runs],
        "ratio_best": round(max(sync_runs) / max(raw_runs), 3),
        "ratio_mean": round(statistics.mean(sync_runs) / statistics.mean(raw_runs), 3),
    }

    # ---- latency --------------------------------------------------------------------
    settings = app.settings
    cache_dir = home / "cache"
    for old in cache_dir.glob("item_side-*.npz"):
        old.unlink()
    service = RecommendationService(store, app.vectors, settings.blend, embedder)
    t = time.perf_counter()
    service.side
    result["item_side_build_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    RecommendationService(store, app.vectors, settings.blend, embedder).side
    result["item_side_cached_load_s"] = round(time.perf_counter() - t, 2)
    say(f"item side: build {result['item_side_build_s']} s, cached load {result['item_side_cached_load_s']} s")

    users = sorted(store.user_last_seqs(), key=lambda u: (len(u), u))
    step = max(1, len(users) // args.users)
    chosen = users[::step][: args.users]
    service.recommend(chosen[0], 10)  # warm-up: first Chroma/SQLite round trips
    times = []
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    for user in chosen:
        t = time.perf_counter()
        service.recommend(user, 10, source="bench")
        times.append((time.perf_counter() - t) * 1000)
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        say(out.getvalue())
    # a second pass: profile vectors now come from the service's memory
    times2 = []
    for user in chosen:
        t = time.perf_counter()
        service.recommend(user, 10, source="bench")
        times2.append((time.perf_counter() - t) * 1000)
    result["latency_ms"] = {
        "users": len(chosen),
        "first_pass": {"p50": round(pct(times, 50), 2), "p95": round(pct(times, 95), 2), "max": round(max(times), 2)},
        "second_pass": {"p50": round(pct(times2, 50), 2), "p95": round(pct(times2, 95), 2), "max": round(max(times2), 2)},
    }
    say(f"recommend latency over {len(chosen)} users (ms): first pass {result['latency_ms']['first_pass']}, "
        f"second pass {result['latency_ms']['second_pass']}")
    if args.ranker:
        result["ranker"] = ranker_latency(app, store, embedder, home, chosen, say)
    if result["throughput"]:
        say(f"throughput ratio sync_items / raw encode: best {result['throughput']['ratio_best']}, "
            f"mean {result['throughput']['ratio_mean']}")
    app.close()
    return result


def ranker_latency(app, store, embedder, home: Path, users: list, say) -> dict:
    """The same users with the ranker on: train it if the home has none, then two passes."""
    from tastebud.retrieval.ranker import RankerModel, ranker_dir
    from tastebud.retrieval.ranker_train import train_for_store
    from tastebud.retrieval.service import RecommendationService

    folder = ranker_dir(home)
    out: dict = {}
    if not RankerModel.present(folder):
        t = time.perf_counter()
        from tastebud.profiles.interest import InterestConfig
        from tastebud.retrieval.offline import TastebudScorer

        interest = InterestConfig.from_settings(app.settings)
        model, info = train_for_store(store, lambda: TastebudScorer(dict(app.settings.blend), interest, None, "base"),
                                      semantic=False, say=say)
        model.save(folder)
        out["train_s"] = round(time.perf_counter() - t, 1)
        say(f"ranker trained in {out['train_s']} s: {info['training']}")
    service = RecommendationService(store, app.vectors, app.settings.blend, embedder, ranker=folder)
    t = time.perf_counter()
    service.recommend(users[0], 10, source="bench")  # loads the model and the item side
    out["first_request_s"] = round(time.perf_counter() - t, 2)
    passes = []
    for _ in range(2):
        times = []
        for user in users:
            t = time.perf_counter()
            rec = service.recommend(user, 10, source="bench")
            times.append((time.perf_counter() - t) * 1000)
        passes.append({"p50": round(pct(times, 50), 2), "p95": round(pct(times, 95), 2), "max": round(max(times), 2)})
    out.update(users=len(users), first_pass=passes[0], second_pass=passes[1],
               ranked=bool(rec.items) and "ranker_bias" in rec.items[0].parts)
    say(f"recommend latency with the ranker over {len(users)} users (ms): {passes[0]}, second pass {passes[1]}")
    return out


if __name__ == "__main__":
    sys.exit(main())
