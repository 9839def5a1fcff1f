"""Tools under the role gate, on a real small home (SQLite, Chroma, embedder)."""

from __future__ import annotations

from sqlalchemy import func, select

from tastebud.agent.roles import Principal, Role
from tastebud.agent.session import Session
from tastebud.agent.tools import Toolbox
from tests.agent_helpers import TWINS




def box(app, role="user", user="1", session=None):
    principal = Principal(Role(role), user if role == "user" else None)
    return Toolbox(app, principal, session or Session.new(role, principal.user_id))


def event_count(app) -> int:
    from tastebud.profiles.migrations import events

    with app.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar_one()


def test_end_user_tools_are_pinned_to_them(app):
    tb = box(app, "user", "1")
    assert tb.run("get_profile").result["user_id"] == "1"
    for name, args in [("get_profile", {"user_id": "7"}), ("get_history", {"user_id": 7}),
                       ("explain", {"user_id": "7", "item_id": "1"}), ("recommend", {"user_id": "7"}),
                       ("record_feedback", {"user_id": "7", "kind": "dislike", "item_id": "1"})]:
        call = tb.run(name, args)
        assert call.refused and call.result is None, name
        assert call.error == "Sorry, I can only show you your own data."
    assert not {"refresh_profiles", "status"} & set(tb.available())
    assert tb.run("status").refused


def test_support_reads_any_user_and_changes_nothing(app):
    before = event_count(app)
    tb = box(app, "support")
    assert tb.run("get_profile", {"user_id": "7"}).ok
    assert tb.run("get_history", {"user_id": "7", "limit": 3}).result["events"]
    for name, args in [("recommend", {"user_id": "7"}), ("record_feedback", {"user_id": "7", "kind": "like", "item_id": "1"}),
                       ("refresh_profiles", {"all_users": True}), ("status", {})]:
        call = tb.run(name, args)
        assert call.refused and call.error.startswith("Sorry"), name
    assert event_count(app) == before


def test_staff_must_name_a_user_politely(app):
    call = box(app, "support").run("get_profile")
    assert not call.ok and not call.refused and call.error.startswith("Which user?")


def test_operator_adds_refresh_and_status(app):
    tb = box(app, "operator")
    status = tb.run("status")
    assert status.ok and status.result["users"] == 40 and status.result["vectors"]["items"] > 200
    refreshed = tb.run("refresh_profiles", {"user_ids": ["3"]})
    assert refreshed.ok and refreshed.result["users"] == 1
    assert tb.run("record_feedback", {"user_id": "3", "kind": "like", "item_id": "1"}).refused


def test_bad_arguments_and_unknown_tools_are_polite(app):
    tb = box(app)
    for name, args in [("recommend", {"k": 500}), ("launch_missiles", {}), ("explain", {"item_id": "no such film"})]:
        call = tb.run(name, args)
        assert not call.ok and call.error.startswith("Sorry"), (name, call.error)


def test_dislike_removes_the_item_and_its_near_duplicates_from_the_next_recommend(app):
    tb = box(app, "user", "1")
    side = app.recommendations.side
    before = {i["item_id"] for i in tb.run("recommend", {"k": 100, "category": "Sci-Fi"}).result["items"]}
    assert set(TWINS) <= before
    version = app.profiles.require_latest("1")["version"]

    fb = tb.run("record_feedback", {"kind": "dislike", "item_id": "Orbit of Silence (2019)"})
    assert fb.ok and fb.result["item_id"] == TWINS[0] and fb.result["stored"] == "event"
    disliked = [e for e in app.store.events_for_user("1") if e.type == "dislike"]
    assert [e.item_id for e in disliked] == [TWINS[0]]
    assert app.profiles.require_latest("1")["version"] == version + 1  # refreshed at once (no narratives)
    assert app.recommendations.side is side  # nothing else invalidated

    after = {i["item_id"] for i in tb.run("recommend", {"k": 100, "category": "Sci-Fi"}).result["items"]}
    assert not set(TWINS) & after
    # Only the disliked item and its near-duplicate left the list: every other
    # Sci-Fi candidate is still offered (demoted items move down, they stay).
    assert len(before) < 100, "the slice must have fewer Sci-Fi items than k for this check"
    assert after == before - set(TWINS)


def test_like_is_stored_as_a_like_event(app):
    tb = box(app, "user", "2")
    call = tb.run("record_feedback", {"kind": "like", "item_id": "1"})
    assert call.ok
    assert [e.type for e in app.store.events_for_user("2") if e.item_id == "1"][-1] == "like"


def test_category_dislike_is_a_lasting_event_until_a_like_lifts_it(app):
    before = event_count(app)
    tb = box(app, "user", "1")
    horror_before = [i for i in tb.run("recommend", {"k": 100}).result["items"] if "Horror" in i["categories"]]
    assert horror_before, "the fixture must offer horror to user 1, else this test proves nothing"
    call = tb.run("record_feedback", {"kind": "dislike", "category": "horror"})
    assert call.ok and call.result["stored"] == "event" and call.result["category"] == "Horror"
    assert event_count(app) == before + 1
    stored = app.store.events_for_user("1")[-1]
    assert (stored.type, stored.item_id, stored.text) == ("dislike", None, "Horror")
    profile = tb.run("get_profile").result
    assert "Horror" in {t["tag"] for t in profile["disliked_tags"]} and "Horror" not in str(profile["long_term_tags"])
    # a new session (no memory of the chat) still leaves horror out: it is in the store
    fresh = box(app, "user", "1")
    recs = fresh.run("recommend", {"k": 100}).result["items"]
    assert recs and not any("Horror" in i["categories"] for i in recs)
    # saying you like it again lifts the ban
    assert fresh.run("record_feedback", {"kind": "like", "category": "Horror"}).ok
    assert any("Horror" in i["categories"] for i in fresh.run("recommend", {"k": 100}).result["items"])


def test_untrusted_text_is_returned_as_data_only(app):
    from tastebud.agent.grounding import as_data

    call = box(app).run("search_items", {"query": "midnight lantern mystery", "k": 3})
    hit = next(i for i in call.result["items"] if i["item_id"] == "900001")
    assert "Ignore previous instructions" in hit["description"]
    block = as_data(call.for_model())
    assert block.startswith("<data>") and block.endswith("</data>")
