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

import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from tastebud.profiles.events import DEFAULT_RULES, NEGATIVE_TYPES, PREFERENCE_TYPES, Event, Item, ValueRules

DAY_MS = 86_400_000
RATING_SPREAD = 2.0
ITEM_TAG_FACTOR = 0.5
LOW_RATING = 2.0  # at or below: the item is disliked, for good
NEGATIVE_WEIGHTS = {"dislike": 3.0, "skip": 1.0}
DRIFT_DELTA = 0.05  # share change that makes a tag emerging or fading
MIN_DISLIKE_EVIDENCE = 2  # one bad film's trivia tags are not a dislike

_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have i in is it its of on or so that the this to was were "
    "with not very just too really it's i'm movie movies film films one good great like liked love loved "
    "show shows watch watched best bad more most some any all about what who how".split()
)
_WORD = re.compile(r"[a-z][a-z'\-]{2,}")


def keywords(text: str, limit: int = 5) -> list[str]:
    """The documented extractor: lowercase words of 3+ letters, minus stopwords,
    first occurrences, at most `limit`. A short tag (<= 3 words) is kept whole."""
    lowered = text.strip().lower()
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
    evidence_event_ids: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "weight": round(self.weight, 4),
            "evidence_count": len(self.evidence_event_ids),
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
    return sum(ratings) / len(ratings) if ratings else None


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


def _canonical_statements(events: Sequence[Event], items: Mapping[str, Item]) -> Sequence[Event]:
    """Statements spelled like the catalog ("horror" -> "Horror") so they meet the
    category tags the user's items carry."""
    if not any(is_statement(ev) for ev in events):
        return events
    spelling: dict[str, str] = {}
    for ev in events:
        item = items.get(ev.item_id) if ev.item_id else None
        if item is not None:
            for name in (*item.categories, *item.tags):
                spelling.setdefault(name.casefold(), name)
    return [replace(ev, text=spelling.get(ev.text.strip().casefold(), ev.text.strip())) if is_statement(ev) else ev
            for ev in events]


def stated_dislikes(events: Sequence[Event]) -> list[str]:
    """Categories/tags the user said they do not want (as they wrote them)."""
    return [ev.text.strip() for ev in stated_preferences(events).values() if ev.type == "dislike"]


def _event_tags(event: Event, item: Item | None) -> list[tuple[str, float]]:
    """(tag, factor) pairs an event speaks for."""
    out: list[tuple[str, float]] = []
    if is_statement(event):
        return [(event.text.strip(), 1.0)]
    if item is not None:
        out.extend((c, 1.0) for c in item.categories)
        out.extend((t, ITEM_TAG_FACTOR) for t in item.tags)
    if event.text and event.type in ("tag", "review", "search"):
        out.extend((k, 1.0) for k in keywords(event.text))
    seen: dict[str, float] = {}
    for tag, factor in out:
        seen[tag] = max(seen.get(tag, 0.0), factor)
    return list(seen.items())


def _contribution(event: Event, mean: float | None, config: InterestConfig, now_ms: int, half_life_days: float) -> float:
    if event.type in NEGATIVE_TYPES:
        base = -NEGATIVE_WEIGHTS.get(event.type, 1.0)
    else:
        base = config.event_weights.get(event.type, 1.0)
        if event.type == "rating" and event.value is not None:
            base *= rating_signal(min(config.rules.rating_max, max(config.rules.rating_min, event.value)), mean)
    age_days = max(0.0, (now_ms - event.ts) / DAY_MS)
    return base * 0.5 ** (age_days / half_life_days)


def _horizon(
    events: Sequence[Event], items: Mapping[str, Item], mean: float | None, config: InterestConfig,
    now_ms: int, half_life_days: float, stated: Mapping[str, Event] | None = None,
) -> tuple[Horizon, list[WeightedTag]]:
    """stated: the user's standing statements (see stated_preferences). A stated
    dislike is absolute: it cancels that tag's positive evidence and is a dislike
    without the MIN_DISLIKE_EVIDENCE rule; superseded statements count for nothing."""
    stated = stated or {}
    active = {ev.event_id for ev in stated.values()}
    unwanted = {key for key, ev in stated.items() if ev.type == "dislike"}
    sums: dict[str, float] = defaultdict(float)
    support: dict[str, list[tuple[float, str]]] = defaultdict(list)
    per_item: dict[str, ItemSignal] = {}
    for ev in events:
        if is_statement(ev) and ev.event_id not in active:
            continue
        item = items.get(ev.item_id) if ev.item_id else None
        c = _contribution(ev, mean, config, now_ms, half_life_days)
        if c == 0.0:
            continue
        for tag, factor in _event_tags(ev, item):
            if unwanted and c > 0 and tag.casefold() in unwanted:  # (hot loop: most users state nothing)
                continue
            sums[tag] += c * factor
            support[tag].append((c * factor, ev.event_id))
        if ev.item_id and ev.type not in ("search",):
            prev = per_item.get(ev.item_id)
            title = (item.title if item and item.title else ev.item_id)
            if prev is None:
                per_item[ev.item_id] = ItemSignal(ev.item_id, title, ev.event_id, ev.type, ev.value, c)
            else:
                prev.contribution += c
                if ev.type == "rating":  # the latest rating is the one that speaks
                    prev.value, prev.event_id, prev.type = ev.value, ev.event_id, ev.type
    positive_total = sum(v for v in sums.values() if v > 0)
    negative_total = -sum(v for v in sums.values() if v < 0)

    def tag_list(sign: int, total: float) -> list[WeightedTag]:
        chosen = [(t, v) for t, v in sums.items() if (v > 0 if sign > 0 else v < 0)]
        if sign < 0:
            chosen = [(t, v) for t, v in chosen
                      if t.casefold() in unwanted or sum(1 for c, _ in support[t] if c < 0) >= MIN_DISLIKE_EVIDENCE]
        chosen.sort(key=lambda tv: (-abs(tv[1]), tv[0]))
        out = []
        for tag, value in chosen[: config.max_tags]:
            ids = [eid for c, eid in sorted(support[tag], key=lambda ce: (-sign * ce[0], ce[1])) if sign * c > 0]
            out.append(WeightedTag(tag, sign * abs(value) / total if total else 0.0, ids))
        return out

    latest = {ev.item_id: ev for ev in events if ev.item_id}
    # An item whose latest word is negative is a dislike, never a favourite.
    liked = sorted(
        (s for s in per_item.values() if s.contribution > 0 and not is_negative(latest[s.item_id])),
        key=lambda s: (-s.contribution, s.item_id),
    )
    horizon = Horizon(
        tags=tag_list(+1, positive_total),
        top_items=liked[: config.max_items],
        events=len(events),
        since=events[0].ts if events else None,
    )
    return horizon, tag_list(-1, negative_total)


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
    user_id: str, events: Sequence[Event], items: Mapping[str, Item], config: InterestConfig, last_event_seq: int = 0
) -> InterestProfile:
    given = len(events)
    events = sorted(usable_events(events, config), key=lambda e: (e.ts, e.event_id))
    ignored = given - len(events)
    mean = user_mean_rating(events, config.rules.rating_min, config.rules.rating_max)
    now_ms = events[-1].ts if events else 0
    events = _canonical_statements(events, items)
    stated = stated_preferences(events)
    long_h, disliked_tags = _horizon(events, items, mean, config, now_ms, config.long_half_life_days, stated)
    recent = short_window(events, config)
    short_h, _ = _horizon(recent, items, mean, config, now_ms, config.short_half_life_days, stated)

    long_w = {t.tag: t.weight for t in long_h.tags}
    short_w = {t.tag: t.weight for t in short_h.tags}
    deltas = {tag: short_w.get(tag, 0.0) - long_w.get(tag, 0.0) for tag in set(long_w) | set(short_w)}
    emerging = sorted((t for t, d in deltas.items() if d >= DRIFT_DELTA and t in short_w), key=lambda t: (-deltas[t], t))
    fading = sorted((t for t, d in deltas.items() if d <= -DRIFT_DELTA and t in long_w), key=lambda t: (deltas[t], t))

    disliked: dict[str, ItemSignal] = {}
    for ev in events:
        if ev.item_id and is_negative(ev):
            item = items.get(ev.item_id)
            disliked[ev.item_id] = ItemSignal(
                ev.item_id, (item.title if item and item.title else ev.item_id), ev.event_id, ev.type, ev.value,
                _contribution(ev, mean, config, now_ms, config.long_half_life_days),
            )
        elif ev.item_id and ev.item_id in disliked and ev.type in ("like", "purchase"):
            disliked.pop(ev.item_id)  # a later explicit positive outweighs an old dislike
    by_type: dict[str, int] = defaultdict(int)
    for ev in events:
        by_type[ev.type] += 1
    stats = {
        "events": len(events),
        "events_by_type": dict(sorted(by_type.items())),
        "mean_rating": round(mean, 3) if mean is not None else None,
        "first_event_at": events[0].ts if events else None,
        "last_event_at": now_ms if events else None,
    }
    if ignored:
        stats["ignored_events"] = ignored
    return InterestProfile(
        user_id=user_id,
        long_term=long_h,
        short_term=short_h,
        disliked_tags=disliked_tags,
        disliked_items=sorted(disliked.values(), key=lambda s: (s.contribution, s.item_id))[: config.max_items * 4],
        drift_score=js_divergence(short_w, long_w) if short_w and long_w else 0.0,
        emerging=emerging[:5],
        fading=fading[:5],
        stats=stats,
        last_event_seq=last_event_seq,
    )
