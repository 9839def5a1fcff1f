"""Live updates (tastebud/live/) over a real home: SQLite, Chroma and the real
embedder; narratives from a fake chat model. Background work is awaited by
polling its outcome against a generous deadline, never by timing it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from tastebud.live import LiveUpdates
from tastebud.profiles.events import Event
from tastebud.profiles.migrations import narrative_queue
from tastebud.profiles.narrative import template_narrative
from tests.agent_helpers import built_home, copy_home

pytestmark = pytest.mark.integration

# Passes the grounding checker for any user: no titles, genres or ratings.
GROUNDED = (
    "LONG: This viewer enjoys thoughtful stories with memorable characters. They often return to old favourites.\n"
    "SHORT: Lately this viewer keeps watching steadily.\n"
    "TAGS:"
)


def _chat_class():
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class CountingChat(BaseChatModel):
        """Answers GROUNDED, or fails, or hangs until released; counts its calls."""

        answer: str = GROUNDED
        error: str | None = None
        hang: Any = None  # a threading.Event: the call waits for it
        calls: list = []

        @property
        def _llm_type(self) -> str:
            return "counting-fake"

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            self.calls.append(messages)
            if self.error:
                raise ConnectionError(self.error)
            if self.hang is not None:
                self.hang.wait(60)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(self.answer))])

    return CountingChat


def counting_llm(**kwargs: Any):
    from tastebud.llm import LLM

    chat = _chat_class()(calls=[], **kwargs)
    return LLM.from_chat_model(chat), chat


@pytest.fixture
def live_home(home, tmp_path_factory, embedder):
    """The agent tests' small home (ml-small slice, refreshed without narratives, indexed)."""
    return copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)


@pytest.fixture
def make_app(live_home, embedder):
    from tastebud.settings import load_settings
    from tastebud.app import App

    apps: list[Any] = []

    def make(llm: Any = None, **settings: Any):
        app = App(load_settings(home=live_home, **settings), embedder=embedder, llm=llm)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def running():
    """Start LiveUpdates and make sure every one is stopped at the end."""
    started: list[LiveUpdates] = []

    def start(app, **kwargs: Any) -> LiveUpdates:
        live = LiveUpdates(app, **kwargs)
        live.start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop(timeout=60)


def wait_for(predicate, what: str, deadline_s: float = 120.0):
    """Poll until predicate() is truthy; the deadline only guards against a hang."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


_N = iter(range(10**6))


def post(app, user: str, item_id: str, kind: str = "rating", value: float | None = 5.0) -> tuple[str, int]:
    """Store one event the way the API does; returns (event id, its seq)."""
    event_id = f"live-{user}-{item_id}-{kind}-{next(_N)}"
    app.store.write_batch([Event(event_id, user, item_id, kind, int(time.time() * 1000),
                                 value if kind == "rating" else None)])
    return event_id, app.store.user_last_seqs([user])[user]


def unseen_items(app, user: str, n: int = 1) -> list[str]:
    seen = {e.item_id for e in app.store.events_for_user(user)}
    return sorted(i for i, item in app.store.items_by_id().items() if i not in seen and not item.is_stub)[:n]


def queue_row(app, user: str):
    with app.store.engine.connect() as conn:
        return conn.execute(select(narrative_queue).where(narrative_queue.c.user_id == user)).mappings().first()


def test_accepted_event_updates_profile_vectors_and_recommendations(make_app, running):
    app = make_app()
    live = running(app, narratives=False)
    before = app.profiles.head("1")
    [item] = unseen_items(app, "1")
    event_id, seq = post(app, "1", item)
    live.events_accepted(["1"])

    head = wait_for(lambda: (h := app.profiles.head("1")) and h["last_event_seq"] >= seq and h, "the new profile")
    assert head["version"] > before["version"]
    assert event_id in app.profiles.versions("1")[-1]["trigger_event_ids"]

    def vector_versions() -> set[int]:
        return {m["version"] for m in app.vectors.profiles.metadata(["1:long", "1:short"]).values()}

    wait_for(lambda: vector_versions() == {head["version"]}, "profile vectors of the new version")
    rec = app.recommendations.recommend("1", k=10)
    assert rec.profile_version == head["version"]
    assert item not in {i.item_id for i in rec.items}  # consumed now
    assert live.stats()["live"]["refreshed_users"] >= 1


def test_ensure_fresh_refreshes_a_lagging_user_synchronously(make_app):
    app = make_app()
    live = LiveUpdates(app, narratives=False)  # not started: nothing runs in the background
    before = app.profiles.head("2")
    post(app, "2", unseen_items(app, "2")[0])
    assert app.store.is_lagging("2")

    live.ensure_fresh("2")
    assert not app.store.is_lagging("2")
    assert app.profiles.head("2")["version"] == before["version"] + 1
    live.ensure_fresh("2")  # fresh now: nothing to do
    assert app.profiles.head("2")["version"] == before["version"] + 1
    assert live.stats()["live"]["ensure_fresh_refreshes"] == 1

    # a brand-new user can read recommendations right after their first event
    post(app, "newcomer", unseen_items(app, "2")[0])
    live.ensure_fresh("newcomer")
    assert app.profiles.head("newcomer")["version"] == 1
    assert app.recommendations.recommend("newcomer", k=5).items


def test_a_dislike_removes_the_item_from_the_very_next_recommendation(make_app):
    app = make_app()
    service = app.recommendations
    top = service.recommend("3", k=10).items[0].item_id
    post(app, "3", top, kind="dislike", value=None)
    # no refresh of any kind: the recommender filters from the user's stored events
    assert top not in {i.item_id for i in service.recommend("3", k=10).items}


def test_queued_narratives_survive_a_restart(make_app, running):
    llm1, chat1 = counting_llm()
    app1 = make_app(llm1, narrative_debounce_s=3600)  # nothing comes due in this run
    live1 = running(app1)
    post(app1, "4", unseen_items(app1, "4")[0])
    live1.events_accepted(["4"])
    wait_for(lambda: queue_row(app1, "4") is not None and not app1.store.is_lagging("4"), "the computed refresh")
    live1.stop(timeout=60)
    assert chat1.calls == []
    assert queue_row(app1, "4") is not None, "the request is durable"
    assert app1.profiles.head("4")["narrative_source"] == "stale"

    llm2, chat2 = counting_llm()
    app2 = make_app(llm2, narrative_debounce_s=0)
    live2 = running(app2)
    wait_for(lambda: queue_row(app2, "4") is None, "the resumed narrative")
    assert app2.profiles.head("4")["narrative_source"] == "llm"
    assert app2.profiles.latest("4")["long_term"]["narrative"].startswith("This viewer enjoys")
    assert len(chat2.calls) == 1
    assert live2.stats()["narratives"]["llm"] == 1


def test_a_burst_of_events_is_one_narrative(make_app, running):
    llm, chat = counting_llm()
    app = make_app(llm, narrative_debounce_s=1.0)
    live = running(app)
    items = unseen_items(app, "5", 10)
    app.store.write_batch([Event(f"burst-5-{i}", "5", item, "rating", int(time.time() * 1000) + i, 4.5)
                           for i, item in enumerate(items)])
    for _ in items:  # one call per accepted request, as the API makes them
        live.events_accepted(["5"])
    wait_for(lambda: queue_row(app, "5") is None and app.profiles.head("5")["narrative_source"] == "llm",
             "the narrative")
    assert not app.store.is_lagging("5")
    assert len(chat.calls) == 1


def test_a_failing_llm_leaves_the_template_and_records_the_error(make_app, running):
    llm, chat = counting_llm(error="endpoint down")
    app = make_app(llm, narrative_debounce_s=0)
    live = running(app)
    post(app, "6", unseen_items(app, "6")[0])
    live.events_accepted(["6"])
    wait_for(lambda: queue_row(app, "6") is None and app.profiles.head("6")["narrative_source"] == "template",
             "the template")
    profile = app.profiles.latest("6")
    assert (profile["long_term"]["narrative"], profile["short_term"]["narrative"]) == template_narrative(profile)
    stats = live.stats()
    assert "endpoint down" in stats["last_error"]["message"]
    assert stats["narratives"]["llm_errors"] == 1
    assert len(chat.calls) == 1, "a model that errs is not asked again"


def test_an_llm_timeout_leaves_the_template(make_app, running):
    release = threading.Event()
    llm, chat = counting_llm(hang=release)
    app = make_app(llm, narrative_debounce_s=0, llm_timeout=0.3)
    live = running(app)
    try:
        post(app, "7", unseen_items(app, "7")[0])
        live.events_accepted(["7"])
        wait_for(lambda: queue_row(app, "7") is None and app.profiles.head("7")["narrative_source"] == "template",
                 "the template")
        assert "no answer within 0.3 s" in live.stats()["last_error"]["message"]
        assert len(chat.calls) == 1
    finally:
        release.set()


def test_stop_leaves_no_pending_computed_work(make_app, running):
    app = make_app()
    live = running(app, narratives=False)
    users = [str(u) for u in range(10, 20)]
    for user in users:
        post(app, user, unseen_items(app, user)[0])
    live.events_accepted(users)
    live.stop(timeout=60)
    assert app.store.lagging_users(users) == []
    stats = live.stats()
    assert stats["live"]["pending_users"] == 0
    heads = {u: app.profiles.head(u)["version"] for u in users}
    synced = app.vectors.profiles.metadata([f"{u}:long" for u in users])
    assert {u: synced[f"{u}:long"]["version"] for u in users} == heads, "vectors flushed too"
    live.events_accepted(["10"])  # after stop: ignored, and never raises
    assert live.stats()["live"]["pending_users"] == 0


def test_item_side_is_rebuilt_with_new_items_and_swapped_in(make_app, running):
    app = make_app(item_side_refresh_events=1, item_side_refresh_s=0)
    service = app.recommendations
    old = service.side
    live = running(app, narratives=False)
    post(app, "8", "brand-new-item")  # a stub item: new to the catalog
    live.events_accepted(["8"])
    wait_for(lambda: service.side is not old and "brand-new-item" in service.side.index, "the rebuilt item side")
    assert "brand-new-item" in app.vectors.items.metadata(["brand-new-item"])
    assert live.stats()["item_side"]["rebuilds"] >= 1
