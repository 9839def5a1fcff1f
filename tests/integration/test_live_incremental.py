"""The live refresh keeps interest states in memory and feeds them only new
events; every profile version it saves must be the one a full recomputation
gives, also after another writer, a deleted row, a changed catalog item or a
restart."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from tastebud.live import LiveUpdates
from tastebud.profiles.events import Event
from tastebud.profiles.interest import InterestConfig
from tastebud.profiles.migrations import events as events_table
from tastebud.profiles.refresh import Refresher
from tests.profile_helpers import DAY, T0, item, rating

pytestmark = pytest.mark.integration


def full_hash(app, user: str) -> str:
    reference = Refresher(app.store, InterestConfig.from_settings(app.settings))  # no states: the full recomputation
    data, _ = reference.compute(user, app.store.items_by_id())
    return data["computed_hash"]


def head_hash(app, live: LiveUpdates, user: str) -> str:
    live.ensure_fresh(user)
    head = app.profiles.latest(user)
    assert head["last_event_seq"] == app.store.user_last_seqs([user])[user]
    return head["computed_hash"]


def test_live_versions_equal_a_full_refresh(home, embedder):
    from tastebud.app import App
    from tastebud.settings import load_settings

    settings = load_settings(home=home)
    app = App(settings, embedder=embedder)
    live = LiveUpdates(app, narratives=False)  # not started: ensure_fresh refreshes synchronously
    batches = [
        [rating("u", "a", 5.0, 10), rating("u", "b", 2.0, 3)],
        [rating("u", "c", 4.5, 1), Event("s1", "u", None, "dislike", T0 + 11 * DAY, None, "comedy")],  # out of order
        [Event("v1", "u", "d", "view", T0 + 12 * DAY), Event("k1", "u", "a", "skip", T0 + 2 * DAY)],
        [rating("u", "d", 1.0, 13), Event("s2", "u", None, "like", T0 + 14 * DAY, None, "Comedy"),
         rating("u", "a", 5.0, 10)],  # the last one is a duplicate id: the store keeps the first
    ]
    try:
        app.store.upsert_items([item("a", ["Crime"], ["heist"]), item("b", ["Comedy", "Drama"]),
                                item("c", ["Comedy"]), item("d", ["Drama"], ["slow"])])
        for batch in batches:
            app.store.write_batch(batch)  # as another worker would: the state catches up from the store
            assert head_hash(app, live, "u") == full_hash(app, "u")
        def counts():
            return live.stats()["live"]["interest_states"]

        assert counts()["built"] == 1 and counts()["updated"] == len(batches) - 1

        with app.store.engine.begin() as conn:  # a row the state has seen disappears
            conn.execute(delete(events_table).where(events_table.c.event_id == "k1"))
        app.store.write_batch([rating("u", "b", 4.0, 15, n=2)])
        assert head_hash(app, live, "u") == full_hash(app, "u")
        assert counts()["rebuilt"] == 1

        app.store.upsert_items([item("d", ["Horror"]), item("e", ["Western"])])  # a catalog change under the state
        app.store.write_batch([rating("u", "e", 3.0, 16)])
        assert head_hash(app, live, "u") == full_hash(app, "u")
        assert counts()["rebuilt"] == 2
    finally:
        live.stop(timeout=60)
        app.close()

    restarted = App(load_settings(home=home), embedder=embedder)  # a new process: no states
    live = LiveUpdates(restarted, narratives=False)
    try:
        restarted.store.write_batch([Event("v2", "u", "c", "click", T0 + 17 * DAY)])
        assert head_hash(restarted, live, "u") == full_hash(restarted, "u")
    finally:
        live.stop(timeout=60)
        restarted.close()


def test_warmed_states_take_only_new_events_and_stay_exact(home, embedder, monkeypatch):
    import time

    from tastebud.live import computed

    from tastebud.app import App
    from tastebud.profiles.incremental import IncrementalProfiles
    from tastebud.settings import load_settings

    app = App(load_settings(home=home), embedder=embedder)
    try:
        app.store.upsert_items([item("a", ["Crime"], ["heist"]), item("b", ["Comedy"]), item("c", ["Drama"])])
        app.store.write_batch([rating("u", "a", 5.0, 1), rating("u", "b", 2.0, 2)])
        app.store.write_batch([rating("w", "b", 4.0, 1), rating("x", "c", 4.0, 1)])
        app.store.write_batch([rating("w", "c", 3.0, 3)])
        assert app.store.recent_users(2) == ["w", "x"]

        config, catalog = InterestConfig.from_settings(app.settings), app.store.items_by_id()
        states = IncrementalProfiles(max_users=2)
        assert states.warm(app.store, ["u", "nobody"], catalog, config) == 1  # no events: nothing to hold
        assert states.warm(app.store, ["u", "w", "x"], catalog, config) == 1  # u is held; room for one more
        app.store.write_batch([rating("u", "c", 4.5, 20), rating("w", "a", 1.0, 21)])
        refresher = Refresher(app.store, config)
        refresher.incremental = states
        for user in ("u", "w"):
            assert refresher.compute(user, catalog)[0]["computed_hash"] == full_hash(app, user)
        assert states.counts == {"built": 0, "updated": 2, "rebuilt": 0, "warmed": 2}

        Refresher(app.store, config).refresh(["u", "w", "x"], narratives=False)  # nothing lags its events
        monkeypatch.setattr(computed, "WARM_CHUNK", 2)  # three users: two warming steps
        warmed_calls: list[int] = []  # the server freezes its heap then (tastebud/live/support.py freeze_heap)
        live = LiveUpdates(app, narratives=False, on_warmed=lambda: warmed_calls.append(
            live.stats()["live"]["interest_states"]["warmed"]))  # a started updater warms the most recent users itself
        live.start()
        try:
            deadline = time.monotonic() + 60
            while not warmed_calls and time.monotonic() < deadline:
                time.sleep(0.05)
            assert live.stats()["live"]["interest_states"]["warmed"] == 3
            assert live.stats()["live"]["warming_users"] == 0
            assert warmed_calls == [3]  # once, after the last of them
        finally:
            live.stop(timeout=60)
    finally:
        app.close()
