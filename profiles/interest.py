"""The deterministic interest model: weighted tags with evidence, two horizons,
dislikes and drift. Weights are computed, never generated, so they are exact,
repeatable and explainable down to the events that support them.

Per event e on item i, its contribution is

    c(e) = type_weight(e) * rating_signal(e) * 0.5 ** (age_days(e) / half_life)

where rating_signal = 1 + (rating - user_mean) / RATING_SPREAD for ratings
(above the user's own mean pushes up, below pushes down, 2 stars under the
mean is neutral) and 1 for other positive events. Age is measured from the
user's latest event, so a profile depends only on the history, not the clock.

No single row can capture a profile (values an older version or a direct
database write left behind): the mean is taken over ratings clipped to the
rating scale, and events dated before 1970 or past now + the clock-skew
tolerance are left out (counted in stats as `ignored_events`), so the recency
anchor is the latest event that is not in the future.
Each category of i receives c(e), each catalog tag of i receives
c(e) * ITEM_TAG_FACTOR, and text the user wrote (tag events, reviews, searches)
contributes its keywords at c(e). Tag weights are the sums normalised to shares
of the positive total; negative sums are dislikes.
"""

from __future__ import annotations

import heapq
import math
import re
import time
from bisect import insort
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tastebud import pii
from tastebud.profiles.decay import Clock, Decay
from tastebud.profiles.events import DEFAULT_RULES, NEGATIVE_TYPES, Event, Item, ValueRules
from tastebud.profiles.statements import (canonical_statement, canonical_statements, is_statement,  # noqa: F401  (re-exported)
                                         stated_dislikes, stated_preferences, statement_spelling, unwanted_tags)

DAY_MS = 86_400_000
RATING_SPREAD = 2.0
ITEM_TAG_FACTOR = 0.5
LOW_RATING = 2.0  # at or below: the item is disliked, for good
NEGATIVE_WEIGHTS = {"dislike": 3.0, "skip": 1.0}
DRIFT_DELTA = 0.05  # share change that makes a tag emerging or fading
MIN_DISLIKE_EVIDENCE = 2  # one bad film's trivia tags are not a dislike
MAX_EVIDENCE_IDS = 20  # a tag lists its strongest supporting events; evidence_count counts them all

_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have i in is it its of on or so that the this to was were "
    "with not very just too really it's i'm movie movies film films one good great like liked love loved "
    "show shows watch watched best bad more most some any all about what who how".split()
)
_WORD = re.compile(r"[a-z][a-z'\-]{2,}")


def keywords(text: str, limit: int = 5) -> list[str]:
    """The documented extractor: lowercase words of 3+ letters, minus stopwords,
    first occurrences, at most `limit`. A short tag (<= 3 words) is kept whole.
    PII spans (tastebud/pii.py) are dropped first: a tag is shown and embedded."""
    lowered = pii.remove(text).strip().lower()
    if not lowered:
        return []
    if len(lowered.split()) <= 3 and len(lowered) <= 40:
        return [lowered]
    out: list[str] = []
    for word in _WORD.findall(lowered):
        if word not in _STOPWORDS and word not in out:
            out.append(word)
            if len(out) == limit:
                break
    return out


@dataclass
class WeightedTag:
    tag: str
    weight: float
    evidence_event_ids: list[str]  # the strongest MAX_EVIDENCE_IDS, strongest first
    evidence_count: int  # all the events that support the tag

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "weight": round(self.weight, 4),
            "evidence_count": self.evidence_count,
            "evidence_event_ids": self.evidence_event_ids,
        }


@dataclass
class ItemSignal:
    item_id: str
    title: str
    event_id: str
    type: str
    value: float | None
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "event_id": self.event_id,
            "type": self.type,
            "value": self.value,
            "score": round(self.contribution, 4),
        }


@dataclass
class Horizon:
    tags: list[WeightedTag]
    top_items: list[ItemSignal]
    events: int
    since: int | None  # epoch ms of the first event in the horizon


@dataclass
class InterestProfile:
    user_id: str
    long_term: Horizon
    short_term: Horizon
    disliked_tags: list[WeightedTag]
    disliked_items: list[ItemSignal]
    drift_score: float
    emerging: list[str]
    fading: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    last_event_seq: int = 0

    def computed(self) -> dict[str, Any]:
        """The computed half of a stored profile (the JSON contract's shape)."""

        def horizon(h: Horizon) -> dict[str, Any]:
            return {
                "tags": [t.as_dict() for t in h.tags],
                "top_items": [i.as_dict() for i in h.top_items],
                "events": h.events,
                "since": h.since,
            }

        return {
            "user_id": self.user_id,
            "long_term": horizon(self.long_term),
            "short_term": horizon(self.short_term),
            "dislikes": {
                "tags": [t.as_dict() for t in self.disliked_tags],
                "items": [i.as_dict() for i in self.disliked_items],
            },
            "drift": {"score": round(self.drift_score, 4), "emerging": self.emerging, "fading": self.fading},
            "stats": self.stats,
        }


@dataclass(frozen=True)
class InterestConfig:
    event_weights: Mapping[str, float]
    long_half_life_days: float = 365.0
    short_half_life_days: float = 30.0
    short_window_events: int = 20
    short_window_days: float = 30.0
    max_tags: int = 15
    max_items: int = 8
    rules: ValueRules = DEFAULT_RULES  # the rating scale and clock skew ingestion checks against

    @classmethod
    def from_settings(cls, settings: Any) -> "InterestConfig":
        return cls(
            event_weights=dict(settings.event_weights),
            long_half_life_days=settings.long_half_life_days,
            short_half_life_days=settings.short_half_life_days,
            short_window_events=settings.short_window_events,
            short_window_days=settings.short_window_days,
            max_tags=settings.max_tags,
            rules=ValueRules.from_settings(settings),
        )


def user_mean_rating(events: Sequence[Event], low: float = -math.inf, high: float = math.inf) -> float | None:
    """The mean of the user's ratings, each clipped to [low, high] (the rating scale)."""
    ratings = [min(high, max(low, e.value)) for e in events
               if e.type == "rating" and e.value is not None and math.isfinite(e.value)]
    return math.fsum(ratings) / len(ratings) if ratings else None  # fsum: exact, so independent of order


def usable_events(events: Sequence[Event], config: InterestConfig, now_ms: int | None = None) -> list[Event]:
    """Events a profile may rest on: dated between 1970 and now + skew, with a finite value."""
    latest = (int(time.time() * 1000) if now_ms is None else now_ms) + config.rules.future_skew_ms
    return [e for e in events
            if 0 <= e.ts <= latest and (e.value is None or math.isfinite(e.value))]


def rating_signal(value: float, mean: float | None) -> float:
    return 1.0 + (value - (mean if mean is not None else value)) / RATING_SPREAD


def is_negative(event: Event) -> bool:
    """Negative feedback is absolute: dislike, skip, or a low rating."""
    return event.type in NEGATIVE_TYPES or (event.type == "rating" and event.value is not None and event.value <= LOW_RATING)


_ITEM_TAGS: dict[tuple[tuple[str, ...], tuple[str, ...]], list[tuple[str, float]]] = {}


def _item_tags(item: Item) -> list[tuple[str, float]]:
    """event_tags of an event without text: the item's own, the same for every
    event on it (memoised by value: a full refresh asks for them 100,000 times)."""
    key = (item.categories, item.tags)
    got = _ITEM_TAGS.get(key)
    if got is None:
        if len(_ITEM_TAGS) >= 100_000:
            _ITEM_TAGS.clear()
        seen: dict[str, float] = {}
        for tag, factor in [(c, 1.0) for c in item.categories] + [(t, ITEM_TAG_FACTOR) for t in item.tags]:
            seen[tag] = max(seen.get(tag, 0.0), factor)
        got = _ITEM_TAGS[key] = list(seen.items())
    return got


def event_tags(event: Event, item: Item | None) -> list[tuple[str, float]]:
    """(tag, factor) pairs an event speaks for."""
    out: list[tuple[str, float]] = []
    if is_statement(event):
        stated = pii.remove(event.text.strip())
        return [(stated, 1.0)] if stated else []
    if item is not None and not (event.text and event.type in ("tag", "review", "search")):
        return _item_tags(item)
    if item is not None:
        out.extend((c, 1.0) for c in item.categories)
        out.extend((t, ITEM_TAG_FACTOR) for t in item.tags)
    if event.text and event.type in ("tag", "review", "search"):
        out.extend((k, 1.0) for k in keywords(event.text))
    seen: dict[str, float] = {}
    for tag, factor in out:
        seen[tag] = max(seen.get(tag, 0.0), factor)
    return list(seen.items())


def event_class(event: Event, config: InterestConfig) -> tuple[str, float | None]:
    """Events of one class share their unit (type weight x rating signal), whatever the mean."""
    if event.type == "rating" and event.value is not None:
        return event.type, min(config.rules.rating_max, max(config.rules.rating_min, event.value))
    return event.type, None


def class_unit(key: tuple[str, float | None], mean: float | None, config: InterestConfig) -> float:
    """type weight x rating signal: a contribution before decay."""
    kind, value = key
    if kind in NEGATIVE_TYPES:
        return -NEGATIVE_WEIGHTS.get(kind, 1.0)
    unit = config.event_weights.get(kind, 1.0)
    if value is not None:
        unit *= rating_signal(value, mean)
    return unit


def tag_class_unit(key: tuple[tuple[str, float | None], float], mean: float | None, config: InterestConfig) -> float:
    """A tag class is (event class, tag factor)."""
    return class_unit(key[0], mean, config) * key[1]


class UnitCache(dict):
    """Units of the classes met while reading one profile (one mean, one config)."""

    def __init__(self, mean: float | None, config: InterestConfig) -> None:
        super().__init__()
        self.mean, self.config = mean, config

    def __missing__(self, key: tuple) -> float:
        unit = self[key] = class_unit(key, self.mean, self.config)
        return unit

    def of(self, event: Event) -> float:
        return self[event_class(event, self.config)]


class TagSums:
    """One tag's support, split by class (see event_class; plus the tag factor): a
    class's exact growth sum, its event count and its strongest MAX_EVIDENCE_IDS
    events. Within a class, contributions keep their order whatever the mean and the
    clock, so the strongest of each class hold the tag's strongest overall."""

    __slots__ = ("classes",)

    def __init__(self) -> None:
        # key -> [growth sum, count, sorted [(-growth, event_id)], the sum read at a scale, that scale]
        self.classes: dict[tuple, list] = {}

    def add(self, key: tuple, growth: int, event_id: str) -> None:
        entry = self.classes.get(key)
        if entry is None:
            self.classes[key] = [growth, 1, [(-growth, event_id)], 0.0, None]
            return
        entry[0] += growth
        entry[1] += 1
        entry[4] = None
        top = entry[2]
        strongest = (-growth, event_id)
        if len(top) < MAX_EVIDENCE_IDS:
            insort(top, strongest)
        elif strongest < top[-1]:
            insort(top, strongest)
            top.pop()

    @classmethod
    def of(cls, members_by_class: Mapping[tuple, list[tuple[int, str]]]) -> "TagSums":
        """From every event of the tag, by class: [(-growth, event_id)]."""
        out = cls()
        for key, members in members_by_class.items():
            if len(members) == 1:  # most tags of most users
                out.classes[key] = [-members[0][0], 1, members, 0.0, None]
            else:
                top = sorted(members) if len(members) <= MAX_EVIDENCE_IDS else heapq.nsmallest(MAX_EVIDENCE_IDS, members)
                out.classes[key] = [-sum(m[0] for m in members), len(members), top, 0.0, None]
        return out

    def plus(self, additions: Sequence[tuple[tuple, int, str]]) -> "TagSums":
        """A copy with more events (standing statements), this one untouched."""
        out = TagSums()
        out.classes = {key: [entry[0], entry[1], list(entry[2]), 0.0, None] for key, entry in self.classes.items()}
        for key, growth, event_id in additions:
            out.add(key, growth, event_id)
        return out


ItemEntry = tuple  # (ts, event_id, event, growth): an item's events, in time order


def horizon_from(
    tags: Mapping[str, TagSums], top_items: list[ItemSignal], n_events: int, since: int | None,
    mean: float | None, config: InterestConfig, clock: Clock, unwanted: frozenset[str],
) -> tuple[Horizon, list[WeightedTag]]:
    """A horizon from its tag sums and its top items. unwanted: casefolded stated dislikes; such a tag's
    positive evidence counts for nothing, and it is a dislike without the
    MIN_DISLIKE_EVIDENCE rule."""
    units: dict[tuple, float] = {}
    event_units = UnitCache(mean, config)
    values: dict[str, float] = {}
    negative_events: dict[str, int] = {}
    scale, remainder = clock.scale, clock.remainder
    for tag, sums in tags.items():
        skip_positive = bool(unwanted) and tag.casefold() in unwanted
        classes = sums.classes
        if len(classes) == 1 and not skip_positive:  # most tags: one class, and fsum of one value is that value
            ((key, entry),) = classes.items()
            unit = units.get(key) or units.setdefault(key, event_units[key[0]] * key[1])
            if unit == 0.0:
                continue
            if entry[4] != scale:
                entry[3], entry[4] = clock.share(entry[0]), scale
            values[tag] = unit * entry[3] * remainder
            negative_events[tag] = entry[1] if unit < 0 else 0
            continue
        parts: list[float] = []
        negatives = 0
        for key, entry in classes.items():
            unit = units.get(key)
            if unit is None:
                unit = units[key] = event_units[key[0]] * key[1]
            if unit == 0.0 or (unit > 0 and skip_positive):
                continue
            if entry[4] != clock.scale:  # the exact sum, read once per change and per half-life crossed
                entry[3], entry[4] = clock.share(entry[0]), clock.scale
            parts.append(unit * entry[3])
            if unit < 0:
                negatives += entry[1]
        if parts:
            values[tag] = math.fsum(parts) * clock.remainder
            negative_events[tag] = negatives
    positive_total = math.fsum(v for v in values.values() if v > 0)
    negative_total = -math.fsum(v for v in values.values() if v < 0)

    def tag_list(sign: int, total: float) -> list[WeightedTag]:
        chosen = [(t, v) for t, v in values.items() if (v > 0 if sign > 0 else v < 0)]
        if sign < 0:
            chosen = [(t, v) for t, v in chosen if t.casefold() in unwanted or negative_events[t] >= MIN_DISLIKE_EVIDENCE]
        out = []
        for tag, value in heapq.nsmallest(config.max_tags, chosen, key=lambda tv: (-abs(tv[1]), tv[0])):
            ids, count = strongest_evidence(tags[tag], units, sign, clock)
            out.append(WeightedTag(tag, sign * abs(value) / total if total else 0.0, ids, count))
        return out

    horizon = Horizon(
        tags=tag_list(+1, positive_total),
        top_items=top_items,
        events=n_events,
        since=since,
    )
    return horizon, tag_list(-1, negative_total)


def strongest_evidence(sums: TagSums, units: Mapping[tuple, float], sign: int, clock: Clock) -> tuple[list[str], int]:
    """The tag's strongest MAX_EVIDENCE_IDS events of this sign (by |contribution|, then
    event id), merged from its classes' heads, and how many events there are of this sign."""
    heads, count = [], 0
    for key, (_, n, top, _, _) in sums.classes.items():
        unit = units[key]
        if sign * unit > 0:
            count += n
            neg_growth, event_id = top[0]
            heads.append((-sign * clock.contribution(unit, -neg_growth), event_id, 0, unit, top))
    heapq.heapify(heads)
    ids: list[str] = []
    while heads and len(ids) < MAX_EVIDENCE_IDS:
        _, event_id, at, unit, top = heads[0]
        ids.append(event_id)
        if at + 1 < len(top):
            neg_growth, next_id = top[at + 1]
            heapq.heapreplace(heads, (-sign * clock.contribution(unit, -neg_growth), next_id, at + 1, unit, top))
        else:
            heapq.heappop(heads)
    return ids, count


def _title(item_id: str, items: Mapping[str, Item]) -> str:
    item = items.get(item_id)
    return item.title if item and item.title else item_id


def liked_items(item_events: Mapping[str, Sequence[ItemEntry]], items: Mapping[str, Item], units: UnitCache,
                config: InterestConfig, clock: Clock) -> list[ItemSignal]:
    """Items by their summed contribution; one whose latest word is negative is a
    dislike, never a favourite."""
    liked = []
    for item_id, entries in item_events.items():
        if is_negative(entries[-1][2]):
            continue
        parts: list[float] = []
        signal: list | None = None
        for _, event_id, ev, growth in entries:
            if ev.type == "search":
                continue
            unit = units.of(ev)
            if unit == 0.0:
                continue
            parts.append(clock.contribution(unit, growth))
            if signal is None or ev.type == "rating":  # the latest rating is the one that speaks
                signal = [event_id, ev.type, ev.value]
        if signal is not None:
            total = math.fsum(parts)
            if total > 0:
                liked.append(ItemSignal(item_id, _title(item_id, items), signal[0], signal[1], signal[2], total))
    liked.sort(key=lambda s: (-s.contribution, s.item_id))
    return liked[: config.max_items]


def disliked_items(item_events: Mapping[str, Sequence[ItemEntry]], items: Mapping[str, Item], mean: float | None,
                   config: InterestConfig, clock: Clock) -> list[ItemSignal]:
    """Items whose latest verdict is negative: a later like or purchase outweighs an old dislike."""
    out = []
    units = UnitCache(mean, config)
    for item_id, entries in item_events.items():
        for _, event_id, ev, growth in reversed(entries):
            if is_negative(ev):
                out.append(ItemSignal(item_id, _title(item_id, items), event_id, ev.type, ev.value,
                                      clock.contribution(units.of(ev), growth)))
                break
            if ev.type in ("like", "purchase"):
                break
    return out


def tag_sums(events: Sequence[Event], items: Mapping[str, Item], decay: "Decay", active_statements: set[str],
             config: InterestConfig) -> tuple[dict[str, "TagSums"], dict[str, list[ItemEntry]]]:
    """One pass over a horizon's events: each tag's sums per (event class, tag factor),
    and each item's events (statements that a later one replaced count for no tag)."""
    members: dict[str, dict[tuple, list[tuple[int, str]]]] = {}  # tag -> class -> [(-growth, event_id)]
    item_events: dict[str, list[ItemEntry]] = {}
    for ev in events:
        growth = decay.growth(ev.ts)
        if ev.item_id:
            item_events.setdefault(ev.item_id, []).append((ev.ts, ev.event_id, ev, growth))
        if is_statement(ev) and ev.event_id not in active_statements:
            continue
        item = items.get(ev.item_id) if ev.item_id else None
        cls = event_class(ev, config)
        for tag, factor in event_tags(ev, item):
            members.setdefault(tag, {}).setdefault((cls, factor), []).append((-growth, ev.event_id))
    return {tag: TagSums.of(by_class) for tag, by_class in members.items()}, item_events


def short_horizon(window: Sequence[Event], items: Mapping[str, Item], mean: float | None, config: InterestConfig,
                  now_ms: int, stated: Mapping[str, Event]) -> Horizon:
    """The short-term horizon from its window (at most short_window_events events),
    always computed whole."""
    decay = Decay(config.short_half_life_days * DAY_MS)
    tags, item_events = tag_sums(window, items, decay, {ev.event_id for ev in stated.values()}, config)
    clock = decay.clock(now_ms)
    top_items = liked_items(item_events, items, UnitCache(mean, config), config, clock)
    horizon, _ = horizon_from(tags, top_items, len(window), window[0].ts if window else None, mean, config, clock,
                              unwanted_tags(stated))
    return horizon


def short_window(events: Sequence[Event], config: InterestConfig) -> Sequence[Event]:
    """The last N events, but none older than D days before the latest one.

    Taking the smaller window keeps "now" meaningful both for people who rate
    hundreds of items in one sitting (MovieLens) and for sparse users.
    """
    if not events:
        return events
    cutoff = events[-1].ts - int(config.short_window_days * DAY_MS)
    by_days = next((i for i, e in enumerate(events) if e.ts >= cutoff), len(events))
    by_count = max(0, len(events) - config.short_window_events)
    return events[max(by_days, by_count):]


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two tag distributions."""
    keys = set(p) | set(q)
    sp, sq = sum(p.values()) or 1.0, sum(q.values()) or 1.0
    total = 0.0
    for k in keys:
        a, b = p.get(k, 0.0) / sp, q.get(k, 0.0) / sq
        m = (a + b) / 2
        if a > 0:
            total += 0.5 * a * math.log2(a / m)
        if b > 0:
            total += 0.5 * b * math.log2(b / m)
    return max(0.0, min(1.0, total))


def build_interest_profile(
    user_id: str, events: Sequence[Event], items: Mapping[str, Item], config: InterestConfig, last_event_seq: int = 0,
    now_ms: int | None = None,
) -> InterestProfile:
    """The reference: the whole history in one pass (profiles/interest_state.py keeps
    the same profile up to date event by event, and must equal this bit for bit).
    now_ms: the clock that decides which events lie in the future (default: now)."""
    given = len(events)
    events = sorted(usable_events(events, config, now_ms), key=lambda e: (e.ts, e.event_id))
    ignored = given - len(events)
    mean = user_mean_rating(events, config.rules.rating_min, config.rules.rating_max)
    now = events[-1].ts if events else 0
    if any(is_statement(ev) for ev in events):
        events = canonical_statements(events, statement_spelling(events, items))
    stated = stated_preferences(events)
    unwanted = unwanted_tags(stated)
    long_decay = Decay(config.long_half_life_days * DAY_MS)
    tags, item_events = tag_sums(events, items, long_decay, {ev.event_id for ev in stated.values()}, config)
    clock = long_decay.clock(now)
    top_items = liked_items(item_events, items, UnitCache(mean, config), config, clock)
    long_h, disliked_tags = horizon_from(tags, top_items, len(events), events[0].ts if events else None,
                                         mean, config, clock, unwanted)
    short_h = short_horizon(short_window(events, config), items, mean, config, now, stated)
    disliked = disliked_items(item_events, items, mean, config, clock)
    return assemble_profile(user_id, long_h, short_h, disliked_tags, disliked, config,
                            profile_stats(events, mean, ignored), last_event_seq)


def profile_stats(events: Sequence[Event], mean: float | None, ignored: int) -> dict[str, Any]:
    by_type: dict[str, int] = defaultdict(int)
    for ev in events:
        by_type[ev.type] += 1
    return stats_dict(len(events), by_type, mean, events[0].ts if events else None,
                      events[-1].ts if events else None, ignored)


def stats_dict(n: int, by_type: Mapping[str, int], mean: float | None, first: int | None, last: int | None,
               ignored: int) -> dict[str, Any]:
    stats = {
        "events": n,
        "events_by_type": dict(sorted(by_type.items())),
        "mean_rating": round(mean, 3) if mean is not None else None,
        "first_event_at": first,
        "last_event_at": last,
    }
    if ignored:
        stats["ignored_events"] = ignored
    return stats


def assemble_profile(
    user_id: str, long_h: Horizon, short_h: Horizon, disliked_tags: list[WeightedTag], disliked: list[ItemSignal],
    config: InterestConfig, stats: dict[str, Any], last_event_seq: int,
) -> InterestProfile:
    """Drift from the two horizons, and the profile."""
    long_w = {t.tag: t.weight for t in long_h.tags}
    short_w = {t.tag: t.weight for t in short_h.tags}
    deltas = {tag: short_w.get(tag, 0.0) - long_w.get(tag, 0.0) for tag in set(long_w) | set(short_w)}
    emerging = sorted((t for t, d in deltas.items() if d >= DRIFT_DELTA and t in short_w), key=lambda t: (-deltas[t], t))
    fading = sorted((t for t, d in deltas.items() if d <= -DRIFT_DELTA and t in long_w), key=lambda t: (deltas[t], t))
    return InterestProfile(
        user_id=user_id,
        long_term=long_h,
        short_term=short_h,
        disliked_tags=disliked_tags,
        disliked_items=sorted(disliked, key=lambda s: (s.contribution, s.item_id))[: config.max_items * 4],
        drift_score=js_divergence(short_w, long_w) if short_w and long_w else 0.0,
        emerging=emerging[:5],
        fading=fading[:5],
        stats=stats,
        last_event_seq=last_event_seq,
    )
