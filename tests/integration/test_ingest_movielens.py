"""The real ml-latest-small, end to end through the store: exact counts, and idempotence."""

from __future__ import annotations

import pytest

from tastebud.profiles.ingest import Ingestor
from tastebud.profiles.movielens import ingest_movielens

pytestmark = pytest.mark.integration


def test_ml_latest_small_ingests_exactly_and_twice_changes_nothing(store, ml_small):
    first = ingest_movielens(Ingestor(store), ml_small)
    assert (first["catalog"].read, first["catalog"].accepted, first["catalog"].rejected) == (9742, 9742, 0)
    assert (first["events"].read, first["events"].accepted, first["events"].duplicates, first["events"].rejected) \
        == (104519, 104519, 0, 0)

    status = store.status()
    assert (status["users"], status["items"], status["stub_items"], status["events"]) == (610, 9742, 0, 104519)
    assert status["events_by_type"] == {"rating": 100836, "tag": 3683}
    assert status["quarantined"] == 0
    assert (status["first_event_at"], status["last_event_at"]) == ("1996-03-29T18:36:55Z", "2018-09-24T14:27:30Z")

    toy_story = store.get_item("1")
    assert toy_story.title == "Toy Story (1995)"
    assert toy_story.categories == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert "pixar" in toy_story.tags
    assert store.get_item("114335").categories == ()  # "(no genres listed)" is no genre

    second = ingest_movielens(Ingestor(store), ml_small)
    assert (second["events"].read, second["events"].accepted, second["events"].duplicates) == (104519, 0, 104519)
    assert (second["catalog"].read, second["catalog"].accepted, second["catalog"].duplicates) == (9742, 0, 9742)
    assert store.status() == status
