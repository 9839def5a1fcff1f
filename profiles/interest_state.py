"""One user's interest profile, kept up to date event by event.

`build_interest_profile` reads the whole history for every profile; this state
takes each new event in time proportional to the tags it touches and reads the
profile off its sums. It equals the full recomputation bit for bit, for events
in any order, because everything it keeps is order-free:

- per tag and class (event type, clipped rating, tag factor: see `TagSums`), an
  exact integer sum of decay growths (`profiles/decay.py`) and the strongest
  MAX_EVIDENCE_IDS events. A class's unit (type weight x rating signal) is applied
  when the profile is read, so a mean that moves with every rating needs no
  rewriting of old events, and an out-of-order event simply adds its own growth;
- the exact sum of clipped ratings (a Fraction), so the mean is fsum's;
- per item, its events in time order. Most items have one event: those are
  grouped by the event's class and kept in growth order, which is their order
  whatever the mean, so top items and item dislikes read only the head of each
  group plus the items with several events;
- the latest statement per category, each catalog name's first spelling, and the
  last `short_window_events` events (the short-term horizon is recomputed from
  them whole: a bounded window);
- seen event ids (a duplicate counts once, as the store keeps the first), events
  ignored for good, and future-dated events held until the clock reaches them.

Reading a profile costs one pass over the user's distinct tags (the mean moves
every rating's contribution) and over their items with several events, not over
their events.
"""

from __future__ import annotations

import heapq
import math
import time
from bisect import bisect_left, insort
from collections import Counter
from fractions import Fraction
from typing import Iterable, Mapping

from tastebud.profiles.decay import Decay
from tastebud.profiles.events import Event, Item
from tastebud.profiles.interest import (
    DAY_MS, InterestConfig, InterestProfile, ItemEntry, ItemSignal, TagSums, UnitCache, assemble_profile,
    canonical_statement, disliked_items, event_class, event_tags, horizon_from, is_negative, is_statement,
    liked_items, short_horizon, short_window, stats_dict, unwanted_tags,
)


class StateOutOfDate(Exception):
    """The state cannot answer for this clock or catalog: rebuild it from the store."""


class InterestState:
    def __init__(self, user_id: str, config: InterestConfig, items: Mapping[str, Item]) -> None:
        self.user_id = user_id
        self.config = config
        self.items = items
        self._decay = Decay(config.long_half_life_days * DAY_MS)
        self._seen: set[str] = set()
        self._ignored = 0  # dated before 1970 or with a non-finite value: ignored for good
        self._future: list[tuple[int, str, Event]] = []  # heap; usable once now + skew reaches them
        self._count = 0
        self._by_type: Counter[str] = Counter()
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self._rating_sum = Fraction(0)
        self._ratings = 0
        self._tags: dict[str, TagSums] = {}
        self._item_events: dict[str, list[ItemEntry]] = {}
        self._singles: dict[tuple, list[tuple[int, str]]] = {}  # see _single_group -> sorted [(-growth, item)]
        self._multi: dict[str, list[ItemEntry]] = {}  # items with several events
        self._items_used: dict[str, Item | None] = {}  # the catalog entries the sums were built from
        self._statements: dict[str, Event] = {}  # casefolded text -> the latest statement
        self._spelling: dict[str, tuple[tuple[int, str, int], str]] = {}  # casefolded name -> (first seen, name)
        self._recent: list[tuple[int, str, Event]] = []  # the last short_window_events events

    @property
    def events_seen(self) -> int:
        return len(self._seen)

    # ------------------------------------------------------------------ updates
    def add(self, events: Iterable[Event], now_ms: int | None = None) -> None:
        limit = self._limit(now_ms)
        for ev in events:
            if ev.event_id in self._seen:
                continue
            self._seen.add(ev.event_id)
            if ev.ts < 0 or (ev.value is not None and not math.isfinite(ev.value)):
                self._ignored += 1
            elif ev.ts > limit:
                heapq.heappush(self._future, (ev.ts, ev.event_id, ev))
            else:
                self._use(ev)
        self._take_due(limit)

    def _limit(self, now_ms: int | None) -> int:
        return (int(time.time() * 1000) if now_ms is None else now_ms) + self.config.rules.future_skew_ms

    def _take_due(self, limit: int) -> None:
        while self._future and self._future[0][0] <= limit:
            self._use(heapq.heappop(self._future)[2])

    def _use(self, ev: Event) -> None:
        config = self.config
        self._count += 1
        self._by_type[ev.type] += 1
        if self._first_ts is None or ev.ts < self._first_ts:
            self._first_ts = ev.ts
        if self._last_ts is None or ev.ts > self._last_ts:
            self._last_ts = ev.ts
        if ev.type == "rating" and ev.value is not None:
            self._rating_sum += Fraction(min(config.rules.rating_max, max(config.rules.rating_min, ev.value)))
            self._ratings += 1
        position = (ev.ts, ev.event_id)
        insort(self._recent, (ev.ts, ev.event_id, ev))
        if len(self._recent) > config.short_window_events:
            del self._recent[0]
        growth = self._decay.growth(ev.ts)
        item = self.items.get(ev.item_id) if ev.item_id else None
        if ev.item_id:
            self._items_used[ev.item_id] = item
            self._add_item_event(ev.item_id, (ev.ts, ev.event_id, ev, growth))
            if item is not None:
                for order, name in enumerate((*item.categories, *item.tags)):
                    key, first = name.casefold(), (*position, order)
                    known = self._spelling.get(key)
                    if known is None or first < known[0]:
                        self._spelling[key] = (first, name)
        if is_statement(ev):  # its tag depends on the spelling, so it is added when the profile is read
            key = ev.text.strip().casefold()
            known = self._statements.get(key)
            if known is None or position > (known.ts, known.event_id):
                self._statements[key] = ev
            return
        cls = event_class(ev, config)
        for tag, factor in event_tags(ev, item):
            sums = self._tags.get(tag)
            if sums is None:
                sums = self._tags[tag] = TagSums()
            sums.add((cls, factor), growth, ev.event_id)

    def _single_group(self, ev: Event) -> tuple:
        """Single-event items of one group share unit, verdict and kind."""
        return event_class(ev, self.config), is_negative(ev), ev.type == "search"

    def _add_item_event(self, item_id: str, entry: ItemEntry) -> None:
        entries = self._item_events.get(item_id)
        if entries is None:
            self._item_events[item_id] = [entry]
            insort(self._singles.setdefault(self._single_group(entry[2]), []), (-entry[3], item_id))
            return
        if len(entries) == 1:
            group = self._singles[self._single_group(entries[0][2])]
            del group[bisect_left(group, (-entries[0][3], item_id))]
            self._multi[item_id] = entries
        insort(entries, entry)

    def _liked_items(self, units: UnitCache, clock) -> list[ItemSignal]:
        limit = self.config.max_items
        out = liked_items(self._multi, self.items, units, self.config, clock)
        for (cls, negative, search), members in self._singles.items():
            unit = units[cls]
            if negative or search or unit <= 0:
                continue
            for _, item_id in members[:limit]:  # within a group, growth order is contribution order
                _, event_id, ev, growth = self._item_events[item_id][0]
                contribution = clock.contribution(unit, growth)
                if contribution > 0:
                    out.append(ItemSignal(item_id, self._title(item_id), event_id, ev.type, ev.value, contribution))
        out.sort(key=lambda s: (-s.contribution, s.item_id))
        return out[:limit]

    def _disliked_items(self, units: UnitCache, mean: float | None, clock) -> list[ItemSignal]:
        limit = self.config.max_items * 4
        out = disliked_items(self._multi, self.items, mean, self.config, clock)
        for (cls, negative, _), members in self._singles.items():
            if not negative:
                continue
            unit = units[cls]
            if unit < 0:  # most negative first: the largest growths
                chosen = members[:limit]
            elif unit > 0 and len(members) > limit:  # the smallest growths, and any tied with the last of them
                chosen = members[bisect_left(members, (members[-limit][0], "")):]
            elif unit > 0:
                chosen = members
            else:  # all contribute 0: by item id
                chosen = heapq.nsmallest(limit, members, key=lambda m: m[1])
            for _, item_id in chosen:
                _, event_id, ev, growth = self._item_events[item_id][0]
                out.append(ItemSignal(item_id, self._title(item_id), event_id, ev.type, ev.value,
                                      clock.contribution(unit, growth)))
        return out

    def _title(self, item_id: str) -> str:
        item = self.items.get(item_id)
        return item.title if item and item.title else item_id

    # ------------------------------------------------------------------ reading
    def adopt_catalog(self, items: Mapping[str, Item]) -> None:
        """Take a newly read catalog, if the items this state rests on are unchanged."""
        if items is self.items:
            return
        if any(items.get(item_id) != used for item_id, used in self._items_used.items()):
            raise StateOutOfDate("the catalog changed items of this user")
        self.items = items

    def profile(self, last_event_seq: int = 0, now_ms: int | None = None) -> InterestProfile:
        config = self.config
        limit = self._limit(now_ms)
        if self._last_ts is not None and self._last_ts > limit:
            raise StateOutOfDate("the clock went back past events already used")
        self._take_due(limit)
        mean = float(self._rating_sum) / self._ratings if self._ratings else None
        now = self._last_ts if self._last_ts is not None else 0
        stated = {key: self._canonical(ev) for key, ev in self._statements.items()}
        unwanted = unwanted_tags(stated)
        tags: Mapping[str, TagSums] = self._tags
        if stated:
            additions: dict[str, list[tuple]] = {}
            for ev in stated.values():
                for tag, factor in event_tags(ev, None):
                    additions.setdefault(tag, []).append(((event_class(ev, config), factor),
                                                          self._decay.growth(ev.ts), ev.event_id))
            tags = dict(self._tags)
            for tag, extra in additions.items():
                tags[tag] = (self._tags.get(tag) or TagSums()).plus(extra)
        clock = self._decay.clock(now)
        units = UnitCache(mean, config)
        long_h, disliked_tags = horizon_from(tags, self._liked_items(units, clock), self._count, self._first_ts, mean,
                                             config, clock, unwanted)
        window = [self._canonical(ev) if is_statement(ev) else ev
                  for ev in short_window([ev for _, _, ev in self._recent], config)]
        short_h = short_horizon(window, self.items, mean, config, now, stated)
        disliked = self._disliked_items(units, mean, clock)
        stats = stats_dict(self._count, self._by_type, mean, self._first_ts, self._last_ts,
                           self._ignored + len(self._future))
        return assemble_profile(self.user_id, long_h, short_h, disliked_tags, disliked, config, stats, last_event_seq)

    def _canonical(self, ev: Event) -> Event:
        known = self._spelling.get(ev.text.strip().casefold())
        return canonical_statement(ev, {known[1].casefold(): known[1]} if known else {})
