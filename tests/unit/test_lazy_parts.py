"""What lets a read-only command skip the embedding model and Chroma: the lazy
embedder, the local copy of profile vectors, and the App wiring them in."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.errors import ModelError
from tastebud.retrieval.embedder import LazyEmbedder, known_dim


class Fake:
    def __init__(self, name="fake", dim=4):
        self.name, self.dim, self.calls = name, dim, 0

    def encode(self, texts):
        self.calls += 1
        return np.ones((len(texts), self.dim), np.float32) / 2


def test_lazy_embedder_loads_on_first_encode_only_and_once():
    loads = []
    lazy = LazyEmbedder("fake", lambda: loads.append(1) or Fake())
    assert lazy.name == "fake" and not lazy.loaded and known_dim(lazy) is None and not loads
    assert lazy.encode(["a", "b"]).shape == (2, 4) and lazy.loaded and loads == [1]
    assert lazy.dim == 4 and known_dim(lazy) == 4 and lazy.encode(["c"]).shape == (1, 4) and loads == [1]
    assert known_dim(Fake(dim=7)) == 7 and known_dim(None) is None


def test_lazy_embedder_refuses_a_model_of_another_name():
    with pytest.raises(ModelError, match="other"):
        LazyEmbedder("fake", lambda: Fake("other")).encode(["a"])


def test_the_app_builds_neither_model_nor_chroma_for_the_log(home):
    from tastebud.app import App
    from tastebud.settings import load_settings

    app = App(load_settings())
    try:
        assert app.reclog.store is app.store
        service = app.recommendations
        assert isinstance(app.encoder, LazyEmbedder) and app.encoder.name == app.settings.embedding_model
        assert service.embedder is app.encoder
        assert not app.started("vectors") and not app.started("embedder")
    finally:
        app.close()


def test_an_injected_embedder_is_the_one_every_part_holds(home):
    from tastebud.app import App
    from tastebud.settings import load_settings

    fake = Fake("all-MiniLM-L6-v2")
    app = App(load_settings(), embedder=fake)
    try:
        assert app.encoder is fake and app.recommendations.embedder is fake
    finally:
        app.close()
