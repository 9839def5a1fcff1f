"""The real bundled sentence-transformers model, offline."""

import numpy as np
import pytest

from tastebud.retrieval.embedder import Embedder, SentenceTransformerEmbedder, get_embedder, resolve_model_path
from tastebud.errors import ConfigError, ModelError

pytestmark = pytest.mark.integration


def test_vectors_are_unit_float32(embedder):
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384
    v = embedder.encode(["a heist thriller in Los Angeles", "a gentle animated film for children", ""])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_similar_texts_are_closer(embedder):
    q, near, far = embedder.encode(["space travel to distant planets", "astronauts explore a far galaxy", "a cooking show about bread"])
    assert q @ near > q @ far + 0.2


def test_factory_picks_bundled_model(settings, embedder):
    e = get_embedder(settings)
    assert e.name == "all-MiniLM-L6-v2" and e.dim == 384
    assert np.allclose(e.encode(["same text"]), embedder.encode(["same text"]), atol=1e-6)


def test_model_path_is_accepted(embedder):
    path = resolve_model_path("all-MiniLM-L6-v2")
    e = SentenceTransformerEmbedder(path)
    assert e.name == path and np.allclose(e.encode(["x"]), embedder.encode(["x"]), atol=1e-6)


def test_bad_model_is_a_model_error(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        SentenceTransformerEmbedder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError):
        SentenceTransformerEmbedder(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="offline"):
        SentenceTransformerEmbedder("nobody-here/no-such-model")  # a hub id not in the cache: never fetched


def test_unknown_backend_is_a_config_error(home):
    from tastebud.settings import load_settings

    with pytest.raises(ConfigError, match="unknown embedder"):
        get_embedder(load_settings(embedder="word2vec"))
