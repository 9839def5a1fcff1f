"""Stated preferences: item-less likes and dislikes of a category or tag ("no more
horror"), the latest per name, spelled as the catalog spells it. Their own module
because the full profile, the incremental state and the recommender all read them."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from tastebud.profiles.events import PREFERENCE_TYPES, Event, Item


def is_statement(event: Event) -> bool:
    """A like/dislike of a category or tag rather than of an item."""
    return event.item_id is None and event.type in PREFERENCE_TYPES and bool(event.text)


def stated_preferences(events: Sequence[Event]) -> dict[str, Event]:
    """The latest statement per category/tag (key: casefolded text), events in time
    order: "no more horror" is replaced by a later "I like horror again"."""
    out: dict[str, Event] = {}
    for ev in events:
        if is_statement(ev):
            out[ev.text.strip().casefold()] = ev
    return out


def statement_spelling(events: Sequence[Event], items: Mapping[str, Item]) -> dict[str, str]:
    """casefolded name -> how the catalog spells it, first met in time order
    (categories before tags): "horror" -> "Horror"."""
    spelling: dict[str, str] = {}
    for ev in events:
        item = items.get(ev.item_id) if ev.item_id else None
        if item is not None:
            for name in (*item.categories, *item.tags):
                spelling.setdefault(name.casefold(), name)
    return spelling


def canonical_statements(events: Sequence[Event], spelling: Mapping[str, str]) -> Sequence[Event]:
    """Statements spelled like the catalog so they meet the category tags the user's items carry."""
    if not any(is_statement(ev) for ev in events):
        return events
    return [canonical_statement(ev, spelling) if is_statement(ev) else ev for ev in events]


def canonical_statement(event: Event, spelling: Mapping[str, str]) -> Event:
    return replace(event, text=spelling.get(event.text.strip().casefold(), event.text.strip()))


def unwanted_tags(stated: Mapping[str, Event]) -> frozenset[str]:
    """Casefolded categories/tags under a standing stated dislike."""
    return frozenset(key for key, ev in stated.items() if ev.type == "dislike")


def stated_dislikes(events: Sequence[Event]) -> list[str]:
    """Categories/tags the user said they do not want (as they wrote them)."""
    return [ev.text.strip() for ev in stated_preferences(events).values() if ev.type == "dislike"]
