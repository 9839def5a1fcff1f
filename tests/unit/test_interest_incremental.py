"""The incremental interest state equals the full recomputation after every event,
bit for bit (the whole profile dict: tags, weights, evidence, dislikes, short
term, drift, stats), whatever order, duplicates or kinds of events arrive in."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tastebud.profiles import interest
from tastebud.profiles.events import Event, ValueRules
from tastebud.profiles.interest import InterestConfig, build_interest_profile
from tastebud.profiles.interest_state import InterestState
from tastebud.settings import DEFAULT_EVENT_WEIGHTS
from tests.profile_helpers import DAY, T0, item

NOW = T0 + 400 * DAY  # the clock both paths are read at; events after NOW + skew wait
SKEW = DAY
CONFIG = InterestConfig(event_weights=DEFAULT_EVENT_WEIGHTS, long_half_life_days=365, short_half_life_days=30,
                        short_window_events=5, short_window_days=30, max_tags=4, max_items=3,
                        rules=dataclasses.replace(ValueRules(), rating_min=0.5, rating_max=5.0, future_skew_ms=SKEW))
# Few items, shared and differently spelled categories, so tags collide, tie and flip sign.
ITEMS = {
    "a": item("a", ["Horror"], ["gore"]),
    "b": item("b", ["Horror", "Comedy"]),
    "c": item("c", ["Comedy"], ["horror"]),
    "d": item("d", ["Drama"], ["gore", "slow"]),
    "e": item("e", []),
}

days = st.one_of(st.integers(0, 400), st.sampled_from([0, 10, 200, 399, 400]), st.integers(401, 800),
                 st.just(-30_000))  # past the clock, and before 1970 (T0 is 2020)
ratings = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0]), st.floats(-3, 9, allow_nan=False),
                    st.just(float("nan")))


@st.composite
def event_streams(draw):
    events: list[Event] = []
    for n in range(draw(st.integers(1, 30))):
        if events and draw(st.integers(0, 9)) == 0:  # a duplicate: the same id again (maybe changed); first wins
            events.append(dataclasses.replace(draw(st.sampled_from(events)), value=draw(ratings)))
            continue
        kind = draw(st.sampled_from(["rating", "rating", "rating", "view", "click", "purchase", "like", "dislike",
                                     "skip", "tag", "search", "statement_like", "statement_dislike"]))
        day = draw(days)
        ts = T0 + day * DAY + draw(st.sampled_from([0, 0, 1, 3_600_000]))
        if kind.startswith("statement_"):
            text = draw(st.sampled_from(["horror", "Horror ", "comedy", "gore", "westerns"]))
            events.append(Event(f"e{n}", "u", None, kind.split("_")[1], ts, None, text))
            continue
        item_id = None if kind == "search" and draw(st.booleans()) else draw(st.sampled_from(sorted(ITEMS) + ["gone"]))
        value = draw(ratings) if kind == "rating" else None
        if kind == "rating" and draw(st.integers(0, 9)) == 0:
            value = None
        text = draw(st.sampled_from(["scary fun", "slow burn drama with gore", "horror"])) if kind in ("tag", "search") else None
        events.append(Event(f"e{n}", "u", item_id, kind, ts, value, text))
    return events


def full_profile(events: list[Event], items=ITEMS) -> interest.InterestProfile:
    first_seen: dict[str, Event] = {}
    for ev in events:
        first_seen.setdefault(ev.event_id, ev)  # the store keeps the first copy of an id
    return build_interest_profile("u", list(first_seen.values()), items, CONFIG, 7, now_ms=NOW)


def assert_same(incremental: interest.InterestProfile, full: interest.InterestProfile) -> None:
    assert incremental.computed() == full.computed()  # what the rest of the system sees (and hashes)
    assert incremental == full  # and every float before rounding, bit for bit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(), st.integers(1, 3), st.sampled_from([2, 20]))
def test_incremental_equals_full_after_every_step(events, step, evidence_ids):
    """evidence_ids 2: the bounded per-class evidence lists must still hold the strongest."""
    kept, interest.MAX_EVIDENCE_IDS = interest.MAX_EVIDENCE_IDS, evidence_ids
    try:
        state = InterestState("u", CONFIG, ITEMS)
        for end in range(step, len(events) + step, step):
            state.add(events[end - step:end], now_ms=NOW)
            assert_same(state.profile(7, now_ms=NOW), full_profile(events[:end]))
    finally:
        interest.MAX_EVIDENCE_IDS = kept


@settings(max_examples=50, deadline=None)
@given(event_streams())
def test_future_events_count_once_the_clock_reaches_them(events):
    state = InterestState("u", CONFIG, ITEMS)
    state.add(events, now_ms=NOW)
    later = NOW + 500 * DAY
    expected = build_interest_profile("u", list({e.event_id: e for e in reversed(events)}.values()), ITEMS, CONFIG,
                                      7, now_ms=later)
    assert_same(state.profile(7, now_ms=later), expected)


def test_many_tied_item_dislikes_keep_the_full_orders_first():
    """More disliked items than the list holds, all at one time: ties go by item id."""
    items = {f"i{n:02d}": item(f"i{n:02d}", ["Drama"]) for n in range(30)}
    events = [Event("top", "u", "i00", "rating", T0, 5.0)]
    events += [Event(f"r{n}", "u", f"i{n:02d}", "rating", T0 + DAY, 2.0) for n in range(29, 0, -1)]
    state = InterestState("u", CONFIG, items)
    state.add(events, now_ms=NOW)
    full = full_profile(events, items)
    assert len(full.disliked_items) == CONFIG.max_items * 4 < 29
    assert_same(state.profile(7, now_ms=NOW), full)


def test_a_heavy_users_evidence_is_bounded_but_counted():
    events = [Event(f"r{i}", "u", "d", "rating", T0 + i * DAY, 4.0 + (i % 3) / 2) for i in range(60)]
    tags = {t["tag"]: t for t in full_profile(events).computed()["long_term"]["tags"]}
    assert tags["Drama"]["evidence_count"] == 60
    assert len(tags["Drama"]["evidence_event_ids"]) == 20


def test_the_mean_is_the_exact_sum_whatever_the_arrival_order():
    """0.7 + 1.1 + 3.3 + 1.3 added in this order is 6.3999999999999995 in floats; the
    exact sum is 6.4. Both paths must use the exact one, or every weight moves."""
    events = [Event(f"r{n}", "u", key, "rating", T0 + (4 - n) * DAY, value)
              for n, (key, value) in enumerate(zip("abcd", (0.7, 1.1, 3.3, 1.3)))]
    state = InterestState("u", CONFIG, ITEMS)
    for ev in events:
        state.add([ev], now_ms=NOW)
    assert_same(state.profile(7, now_ms=NOW), full_profile(events))
