"""The onnx backends (issue 13): the same vectors as torch sentence-transformers
without importing torch, a quantised variant within cosine 0.99 of them, chosen
by settings, with vector hashes that keep the two spaces apart. The full check
(all 9,742 catalog texts, all 1,220 profile texts) is bench/embed_check.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tastebud.errors import ConfigError
from tastebud.retrieval.embedder import OnnxEmbedder, embedder_name, get_embedder

pytestmark = pytest.mark.integration


def sample_texts(ml_small, n: int = 120) -> list[str]:
    """Catalog texts as items are embedded, and profile-like texts from the same titles."""
    from tastebud.profiles.events import Item

    with open(ml_small / "movies.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[: n * 5 : 5]
    items = [Item(r["movieId"], r["title"], "", tuple(r["genres"].split("|")), ()).text_for_embedding() for r in rows]
    profiles = [f"Interests: {', '.join(r['genres'].lower().split('|'))}, drama. Liked: "
                + "; ".join(x["title"] for x in rows[i : i + 5]) + "." for i, r in enumerate(rows[: n // 2])]
    return items + profiles


@pytest.fixture(scope="module")
def onnx32():
    return OnnxEmbedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def onnx8():
    return OnnxEmbedder("all-MiniLM-L6-v2", quantized=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)  # both L2-normalised


def test_onnx_matches_torch_and_shares_its_name(embedder, onnx32, ml_small):
    texts = sample_texts(ml_small) + ["", "a heist thriller in Los Angeles"]
    ours, ref = onnx32.encode(texts), embedder.encode(texts)
    assert ours.shape == ref.shape == (len(texts), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cosines(ours, ref).min() >= 0.9999
    assert onnx32.name == embedder.name  # same space: stored vectors stay valid
    assert onnx32.encode([]).shape == (0, 384)
    # order and batching do not change a text's vector
    again = onnx32.encode(list(reversed(texts)))[::-1]
    assert np.allclose(again, ours, atol=1e-5)


def test_int8_stays_within_cosine_099_of_torch_under_another_name(embedder, onnx8, ml_small):
    texts = sample_texts(ml_small)
    c = cosines(onnx8.encode(texts), embedder.encode(texts))
    assert c.min() >= 0.99, (c.min(), c.mean())
    assert onnx8.name == "all-MiniLM-L6-v2+int8" != embedder.name


def test_settings_choose_backend_and_device(home, monkeypatch):
    from tastebud.settings import load_settings

    assert load_settings().embedding_backend == "onnx" and load_settings().embedding_device == "auto"
    monkeypatch.setenv("TASTEBUD_EMBEDDING_BACKEND", "onnx-int8")
    s = load_settings()
    assert embedder_name(s) == "all-MiniLM-L6-v2+int8" and get_embedder(s).name == embedder_name(s)
    assert embedder_name(load_settings(embedding_backend="torch")) == "all-MiniLM-L6-v2"  # a flag beats the env
    for bad in (dict(embedding_backend="tensorflow"), dict(embedding_device="tpu")):
        with pytest.raises(ConfigError):
            load_settings(**bad)
    with pytest.raises(Exception, match="CUDA"):  # no GPU provider here: a clear error, not a silent CPU
        get_embedder(load_settings(embedding_backend="onnx", embedding_device="cuda"))


def test_switching_to_int8_reencodes_instead_of_mixing(settings, embedder, onnx8):
    from tastebud.retrieval.vectors import VectorStore, make_client

    client = make_client(settings)
    first = VectorStore(client, embedder).sync_profiles([("1", "long", "Interests: heists. Liked: Heat.", 1)])
    assert first.new == 1
    same = VectorStore(client, OnnxEmbedder("all-MiniLM-L6-v2")).sync_profiles([("1", "long", "Interests: heists. Liked: Heat.", 1)])
    assert same.unchanged == 1 and same.encoded == 0  # fp32 onnx: same space, nothing re-encoded
    switched = VectorStore(client, onnx8).sync_profiles([("1", "long", "Interests: heists. Liked: Heat.", 1)])
    assert switched.updated == 1


def test_onnx_backend_never_imports_torch(onnx32, tmp_path):
    """The graph is cached (the fixture made it): loading and encoding is tokenizers + onnxruntime."""
    probe = ("import json, sys; from tastebud.retrieval.embedder import OnnxEmbedder; "
             "v = OnnxEmbedder('all-MiniLM-L6-v2').encode(['hello world']); "
             "print(json.dumps({'shape': list(v.shape), 'heavy': sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)}))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"shape": [1, 384], "heavy": []}
