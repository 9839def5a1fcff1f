"""The agent with the real embedded model (router driver): answers are grounded,
the injection changes nothing. Timings are printed (`pytest -m llm -s`), never asserted."""

from __future__ import annotations

import pytest

from tastebud.agent.agent import Agent
from tastebud.agent.roles import Principal, Role
from tests.agent_helpers import built_home, copy_home, make_app

pytestmark = pytest.mark.llm


@pytest.fixture
def app(home, tmp_path_factory, embedder, embedded_llm):
    copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)
    a = make_app(home, embedder, embedded_llm)
    yield a
    a.close()


def show(turn) -> None:
    ttft = "-" if turn.first_token_s is None else f"{turn.first_token_s:.1f} s"
    print(f"\n> {turn.question}\n  [{turn.plan}; {turn.phrased_by}; grounded={turn.grounded}; replaced={turn.replaced}; "
          f"first token {ttft}; total {turn.total_s:.1f} s]\n  {turn.answer}")
    if turn.replaced:
        print(f"  (model said: {turn.model_answer!r}; named {turn.ungrounded})")


def test_why_question_is_grounded(app):
    a = Agent(app, Principal(Role.USER, "1"))
    assert a.mode == "router"
    recs = a.ask("recommend me something to watch tonight")
    show(recs)
    assert recs.tool_calls[0].ok and recs.grounded
    why = a.ask("why the first one?")
    show(why)
    call = why.tool_calls[0]
    assert call.name == "explain" and call.ok and call.args["item_id"] == recs.items[0]["item_id"]
    assert why.grounded and why.answer.strip()


def test_recommend_something_like_x_is_grounded(app):
    a = Agent(app, Principal(Role.USER, "1"))
    turn = a.ask("recommend something like Toy Story")
    show(turn)
    args = turn.tool_calls[0].args
    assert args["seed"] == "1"  # seeded by Toy Story: its neighbours, ranked for the user
    assert turn.grounded and turn.items and all(i["item_id"] != "1" for i in turn.items)


def test_support_why_for_a_customer_is_grounded(app):
    rec = app.recommendations.recommend("3", 5, source="cli")
    a = Agent(app, Principal(Role.SUPPORT))
    turn = a.ask(f"why was item {rec.items[0].item_id} recommended to user 3?")
    show(turn)
    call = turn.tool_calls[0]
    assert call.name == "explain" and call.ok and call.args["user_id"] == "3"
    assert call.args["item_id"] == rec.items[0].item_id and turn.grounded


def test_injected_description_changes_nothing_with_the_real_model(app):
    user7 = app.profiles.require_latest("7")
    a = Agent(app, Principal(Role.USER, "1"))
    turn = a.ask("search for midnight lantern")
    show(turn)
    assert [c.name for c in turn.tool_calls] == ["search_items"] and turn.grounded
    assert user7["long_term"]["narrative"] not in turn.answer
    assert "Godfather" not in turn.answer
