"""The lazy catalog (issue 13): Items made on access, a digest over raw rows that
the item-side fingerprint uses instead of building every Item."""

from __future__ import annotations

from tastebud.profiles.catalog import LazyCatalog, items_digest, read_catalog
from tastebud.profiles.events import Event, Item


def _items():
    return [Item("b", "Beta", None, ("Drama",), ("slow",)), Item("a", "Alpha", "Long text", ("Comedy", "Drama"), ()),
            Item("c", None, None, (), ())]


def test_lazy_catalog_reads_like_items_by_id(store):
    store.upsert_items(_items())
    store.write_batch([Event("e1", "u1", "stub-1", "view", 1_700_000_000_000)])  # a stub item
    lazy = read_catalog(store)
    eager = store.items_by_id()
    assert isinstance(lazy, LazyCatalog) and not lazy._items  # nothing built yet
    assert list(lazy) == sorted(eager) and len(lazy) == len(eager)
    assert lazy["a"] == eager["a"] and lazy.get("stub-1") == eager["stub-1"] and lazy["stub-1"].is_stub
    assert set(lazy._items) == {"a", "stub-1"}  # only what was asked for
    assert lazy.get("missing") is None and "missing" not in lazy and "b" in lazy
    assert dict(lazy) == eager
    assert lazy.digest() == items_digest(eager)  # the same content, read raw or as Items


def test_the_fingerprint_follows_catalog_and_events_without_building_items(store, monkeypatch):
    from tastebud.profiles import rows
    from tastebud.retrieval.service import item_side_fingerprint

    store.upsert_items(_items())
    store.write_batch([Event("e1", "u1", "a", "rating", 1_700_000_000_000, 4.0)])
    key = item_side_fingerprint(store, read_catalog(store), "m")
    assert item_side_fingerprint(store, None, "m") == key == item_side_fingerprint(store, store.items_by_id(), "m")

    built = []
    real = rows._row_item
    monkeypatch.setattr("tastebud.profiles.catalog._row_item", lambda row: built.append(row) or real(row))
    assert item_side_fingerprint(store, read_catalog(store), "m") == key and not built  # no Item made

    changes = [
        lambda: store.upsert_items([Item("b", "Beta (1999)", None, ("Drama",), ("slow",))]),  # a title
        lambda: store.upsert_items([Item("b", "Beta (1999)", None, ("Drama",), ("slow", "quiet"))]),  # a tag
        lambda: store.upsert_items([Item("c", None, "now described", (), ())]),  # a description
        lambda: store.upsert_items([Item("d", "Delta")]),  # a new item
        lambda: store.write_batch([Event("e2", "u2", "b", "like", 1_700_000_000_001)]),  # an event
    ]
    seen = {key}
    for change in changes:
        change()
        now = item_side_fingerprint(store, read_catalog(store), "m")
        assert now not in seen
        seen.add(now)
    assert item_side_fingerprint(store, read_catalog(store), "other-model") not in seen
