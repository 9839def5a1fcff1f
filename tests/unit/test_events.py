"""Row validation: every accepted shape and every rejection reason."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from tastebud.profiles.events import (
    Event,
    RowError,
    event_fields,
    event_values,
    iso,
    parse_event,
    parse_item,
    parse_timestamp,
    stable_event_id,
)

T0 = int(datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp())  # 1709294400


def rating(**over):
    row = {"user_id": "u1", "item_id": "i1", "type": "rating", "timestamp": str(T0), "value": "4.5"}
    row.update(over)
    return row


# ------------------------------------------------------------------ timestamps
@pytest.mark.parametrize(
    "raw",
    [
        "2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00+00:00",
        "2024-03-01T13:00:00+01:00",
        "2024-03-01T07:00:00-05:00",
        "2024-03-01T12:00:00",  # naive means UTC
        "2024-03-01 12:00:00",
        str(T0),  # epoch seconds
        str(T0 * 1000),  # epoch milliseconds
        f" {T0} ",
        f"{T0}.0",
        T0,
        T0 * 1000,
        float(T0),
    ],
)
def test_parse_timestamp_accepts_iso_and_epoch_forms(raw):
    assert parse_timestamp(raw) == T0 * 1000


def test_parse_timestamp_keeps_milliseconds_and_fractions():
    assert parse_timestamp("2024-03-01T12:00:00.250Z") == T0 * 1000 + 250
    assert parse_timestamp(T0 * 1000 + 7) == T0 * 1000 + 7
    assert parse_timestamp(f"{T0}.5") == T0 * 1000 + 500


def test_epoch_seconds_and_milliseconds_are_told_apart_at_the_threshold():
    assert parse_timestamp("99999999999") == 99999999999 * 1000  # the largest 11-digit seconds value
    assert parse_timestamp("100000000000") == 100000000000  # 12 digits: milliseconds (1973)
    assert parse_timestamp("0") == 0


@pytest.mark.parametrize(
    "raw, reason",
    [
        (None, "missing timestamp"),
        ("", "missing timestamp"),
        ("   ", "missing timestamp"),
        ("yesterday", "unparsable timestamp"),
        ("2024-13-45", "unparsable timestamp"),
        ("-5", "unparsable timestamp"),
        ("nan", "unparsable timestamp"),
        ("inf", "unparsable timestamp"),
        (True, "unparsable timestamp"),
        ("9" * 16, "timestamp in the future"),
        ("9" * 5000, "timestamp out of range"),
        (10**400, "timestamp in the future"),
    ],
)
def test_parse_timestamp_rejections(raw, reason):
    with pytest.raises(RowError, match=reason):
        parse_timestamp(raw)


def test_iso_round_trip():
    assert iso(T0 * 1000) == "2024-03-01T12:00:00Z"


# ------------------------------------------------------------------ events
def test_parse_event_normalises_a_clean_row():
    ev = parse_event(rating(user_id=" u1 ", item_id=" i1 ", type="Rating"))
    assert ev == Event(ev.event_id, "u1", "i1", "rating", T0 * 1000, 4.5, None)
    assert ev.timestamp == datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_event_id_is_given_or_a_stable_hash_of_the_fields():
    a, b = parse_event(rating()), parse_event(rating(timestamp="2024-03-01T12:00:00Z"))
    assert a.event_id == b.event_id  # same instant, same id, whatever the spelling
    assert parse_event(rating(value="4")).event_id != a.event_id
    assert parse_event(rating(event_id="e-42")).event_id == "e-42"
    # The id scheme is a stored contract: changing it would duplicate every re-ingested file.
    key = f"u1\x1fi1\x1frating\x1f{T0 * 1000}\x1f4.5\x1f"
    assert a.event_id == hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    assert a.event_id == stable_event_id("u1", "i1", "rating", T0 * 1000, 4.5, None)


def test_json_values_are_accepted_like_csv_strings():
    ev = parse_event({"user_id": 7, "item_id": 3.0, "type": "purchase", "timestamp": T0, "value": 2})
    assert (ev.user_id, ev.item_id, ev.value) == ("7", "3", 2.0)


def test_like_and_dislike_of_a_category_need_no_item_but_text():
    ev = parse_event({"user_id": "u", "type": "dislike", "timestamp": T0, "text": " Horror "})
    assert (ev.item_id, ev.type, ev.text) == (None, "dislike", "Horror")
    assert parse_event({"user_id": "u", "type": "like", "item_id": "i1", "timestamp": T0}).text is None


def test_search_needs_no_item_but_text():
    ev = parse_event({"user_id": "u", "type": "search", "timestamp": T0, "text": "  space opera "})
    assert ev.item_id is None and ev.text == "space opera"
    with pytest.raises(RowError, match="search event without text"):
        parse_event({"user_id": "u", "type": "search", "timestamp": T0})


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"user_id": None}, "missing user_id"),
        ({"user_id": "  "}, "missing user_id"),
        ({"user_id": "u" * 65}, "user_id longer than 64"),
        ({"user_id": {"a": 1}}, "id must be a scalar"),
        ({"type": None}, "missing type"),
        ({"type": "teleport"}, "unknown event type 'teleport'"),
        ({"item_id": ""}, "missing item_id for a rating event"),
        ({"item_id": "", "type": "dislike", "value": None}, "a dislike event needs an item_id, or a text naming a category"),
        ({"item_id": None, "type": "like", "value": None, "text": "  "}, "a like event needs an item_id, or a text naming a category"),
        ({"item_id": "i" * 65}, "item_id longer than 64"),
        ({"timestamp": "last tuesday"}, "unparsable timestamp"),
        ({"timestamp": None}, "missing timestamp"),
        ({"value": "five"}, "non-numeric rating 'five'"),
        ({"value": "nan"}, "non-numeric rating"),
        ({"value": "1e999"}, "non-numeric rating"),
        ({"value": 10**400}, "non-numeric rating"),
        ({"value": ""}, "rating event without a value"),
        ({"value": None}, "rating event without a value"),
        ({"type": "review", "value": None}, "review event without text"),
        ({"type": "tag", "value": None, "text": " "}, "tag event without text"),
        ({"type": "click", "value": "x"}, "non-numeric value 'x'"),
        ({"event_id": "e" * 65}, "event_id longer than 64"),
    ],
)
def test_parse_event_rejection_reasons(over, reason):
    with pytest.raises(RowError, match=reason):
        parse_event(rating(**over))


def test_event_values_is_event_fields_in_positional_form():
    row = rating(text="x", event_id=None)
    assert event_values(*(row.get(k) for k in ("user_id", "type", "item_id", "timestamp", "value", "text", "event_id"))) \
        == event_fields(row)


# ------------------------------------------------------------------ items
def test_parse_item_lists_and_attributes():
    item = parse_item({"item_id": "m1", "title": " Heat ", "categories": "Action|Crime| |Action",
                       "tags": '["slow burn", "heist"]', "attributes": '{"year": 1995}', "updated_at": "2024-01-01"})
    assert item.title == "Heat"
    assert item.categories == ("Action", "Crime")  # blanks and repeats dropped, order kept
    assert item.tags == ("slow burn", "heist")
    assert item.attributes == {"year": 1995}
    assert item.updated_at == parse_timestamp("2024-01-01T00:00:00Z")
    assert not item.is_stub


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"title": "x"}, "missing item_id"),
        ({"item_id": "m", "attributes": "{oops"}, "bad JSON in attributes"),
        ({"item_id": "m", "attributes": "[1, 2]"}, "attributes must be an object"),
        ({"item_id": "m", "categories": "[unclosed"}, "bad JSON in categories"),
        ({"item_id": "m", "tags": '[["nested"]]'}, "tags must be a list of strings"),
        ({"item_id": "m", "categories": '["\\ud800"]'}, "lone surrogate"),
        ({"item_id": "m", "updated_at": "soon"}, "unparsable timestamp"),
    ],
)
def test_parse_item_rejection_reasons(row, reason):
    with pytest.raises(RowError, match=reason):
        parse_item(row)


def test_millisecond_fractions_are_exact():
    """Float arithmetic stored about one such timestamp in 150 a millisecond early."""
    ms = 1079337347472
    assert parse_timestamp("1079337347.472") == ms
    assert parse_timestamp(1079337347.472) == ms
    assert parse_timestamp("2004-03-15T07:55:47.472Z") == ms
    assert parse_timestamp("2004-03-15T07:55:47.4725Z") == ms + 1  # sub-millisecond rounds half up
    assert iso(ms) == "2004-03-15T07:55:47.472000Z"
