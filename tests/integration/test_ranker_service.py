"""The learned ranker in production: trained on a home's events and saved under it, then
used by the recommendation service when present and allowed (ranker=auto), with logged
parts that sum to the logged score; ranker=off, or no model, keeps the blend."""

from __future__ import annotations

import pytest

from tests.agent_helpers import make_app

pytestmark = pytest.mark.integration


def test_trained_ranker_is_used_and_its_log_explains_the_score(app, home, embedder, caplog):
    from tastebud.retrieval.ranker import BIAS, FEATURES, RankerModel, ranker_dir
    from tastebud.retrieval.ranker_train import train_for_store

    user = "1"
    before = app.recommendations.recommend(user, 5)
    assert before.items and BIAS not in before.items[0].parts  # no model: the blend

    from tastebud.profiles.interest import InterestConfig
    from tastebud.retrieval.offline import TastebudScorer

    interest = InterestConfig.from_settings(app.settings)
    model, info = train_for_store(app.store, lambda: TastebudScorer(dict(app.settings.blend), interest, None, "base"),
                                  semantic=False)
    model.save(ranker_dir(home))
    assert RankerModel.present(ranker_dir(home)) and info["training"]["rows"] > 0

    fresh = make_app(home, embedder)
    try:
        rec = fresh.recommendations.recommend(user, 5)
        assert rec.items and set(rec.items[0].parts) == set(FEATURES) | {BIAS}
        for it in rec.items:
            entry = fresh.reclog.explain(user, it.item_id, rec.request_id)
            assert sum(entry["parts"].values()) == pytest.approx(entry["score"], abs=1e-6)
            assert entry["sentences"]
    finally:
        fresh.close()

    from tastebud.settings import load_settings
    from tastebud.app import App

    off = App(load_settings(home=home, ranker="off"), embedder=embedder)
    try:
        assert BIAS not in off.recommendations.recommend(user, 5).items[0].parts
    finally:
        off.close()

    # a home upgraded in place keeps a model trained on an older feature list: the blend
    # serves (nothing fails) and the log says to retrain, once
    import json
    import logging

    from tastebud.retrieval.ranker import META_FILE

    meta_file = ranker_dir(home) / META_FILE
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "features": meta["features"][:-2]}))
    stale = make_app(home, embedder)
    try:
        with caplog.at_level(logging.WARNING, logger="tastebud.retrieval.service"):
            first = stale.recommendations.recommend(user, 5)
            again = stale.recommendations.recommend(user, 5)
        assert first.items and BIAS not in first.items[0].parts and BIAS not in again.items[0].parts
        assert [r.message for r in caplog.records].count(
            next(r.message for r in caplog.records if "train-ranker" in r.message)) == 1
    finally:
        stale.close()
