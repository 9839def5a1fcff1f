"""The HttpClient path against a real `chroma run` server on loopback."""

import pytest

from tastebud.profiles.events import Item
from tastebud.retrieval.vectors import SyncReport, VectorStore
from tastebud.errors import StoreError
from tests.services import chroma_server as chroma_server_at, free_port as _free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    with chroma_server_at(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


def test_http_client_sync_and_query(chroma_server, home, monkeypatch, counting_embedder):
    from tastebud.settings import load_settings

    monkeypatch.setenv("TASTEBUD_CHROMA_URL", chroma_server)
    settings = load_settings()
    store = VectorStore.from_settings(settings, counting_embedder)
    assert type(store.client).__name__ != "PersistentClient" and not settings.chroma_path.exists()
    assert store.heartbeat() > 0
    assert store.items.collection.configuration["hnsw"]["space"] == "cosine"
    items = [
        Item("1", "Heat", categories=("Crime", "Thriller"), tags=("heist",)),
        Item("2", "Toy Story", categories=("Animation", "Children"), tags=("toys",)),
    ]
    assert store.sync_items(items) == SyncReport(new=2)
    counting_embedder.calls.clear()
    # a second client (another process would do the same) sees the stored hashes
    other = VectorStore.from_settings(settings, counting_embedder)
    assert other.sync_items(items) == SyncReport(unchanged=2) and counting_embedder.calls == []
    assert other.items.query("bank robbers and detectives", k=1)[0].id == "1"
    store.sync_profiles([("7", "long", "Enjoys animated films about toys.", 3)])
    assert other.profiles.metadata(["7:long"])["7:long"]["version"] == 3
    assert other.items.query(other.profile_vectors("7")["long"], k=1)[0].id == "2"


def test_unreachable_server_is_a_store_error(home, monkeypatch, embedder):
    from tastebud.settings import load_settings

    monkeypatch.setenv("TASTEBUD_CHROMA_URL", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StoreError, match="cannot reach Chroma"):
        VectorStore.from_settings(load_settings(), embedder)
