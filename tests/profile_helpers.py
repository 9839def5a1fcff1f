"""Builders for small hand-made histories."""

from __future__ import annotations

from tastebud.profiles.events import Event, Item

DAY = 86_400_000
T0 = 1_600_000_000_000


def item(item_id: str, categories=(), tags=(), title=None) -> Item:
    return Item(item_id, title or f"Item {item_id}", None, tuple(categories), tuple(tags))


def rating(user: str, item_id: str, value: float, day: float, n: int | None = None) -> Event:
    return Event(f"{user}-{item_id}-{n if n is not None else day}", user, item_id, "rating", int(T0 + day * DAY), value)


def load(store, items, events):
    store.upsert_items(list(items))
    store.write_batch(list(events))
