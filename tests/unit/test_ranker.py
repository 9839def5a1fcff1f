"""The learned ranker on a small synthetic catalog: the logged parts are LightGBM's exact
contributions (they sum to the logged score), and every "why" sentence rests on one."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.profiles.events import Event, Item
from tastebud.retrieval.ranker import (
    BIAS, FEATURES, RankedRecommender, RankerModel, RankerSources, candidates, features,
)
from tastebud.retrieval.recommender import ItemSide, Recommender, UserContext, interaction_matrix
from tastebud.retrieval.why import reasons, render_why, render_why_zh
from tastebud.settings import DEFAULT_BLEND

T0 = 1_600_000_000_000
CATS = ("Comedy", "Drama", "Horror", "Sci-Fi")
# which logged part(s) back each kind of reason
BACKED_BY = {"co_occurrence": ("co_occurrence",), "co_occurrence_recent": ("co_occurrence_short",),
             "tag_match": ("tag_match",), "popularity": ("popularity",), "popularity_recent": ("popularity_recent",),
             "ease": ("ease",), "activity": ("user_events",), "rating_scale": ("user_mean_rating",),
             "item_age": ("item_age_days",), "popularity_share_year": ("popularity_share_year",),
             "semantic": ("semantic_long", "semantic_short")}


def world(n_items=40, n_users=30, seed=0):
    rng = np.random.default_rng(seed)
    cat = {f"i{k}": Item(f"i{k}", f"Title {k}", None, (CATS[k % 4],), ("tag-a",) if k % 3 == 0 else ())
           for k in range(n_items)}
    events, n = [], 0
    for u in range(n_users):
        taste = u % 4  # each user leans to one category
        for k in rng.choice(n_items, size=12, replace=False):
            value = float(rng.choice([4.0, 4.5, 5.0])) if k % 4 == taste else float(rng.choice([2.0, 3.0, 3.5]))
            events.append(Event(f"e{n}", f"u{u}", f"i{k}", "rating", T0 + n * 60_000, value))
            n += 1
    return cat, events


def profile_for(user: str):
    liked = CATS[int(user[1:]) % 4]
    return {"version": 1, "long_term": {"tags": [{"tag": liked, "weight": 0.8, "evidence_event_ids": ["e0"]}]},
            "dislikes": {"tags": []}}


@pytest.fixture(scope="module")
def ranked():
    cat, events = world()
    items = sorted(cat)
    side = ItemSide.build(items, cat, interaction_matrix(events, {iid: i for i, iid in enumerate(items)}))
    sources = RankerSources.fit(items, events)
    base = Recommender(side, DEFAULT_BLEND)
    by_user: dict[str, list[Event]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    xs, ys, groups = [], [], []
    for user, evs in by_user.items():  # label: the user's own category (a pattern the trees can find)
        ctx = UserContext(user, evs, profile_for(user), {})
        parts, _ = base.parts(ctx)
        mask, _ = base.blocked(ctx)
        cand = candidates(np.where(mask, -np.inf, base.total(parts)), 30)
        xs.append(features(side, sources, parts, evs, cand))
        ys.append(np.array([cat[side.items[c]].categories[0] == CATS[int(user[1:]) % 4] for c in cand], float))
        groups.append(cand.size)
    from tastebud.retrieval.ranker import lightgbm

    lgb = lightgbm()

    data = lgb.Dataset(np.vstack(xs), np.concatenate(ys), group=groups, feature_name=list(FEATURES))
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1,
                         "num_threads": 1, "seed": 0}, data, num_boost_round=20)
    model = RankerModel(booster, sources, {"candidates": 30})
    return RankedRecommender(base, model), by_user


def test_logged_parts_are_exact_contributions_that_sum_to_the_score(ranked, tmp_path):
    from tastebud.profiles.store import EventStore
    from tastebud.retrieval.reclog import Recommendation, RecommendationLog

    rec, by_user = ranked
    ctx = UserContext("u1", by_user["u1"], profile_for("u1"), {})
    items = rec.recommend(ctx, k=8)
    assert len(items) == 8 and [it.rank for it in items] == list(range(1, 9))
    assert [it.score for it in items] == sorted((it.score for it in items), reverse=True)
    raw = rec.model.score(np.array([[it.evidence["ranker"]["features"][f] for f in FEATURES] for it in items],
                                   dtype=np.float64))
    store = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        log = RecommendationLog(store)
        log.record(Recommendation("r1", "u1", 0, 1, {"k": 8}, items))
        for it, expected in zip(items, raw):
            assert set(it.parts) == set(FEATURES) | {BIAS}
            assert sum(it.parts.values()) == pytest.approx(it.score, abs=1e-6)
            assert it.score == pytest.approx(expected, abs=1e-6)  # the model's own raw score
            entry = log.entry("u1", it.item_id, "r1")
            assert sum(entry["parts"].values()) == pytest.approx(entry["score"], abs=1e-6)
            said = reasons(entry)
            for kind, _facts in said:  # every sentence rests on a logged contribution that raised the score
                assert any(entry["parts"].get(p, 0) > 0 for p in BACKED_BY[kind]), (kind, entry["parts"])
            assert len(render_why(entry)) == len(render_why_zh(entry)) == max(1, len(said))
    finally:
        store.close()


def test_some_ranker_reasons_are_said(ranked):
    rec, by_user = ranked
    kinds = set()
    for user in ("u0", "u1", "u2", "u3"):
        for it in rec.recommend(UserContext(user, by_user[user], profile_for(user), {}), k=8):
            kinds |= {k for k, _ in reasons({"parts": it.parts, "evidence": it.evidence})}
    assert kinds & {"ease", "co_occurrence_recent", "popularity_recent", "tag_match", "co_occurrence"}


def test_saved_model_scores_the_same_and_cold_users_get_the_blend(ranked, tmp_path):
    rec, by_user = ranked
    rec.model.save(tmp_path / "ranker")
    again = RankedRecommender(rec.base, RankerModel.load(tmp_path / "ranker"))
    ctx = UserContext("u2", by_user["u2"], profile_for("u2"), {})
    a, b = rec.recommend(ctx, k=5), again.recommend(ctx, k=5)
    assert [(i.item_id, round(i.score, 9)) for i in a] == [(i.item_id, round(i.score, 9)) for i in b]
    cold = again.recommend(UserContext("new", [], None, {}), k=3)
    assert cold and BIAS not in cold[0].parts  # the blend's popularity list, as before


DAY = 86_400_000


def test_item_age_and_the_year_before_are_read_at_the_users_own_time(tmp_path):
    def ev(n, item, day):
        return Event(f"t{n}", "someone", item, "rating", T0 + day * DAY, 4.0)

    events = [ev(0, "a", 0), ev(1, "a", 10), ev(2, "a", 400), ev(3, "b", 500), ev(4, "a", 420)]
    sources = RankerSources.fit(["a", "b", "c"], events)
    at = T0 + 410 * DAY
    cand = np.array([0, 1, 2])
    age = sources.item_age_days(cand, at)
    assert age[0] == 410 and age[1] == 0 and np.isnan(age[2])  # b first seen after: as new; c never: unknown
    assert sources.interactions_before(cand, at).tolist() == [1, 0, 0]  # day 400 only: 10 is 400 days back
    assert sources.interactions_before(cand, at, days=410).tolist() == [3, 0, 0]  # days 0, 10 and 400
    moved = sources.reindex(["c", "a", "x", "b"])  # another catalog order, and an item the sources never saw
    assert moved.interactions_before(np.array([1, 3, 2]), T0 + 501 * DAY, days=200).tolist() == [2, 1, 0]
    assert moved.item_age_days(np.array([1]), at).tolist() == [410]
    sources.save(tmp_path / "s.npz")
    again = RankerSources.load(tmp_path / "s.npz")
    assert again.interactions_before(cand, at, days=410).tolist() == [3, 0, 0]
    x = features(ItemSide.build(["a", "b", "c"], {}, interaction_matrix(events, {"a": 0, "b": 1, "c": 2})),
                 sources, {f: np.zeros(3) for f in FEATURES}, [ev(9, "b", 410)], cand)
    assert x[:, FEATURES.index("item_age_days")][:2].tolist() == [410, 0]
    assert x[:, FEATURES.index("popularity_share_year")].tolist() == [1, 0, 0]


def test_a_model_trained_on_other_features_is_refused_by_name(ranked, tmp_path):
    import json

    from tastebud.retrieval.ranker import META_FILE, StaleRanker

    rec, _ = ranked
    rec.model.save(tmp_path / "ranker")
    meta = json.loads((tmp_path / "ranker" / META_FILE).read_text())
    meta["features"] = meta["features"][:-2]  # as the version before item age and the year's popularity
    (tmp_path / "ranker" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(StaleRanker, match="train-ranker"):
        RankerModel.load(tmp_path / "ranker")


def test_histories_shorter_than_any_it_learned_from_get_the_blend(ranked):
    rec, by_user = ranked
    ctx = UserContext("u3", by_user["u3"], profile_for("u3"), {})  # 12 ratings
    short = RankedRecommender(rec.base, RankerModel(rec.model.booster, rec.model.sources, {"candidates": 30,
                                                                                          "min_history": 13}))
    assert BIAS not in short.recommend(ctx, k=3)[0].parts  # the blend, with its popularity backoff
    enough = RankedRecommender(rec.base, RankerModel(rec.model.booster, rec.model.sources, {"candidates": 30,
                                                                                           "min_history": 12}))
    assert BIAS in enough.recommend(ctx, k=3)[0].parts


def test_offline_the_short_histories_are_scored_as_served_by_the_blend_with_its_backoff(ranked):
    """eval must score what production serves: below min_history, the blend's own ranking
    (with the popularity backoff), not the ranker's candidate order."""
    from tastebud.profiles.interest import InterestConfig
    from tastebud.retrieval.evaluation import train_data_from
    from tastebud.retrieval.offline import TastebudScorer
    from tastebud.retrieval.ranker_train import RankerScorer

    rec, by_user = ranked
    cat, _ = world()
    events = {u: evs for u, evs in by_user.items()}
    events["u3"] = events["u3"][:2]  # a short history
    train = train_data_from(events, sorted(cat), cat)
    from tastebud.settings import load_settings

    base = TastebudScorer(DEFAULT_BLEND, InterestConfig.from_settings(load_settings())).fit(train)
    model = RankerModel(rec.model.booster, None, {"candidates": 30, "min_history": 5})
    scorer = RankerScorer(base, model, n=30).fit(train)
    got = scorer.score(["u3", "u1"])
    assert np.array_equal(got[0], base.score(["u3"])[0])
    assert not np.array_equal(got[1], base.score(["u1"])[0])  # u1 (12 events) is the ranker's


def test_the_bisection_over_all_items_at_once_equals_searchsorted_item_by_item():
    from tastebud.retrieval.ranker import _search_segments

    rng = np.random.default_rng(1)
    segs = [np.sort(rng.integers(0, 100, rng.integers(0, 30)).astype(float)) for _ in range(300)]  # some empty
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in segs])])
    values = np.concatenate(segs)
    for x in (-1, 0, 17, 50.5, 99, 100):
        for side in ("left", "right"):
            got = _search_segments(values, indptr[:-1], indptr[1:], x, right=side == "right")
            assert got.tolist() == [np.searchsorted(s, x, side) for s in segs], (x, side)


def test_status_says_whether_a_ranker_serves_without_loading_it(ranked, tmp_path):
    import json
    import subprocess
    import sys

    from tastebud.retrieval.ranker_files import META_FILE, ranker_state

    rec, _ = ranked
    folder = tmp_path / "ranker"
    assert ranker_state(None) == {"state": "off"} and ranker_state(folder) == {"state": "none"}
    RankerModel(rec.model.booster, rec.model.sources, {"candidates": 30, "min_history": 12,
                                                       "trained_on_events": 360}).save(folder)
    assert ranker_state(folder) == {"state": "in use", "trained_on_events": 360, "min_history": 12}
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "features": meta["features"][:-2]}))
    assert ranker_state(folder)["state"] == "stale"
    light = subprocess.run([sys.executable, "-c", "import sys; from tastebud.retrieval.ranker_files import ranker_state; "
                            "print(sorted(m for m in ('numpy', 'lightgbm', 'scipy') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "[]"


def test_the_years_popularity_is_a_share_read_at_the_last_item_event_the_sources_know():
    from tastebud.retrieval.ranker import user_time

    def ev(n, item, day, type_="rating"):
        return Event(f"s{n}", "someone", item, type_, T0 + day * DAY, 4.0 if type_ == "rating" else None)

    events = [ev(0, "a", 0), ev(1, "a", 400), ev(2, "a", 420), ev(3, "b", 500)]
    sources = RankerSources.fit(["a", "b", "c"], events)
    cand = np.array([0, 1, 2])
    assert sources.share_before(cand, T0 + 501 * DAY, days=200).tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    # the same shares from a source holding every event twice (a bigger cut of the same stream)
    doubled = RankerSources.fit(["a", "b", "c"], events + [Event(e.event_id + "x", "other", e.item_id, e.type, e.ts,
                                                                 e.value) for e in events])
    assert doubled.share_before(cand, T0 + 501 * DAY, days=200).tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    # a search or a tag later on does not move the user's time; an item event after the sources end is read at it
    mine = [ev(5, "a", 410), ev(6, None, 800, "search"), ev(7, "b", 900, "tag")]
    assert user_time(mine) == T0 + 410 * DAY
    side = ItemSide.build(["a", "b", "c"], {}, interaction_matrix(events, {"a": 0, "b": 1, "c": 2}))
    late = features(side, sources, {f: np.zeros(3) for f in FEATURES}, [ev(8, "a", 2000)], cand)
    assert late[:, FEATURES.index("item_age_days")].tolist()[:2] == [500, 0]  # at day 500, the sources' last
    assert late[:, FEATURES.index("popularity_share_year")].tolist() == pytest.approx([2 / 3, 1 / 3, 0])


def test_no_time_sentence_without_a_number_to_say():
    from tastebud.retrieval.why import reasons

    parts = {"item_age_days": 0.2, "popularity_share_year": 0.1, "ranker_bias": 0.0}
    said = lambda feats: [k for k, _ in reasons({"parts": parts, "evidence": {"ranker": {"features": feats}}})]  # noqa: E731
    assert said({"item_age_days": 0.0, "popularity_share_year": 0.0}) == []  # first seen after the user's time; none that year
    assert sorted(said({"item_age_days": 12.0, "popularity_share_year": 0.004})) == ["item_age", "popularity_share_year"]
