"""The catalog as a read-only mapping that makes an `Item` only when asked for it.

A one-shot command (`tastebud recommend`) needs the catalog's ids (the item
side's rows), a fingerprint of its contents (is the cached item side current?)
and a handful of Items (the titles of ten results): reading every row as plain
tuples in one query and parsing a row's JSON fields on first access costs a few
milliseconds where building ~10k Items cost half a second (issue 13).
"""

from __future__ import annotations

import hashlib
from collections import namedtuple
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from tastebud.profiles.events import Item
from tastebud.profiles.rows import _ITEM_COLUMNS, _item_row, _row_item

_Row = namedtuple("_Row", _ITEM_COLUMNS)  # what _row_item reads: fields by name
_SELECT_ROWS = f"SELECT {', '.join(_ITEM_COLUMNS)} FROM items ORDER BY item_id"
CONTENT_FIELDS = 5  # item_id, title, description, categories, tags: what an item side and item vectors depend on


def content_digest(rows: Iterable[tuple]) -> str:
    """sha256 over the content fields of stored item rows (item_id, title,
    description, categories and tags as their stored JSON text), in the order
    given. repr of a tuple of str/None is unambiguous, so different contents
    never give the same text."""
    text = "\x1e".join(map(repr, (tuple(r[:CONTENT_FIELDS]) for r in rows)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def items_digest(catalog: Mapping[str, Item]) -> str:
    """content_digest of Items, as the store would write them: equal to the
    LazyCatalog's digest of the same catalog (rows this version wrote)."""
    return content_digest(_item_row(catalog[iid]) for iid in sorted(catalog))


class LazyCatalog(Mapping):
    """item id -> Item, from raw rows read once; an Item is made (and kept) on first
    access. Iteration gives the ids in the store's order (sorted by id)."""

    def __init__(self, rows: Iterable[tuple]):
        self._rows: dict[Any, tuple] = {r[0]: tuple(r) for r in rows}
        self._items: dict[Any, Item] = {}
        self._digest: str | None = None

    def __getitem__(self, item_id: Any) -> Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _row_item(_Row._make(self._rows[item_id]))  # KeyError: Mapping.get's None
        return item

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def digest(self) -> str:
        """content_digest of the rows (in id order), computed once."""
        if self._digest is None:
            self._digest = content_digest(self._rows[iid] for iid in sorted(self._rows))
        return self._digest


def read_catalog(store: Any) -> LazyCatalog:
    """Every catalog row of the store (stubs too, as items_by_id), as a LazyCatalog."""
    with store.engine.connect() as conn:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(_SELECT_ROWS)
            rows = cursor.fetchall()
        finally:
            cursor.close()
    return LazyCatalog(rows)
