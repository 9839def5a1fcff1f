"""The value rules (issue 10): every format of timestamp, every rating and every
text goes through the same bounds, and one bad row cannot capture a profile."""

from __future__ import annotations

import time

import pytest

from tastebud.profiles.events import DEFAULT_RULES, Event, Item, RowError, ValueRules, parse_event, parse_item
from tastebud.profiles.interest import InterestConfig, build_interest_profile, user_mean_rating

T0 = 1_700_000_000  # 2023-11-14, epoch seconds


def event(**fields):
    base = {"user_id": "1", "item_id": "318", "type": "view", "timestamp": T0}
    base.update(fields)
    return parse_event(base)


@pytest.mark.parametrize("raw", [
    "9999-12-31T23:59:59-12:00",   # the probe's value: overflowed every read
    "0001-01-01T00:00:00+14:00",   # and its twin, through first_event_at
    "1900-01-01Z",                 # accepted by the ISO branch while -1 was refused
    "1969-12-31T23:59:59Z",
    "2999-01-01T00:00:00Z",        # in range for datetime, far in the future
    -1,
    "99999999999999",              # epoch ms in year 5138
])
def test_every_timestamp_format_has_the_same_bounds(raw):
    with pytest.raises(RowError) as info:
        event(timestamp=raw)
    assert "timestamp" in str(info.value)


def test_future_timestamps_get_the_clock_skew_tolerance_and_no_more():
    now = time.time()
    assert event(timestamp=int(now + 3600)).ts == int(now + 3600) * 1000  # an hour ahead: skew
    with pytest.raises(RowError, match="in the future"):
        event(timestamp=int(now + 2 * 86400))
    strict = ValueRules(future_skew_ms=0)
    with pytest.raises(RowError, match="in the future"):
        parse_event({"user_id": "1", "item_id": "1", "type": "view", "timestamp": int(now + 60)}, strict)


def test_iso_and_epoch_spellings_of_one_instant_agree():
    assert event(timestamp="2023-11-14T22:13:20Z").ts == event(timestamp=T0).ts == event(timestamp=T0 * 1000).ts
    assert event(timestamp="2023-11-14T23:13:20+01:00").ts == T0 * 1000


@pytest.mark.parametrize("value", ["1e300", 1e300, "99", -5, "0", 5.5, "-0.0001"])
def test_ratings_off_the_scale_are_refused(value):
    with pytest.raises(RowError, match="outside the scale 0.5-5"):
        event(type="rating", value=value)


@pytest.mark.parametrize("value", ["0.5", 5, "3.5", 1])
def test_ratings_on_the_scale_pass(value):
    assert event(type="rating", value=value).value == float(value)


def test_other_values_are_bounded_not_scaled():
    assert event(type="purchase", value=9.99).value == 9.99  # a price, not a rating
    with pytest.raises(RowError, match="outside"):
        event(type="purchase", value=1e300)


def test_the_scale_is_configurable():
    hundred_k = ValueRules(rating_min=1.0, rating_max=5.0)
    with pytest.raises(RowError, match="outside the scale 1-5"):
        parse_event({"user_id": "1", "item_id": "1", "type": "rating", "timestamp": T0, "value": "0.5"}, hundred_k)
    ten = ValueRules(rating_min=1.0, rating_max=10.0)
    assert parse_event({"user_id": "1", "item_id": "1", "type": "rating", "timestamp": T0, "value": 9}, ten).value == 9


@pytest.mark.parametrize("text,reason", [
    ({"a": 1}, "text must be a string, got dict"),
    ([[["deep"]]], "text must be a string, got list"),
    (True, "text must be a string, got bool"),
])
def test_text_must_be_a_string(text, reason):
    with pytest.raises(RowError, match=reason):
        event(type="review", text=text)


def test_deeply_nested_text_is_refused_not_stringified():
    nested: list = []
    for _ in range(950):
        nested = [nested]
    with pytest.raises(RowError, match="must be a string"):
        event(type="review", text=nested)


def test_text_is_bounded_and_a_number_is_its_digits():
    with pytest.raises(RowError, match="longer than 10000 characters"):
        event(type="review", text="x" * 10_001)
    assert event(type="review", text="y" * 10_000).text == "y" * 10_000
    assert event(type="search", item_id=None, text=1984).text == "1984"


def test_error_messages_quote_a_bounded_part_of_the_input():
    huge = "9" * 900_000
    for fields in ({"timestamp": huge + "x"}, {"type": "rating", "value": huge + "x"}, {"user_id": huge},
                   {"type": huge}, {"timestamp": "2023-" + "x" * 900_000}):
        with pytest.raises(RowError) as info:
            event(**fields)
        assert len(str(info.value)) <= 150, fields


def test_catalog_rows_follow_the_same_rules():
    with pytest.raises(RowError, match="title must be a string"):
        parse_item({"item_id": "1", "title": {"en": "Heat"}})
    with pytest.raises(RowError, match="timestamp"):
        parse_item({"item_id": "1", "title": "Heat", "updated_at": "9999-12-31T23:59:59-12:00"})
    with pytest.raises(RowError, match="description longer"):
        parse_item({"item_id": "1", "description": "d" * 10_001})
    assert parse_item({"item_id": "1", "title": "Heat", "updated_at": T0}).updated_at == T0 * 1000


# ------------------------------------------------------------- profiles robust to outliers

ITEMS = {
    "a": Item("a", "Heat", categories=("Crime",)),
    "b": Item("b", "Paddington", categories=("Comedy",)),
    "c": Item("c", "Alien", categories=("Horror",)),
}


def ev(n: int, item: str, value: float | None = 4.0, ts: int | None = None, type_: str = "rating") -> Event:
    return Event(f"e{n}", "u", item, type_, ts if ts is not None else (T0 + n * 86400) * 1000, value)


def test_clipped_mean():
    events = [ev(1, "a", 4.0), ev(2, "b", 1e300), ev(3, "c", -5.0)]
    assert user_mean_rating(events, 0.5, 5.0) == pytest.approx((4.0 + 5.0 + 0.5) / 3)
    assert user_mean_rating([ev(1, "a", float("nan")), ev(2, "b", 3.0)], 0.5, 5.0) == 3.0


def test_one_legacy_row_cannot_capture_a_profile():
    """Rows an older version stored (before the rules): a rating of 1e300 and a
    year-9999 timestamp. The rating is clipped to the scale, the future event is
    left out, so recency is still measured from the user's real latest event."""
    config = InterestConfig(event_weights={"rating": 2.0, "view": 0.5})
    clean = [ev(1, "a", 5.0), ev(2, "a", 4.5), ev(3, "b", 3.0), ev(4, "a", 4.0)]
    base = build_interest_profile("u", clean, ITEMS, config)
    future = Event("e9", "u", "c", "rating", 253402300799000, 5.0)
    with_future = build_interest_profile("u", clean + [future], ITEMS, config)
    assert with_future.long_term.tags == base.long_term.tags
    assert with_future.stats["last_event_at"] == base.stats["last_event_at"]
    assert with_future.stats["ignored_events"] == 1

    huge = build_interest_profile("u", clean + [ev(5, "b", 1e300)], ITEMS, config)
    assert huge.stats["mean_rating"] <= 5.0
    assert {t.tag for t in huge.long_term.tags} == {"Crime", "Comedy"}
    # Crime keeps a real share: one absurd rating of Paddington does not wipe it out.
    crime = next(t.weight for t in huge.long_term.tags if t.tag == "Crime")
    assert crime > 0.3


def test_default_rules_match_the_default_settings(settings):
    assert ValueRules.from_settings(settings) == DEFAULT_RULES
