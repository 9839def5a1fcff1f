"""Do the onnx backends give torch's vectors? The full check behind `embedding_backend`.

    .venv/bin/python bench/embed_check.py [DIR]

DIR (default examples/ml-latest-small) is ingested into a temp home and every
user's profile is computed (no narratives, no vectors). Then every catalog text
(9,742) and every profile text (2 per user, 1,220) is encoded with torch
sentence-transformers, the `onnx` backend and the `onnx-int8` backend; printed:
min / mean cosine of each backend's vector to torch's (the bar: min >= 0.99),
encode rate of each on the profile texts, and, for retrieval quality, the
overlap of the semantic top-10 (profile vector . item vectors, the recommender's
semantic parts; the other parts do not use vectors) between torch and each
backend for every user, long and short horizon.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tastebud.profiles.interest import InterestConfig  # noqa: E402
from tastebud.profiles.refresh import Refresher  # noqa: E402
from tastebud.profiles.store import EventStore  # noqa: E402
from tastebud.retrieval.embedder import OnnxEmbedder, SentenceTransformerEmbedder  # noqa: E402
from _harness import old_profile_text as profile_text  # noqa: E402  (bench/ is on sys.path)
from tastebud.settings import load_settings  # noqa: E402


def texts_of(directory: Path, workdir: Path) -> tuple[list[str], list[str]]:
    from tastebud.profiles.ingest import Ingestor
    from tastebud.profiles.movielens import ingest_movielens

    settings = load_settings(home=workdir / "home")
    store = EventStore.from_settings(settings)
    try:
        ingest_movielens(Ingestor(store, settings.ingest_batch_size), directory)
        items = store.items_by_id()
        refresher = Refresher(store, InterestConfig.from_settings(settings))
        profiles = [refresher.compute(u, items)[0] for u in refresher.select_users(all_users=True)]
    finally:
        store.close()
    item_texts = [items[i].text_for_embedding() for i in sorted(items)]
    return item_texts, [profile_text(p, h) for p in profiles for h in ("long_term", "short_term")]


def timed(model, texts):
    model.encode(texts[:16])
    t0 = time.perf_counter()
    out = model.encode(texts)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", nargs="?", type=Path, default=ROOT / "examples" / "ml-latest-small")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tastebud-embed-check-"))
    try:
        items, profiles = texts_of(args.directory, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(items)} catalog texts, {len(profiles)} profile texts")
    backends = {"torch": lambda: SentenceTransformerEmbedder("all-MiniLM-L6-v2"),
                "onnx": lambda: OnnxEmbedder("all-MiniLM-L6-v2"),
                "onnx-int8": lambda: OnnxEmbedder("all-MiniLM-L6-v2", quantized=True)}
    vecs = {}
    for name, make in backends.items():
        t0 = time.perf_counter()
        model = make()
        load = time.perf_counter() - t0
        iv, it = timed(model, items)
        pv, pt = timed(model, profiles)
        vecs[name] = (iv, pv)
        print(f"{name:>9}: load {load:.2f} s | catalog {len(items) / it:.0f} texts/s | profiles {len(profiles) / pt:.0f} texts/s")
    ref_i, ref_p = vecs["torch"]
    for name in ("onnx", "onnx-int8"):
        iv, pv = vecs[name]
        ci, cp = (iv * ref_i).sum(1), (pv * ref_p).sum(1)
        ok = min(ci.min(), cp.min()) >= 0.99
        # semantic top-10 per profile vector, torch vs this backend
        top_ref = np.argsort(-(ref_p @ ref_i.T), axis=1)[:, :10]
        top = np.argsort(-(pv @ iv.T), axis=1)[:, :10]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top)])
        print(f"{name:>9} vs torch: catalog cosine min {ci.min():.4f} mean {ci.mean():.5f} | profiles min {cp.min():.4f} "
              f"mean {cp.mean():.5f} | {'PASSES' if ok else 'FAILS'} min >= 0.99 | semantic top-10 overlap {overlap:.3f}")


if __name__ == "__main__":
    main()
