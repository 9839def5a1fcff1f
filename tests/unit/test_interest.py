import pytest

from tastebud.profiles.events import Event
from tastebud.profiles.interest import InterestConfig, build_interest_profile, js_divergence, keywords, short_window
from tastebud.settings import DEFAULT_EVENT_WEIGHTS
from tests.profile_helpers import DAY, T0, item, rating

CONFIG = InterestConfig(event_weights=DEFAULT_EVENT_WEIGHTS, long_half_life_days=365, short_half_life_days=30,
                        short_window_events=20, short_window_days=30, max_tags=15)


def test_tag_weights_equal_hand_computed_values():
    items = {"A": item("A", ["Crime", "Drama"], ["heist"]), "B": item("B", ["Comedy"])}
    events = [rating("u", "A", 5.0, 0), rating("u", "B", 3.0, 365)]
    # mean rating 4.0; rating weight 2.0
    # A: signal 1 + (5-4)/2 = 1.5, age 365 d -> decay 0.5: c = 2 * 1.5 * 0.5 = 1.5
    # B: signal 1 + (3-4)/2 = 0.5, age 0 -> decay 1:      c = 2 * 0.5 * 1   = 1.0
    # Crime 1.5, Drama 1.5, heist 1.5 * 0.5 = 0.75, Comedy 1.0; total 4.75
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    weights = {t["tag"]: t["weight"] for t in profile["long_term"]["tags"]}
    assert weights == {
        "Crime": round(1.5 / 4.75, 4),
        "Drama": round(1.5 / 4.75, 4),
        "Comedy": round(1.0 / 4.75, 4),
        "heist": round(0.75 / 4.75, 4),
    }
    assert [t["tag"] for t in profile["long_term"]["tags"]] == ["Crime", "Drama", "Comedy", "heist"]
    crime = profile["long_term"]["tags"][0]
    assert crime["evidence_event_ids"] == [events[0].event_id]
    assert profile["stats"]["mean_rating"] == 4.0


def test_low_rating_below_mean_pushes_a_tag_negative_and_lists_the_item():
    items = {"A": item("A", ["Horror"]), "B": item("B", ["Horror"]), "C": item("C", ["Comedy"])}
    events = [rating("u", "C", 5.0, 0), rating("u", "A", 1.0, 1), rating("u", "B", 1.0, 2), rating("u", "C", 5.0, 3, n=2)]
    # mean 3.0: the 1-star ratings have signal 1 + (1-3)/2 = 0 -> no contribution, but they are disliked items
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    assert {i["item_id"] for i in profile["dislikes"]["items"]} == {"A", "B"}
    assert "Horror" not in {t["tag"] for t in profile["long_term"]["tags"]}


def test_explicit_dislikes_make_a_disliked_tag_with_evidence():
    items = {"A": item("A", ["Horror"]), "B": item("B", ["Horror"]), "C": item("C", ["Comedy"])}
    events = [
        rating("u", "C", 4.0, 0),
        Event("d1", "u", "A", "dislike", T0 + DAY, None),
        Event("d2", "u", "B", "skip", T0 + 2 * DAY, None),
    ]
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    disliked = {t["tag"]: t for t in profile["dislikes"]["tags"]}
    assert set(disliked) == {"Horror"}
    assert disliked["Horror"]["weight"] < 0
    assert sorted(disliked["Horror"]["evidence_event_ids"]) == ["d1", "d2"]


def test_recent_genre_switch_shows_up_as_emerging_and_fading():
    items = {f"c{i}": item(f"c{i}", ["Comedy"]) for i in range(40)} | {f"h{i}": item(f"h{i}", ["Horror"]) for i in range(20)}
    events = [rating("u", f"c{i}", 4.0, i) for i in range(40)] + [rating("u", f"h{i}", 4.0, 40 + i) for i in range(20)]
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    assert profile["drift"]["emerging"] == ["Horror"]
    assert profile["drift"]["fading"] == ["Comedy"]
    assert profile["drift"]["score"] > 0.3
    assert profile["short_term"]["tags"][0]["tag"] == "Horror"
    assert profile["long_term"]["tags"][0]["tag"] == "Comedy"


def test_stable_history_has_no_drift():
    items = {f"c{i}": item(f"c{i}", ["Comedy"]) for i in range(40)}
    events = [rating("u", f"c{i}", 4.0, i) for i in range(40)]
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    assert profile["drift"] == {"score": 0.0, "emerging": [], "fading": []}


def test_short_window_takes_last_n_events_but_no_older_than_d_days():
    events = [rating("u", f"x{i}", 4.0, i) for i in range(100)]
    assert len(short_window(events, CONFIG)) == 20  # 20 events span 20 days < 30
    sparse = [rating("u", f"x{i}", 4.0, i * 10) for i in range(100)]
    assert len(short_window(sparse, CONFIG)) == 4  # days 960..990 are within 30 days of 990


def test_review_and_search_text_contribute_keyword_tags():
    events = [
        Event("r1", "u", "A", "review", T0, None, "A gripping heist with brilliant pacing"),
        Event("s1", "u", None, "search", T0 + DAY, None, "space opera"),
    ]
    profile = build_interest_profile("u", events, {"A": item("A", ["Crime"])}, CONFIG).computed()
    tags = {t["tag"] for t in profile["long_term"]["tags"]}
    assert {"gripping", "heist", "brilliant", "pacing", "space opera", "Crime"} <= tags


def test_keywords_and_divergence_basics():
    assert keywords("Not a fan of the slow pacing in this movie") == ["fan", "slow", "pacing"]
    assert keywords("dark comedy") == ["dark comedy"]
    assert js_divergence({"a": 1.0}, {"a": 2.0}) == 0.0
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)


def test_a_low_rated_item_is_never_a_favourite_even_when_all_ratings_are_low():
    items = {"A": item("A", ["Drama"]), "B": item("B", ["War"])}
    events = [rating("u", "A", 0.5, 0), rating("u", "B", 0.5, 1)]
    # mean 0.5: each rating is at the mean (signal 1), so tags still gain weight,
    # but both items are low-rated and belong only in dislikes
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    assert profile["long_term"]["top_items"] == []
    assert {i["item_id"] for i in profile["dislikes"]["items"]} == {"A", "B"}


def _statement(event_id: str, kind: str, text: str, day: float) -> Event:
    return Event(event_id, "u", None, kind, int(T0 + day * DAY), None, text)


def test_a_stated_category_dislike_outweighs_a_history_of_liking_it():
    items = {"A": item("A", ["Horror"]), "B": item("B", ["Horror", "Thriller"]), "C": item("C", ["Comedy"])}
    events = [rating("u", "A", 5.0, 0), rating("u", "B", 5.0, 1), rating("u", "C", 4.0, 2),
              _statement("s1", "dislike", "horror", 3)]
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    for horizon in ("long_term", "short_term"):
        assert "Horror" not in {t["tag"] for t in profile[horizon]["tags"]}, horizon
    disliked = {t["tag"]: t for t in profile["dislikes"]["tags"]}
    # one statement is enough (no MIN_DISLIKE_EVIDENCE), spelled as the catalog spells it,
    # and its only evidence is the statement itself; the only negative tag, so its share is -1
    assert set(disliked) == {"Horror"}
    assert disliked["Horror"]["evidence_event_ids"] == ["s1"] and disliked["Horror"]["weight"] == -1.0
    # the rest of the history still counts: Thriller (from B) and Comedy stay liked
    assert {"Thriller", "Comedy"} <= {t["tag"] for t in profile["long_term"]["tags"]}


def test_a_later_like_statement_lifts_the_dislike_and_counts_as_interest():
    items = {"A": item("A", ["Horror"]), "C": item("C", ["Comedy"])}
    events = [rating("u", "A", 5.0, 0), rating("u", "C", 4.0, 1),
              _statement("s1", "dislike", "Horror", 2), _statement("s2", "like", "HORROR", 3)]
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    assert profile["dislikes"]["tags"] == []
    horror = next(t for t in profile["long_term"]["tags"] if t["tag"] == "Horror")
    assert set(horror["evidence_event_ids"]) == {"u-A-0", "s2"}  # the superseded dislike counts for nothing


def test_a_statement_about_a_tag_outside_the_users_items_keeps_its_spelling():
    items = {"C": item("C", ["Comedy"])}
    events = [rating("u", "C", 4.0, 0), _statement("s1", "like", "  film noir ", 1)]
    profile = build_interest_profile("u", events, items, CONFIG).computed()
    assert "film noir" in {t["tag"] for t in profile["long_term"]["tags"]}
