"""The split protocol and the harness on tiny hand-made histories."""

import numpy as np
import pytest

from tastebud.profiles.events import Event
from tastebud.retrieval.evaluation import EvalConfig, evaluate, evaluate_model, split_events, topk_for, validation_split


def ev(user, item, ts, type_="rating", value=None, n=[0]):
    n[0] += 1
    if type_ == "rating" and value is None:
        value = 5.0
    return Event(f"e{n[0]}", user, item, type_, ts, value, "t" if type_ == "tag" else None)


CATALOG = [str(i) for i in range(1, 11)]  # items "1".."10"


def test_floor_80_percent_and_time_order():
    # u1: 5 ratings given out of time order -> sorted by ts; floor(0.8*5) = 4 train, 1 test
    # u2: 3 ratings -> floor(2.4) = 2 train, 1 test
    events = [ev("u1", "5", 50), ev("u1", "1", 10), ev("u1", "3", 30), ev("u1", "2", 20), ev("u1", "4", 40),
              ev("u2", "1", 1), ev("u2", "2", 2), ev("u2", "3", 3)]
    split = split_events(events, CATALOG)
    assert [e.item_id for e in split.train.events["u1"]] == ["1", "2", "3", "4"]
    assert split.relevant == {"u1": ["5"], "u2": ["3"]}
    assert split.train.n_items == 10  # the whole catalog, not only items with events
    assert split.stats["train_interactions"] == 6 and split.stats["test_interactions"] == 2


def test_timestamp_ties_keep_ingestion_order():
    # all five at the same ts: the stable sort keeps input (seq) order, so item "9" is the test one
    events = [ev("u", i, 100) for i in ["3", "1", "7", "2", "9"]]
    split = split_events(events, CATALOG)
    assert [e.item_id for e in split.train.events["u"]] == ["3", "1", "7", "2"]
    assert split.relevant == {"u": ["9"]}


def test_relevance_threshold_and_skipped_users():
    events = [ev("a", i, t) for t, i in enumerate(["1", "2", "3", "4"])] + [ev("a", "5", 9, value=3.5)]
    events += [ev("b", i, t) for t, i in enumerate(["1", "2", "3", "4"])] + [ev("b", "6", 9, value=4.0)]
    split = split_events(events, CATALOG)
    # a's only test item is rated 3.5 < 4.0 -> a is skipped; b's 4.0 counts (>=)
    assert split.eval_users == ["b"]
    # a still trains: a low rating is an interaction (binary 1)
    assert split.train.binary[split.train.user_index["a"]].nnz == 4


def test_tags_are_not_interactions_but_implicit_events_are():
    events = [ev("u", "1", 1), ev("u", "2", 2, "tag"), ev("u", "3", 3, "view"), ev("u", "4", 4, "dislike"),
              ev("u", "5", 5, "click"), ev("u", "6", 6, "purchase")]
    split = split_events(events, CATALOG)
    # 5 interactions (tag left out) -> 4 train (1, 3, 4, 5), test = purchase of 6 (positive -> relevant)
    assert [e.item_id for e in split.train.events["u"]] == ["1", "3", "4", "5"]
    assert split.relevant == {"u": ["6"]}
    row = split.train.user_index["u"]
    cols = lambda m: sorted(split.train.items[c] for c in m[row].indices)
    assert cols(split.train.binary) == ["1", "3", "5"]  # the dislike is not a positive interaction...
    assert cols(split.train.seen) == ["1", "3", "4", "5"]  # ...but it is excluded from ranking
    # a dislike in test is never relevant
    split = split_events(events[:5] + [ev("u", "6", 6, "dislike")], CATALOG)
    assert split.eval_users == []


def test_test_item_already_in_train_is_not_relevant():
    events = [ev("u", "1", 1, "view"), ev("u", "2", 2, "view"), ev("u", "3", 3, "view"), ev("u", "4", 4, "view"),
              ev("u", "1", 5, "purchase")]
    assert split_events(events, CATALOG).eval_users == []


class Constant:
    """Same score everywhere, except a huge one on item '1'."""

    name = "constant"

    def fit(self, train):
        self.train = train

    def score(self, users):
        s = np.zeros((len(users), self.train.n_items))
        s[:, self.train.item_index["1"]] = 1e9
        return s


def _simple_split():
    events = [ev("u", i, t) for t, i in enumerate(["1", "2", "3", "4", "6"])]
    return split_events(events, CATALOG)


def test_harness_excludes_train_items_and_breaks_ties_by_catalog_order():
    split = _simple_split()  # train 1 2 3 4, test 6
    model = Constant()
    model.fit(split.train)
    top = topk_for(model, split.train, ["u"], 3)
    # item 1 scores highest but was seen in train; ties among the rest -> catalog order 5, 6, 7
    assert [split.train.items[c] for c in top[0]] == ["5", "6", "7"]
    result = evaluate_model(model, split, k=3)
    # relevant {6} at position 2: recall 1, MRR 1/2, NDCG = 0.630930 / 1
    assert result["recall@3"] == pytest.approx(1.0)
    assert result["mrr@3"] == pytest.approx(0.5)
    assert result["ndcg@3"] == pytest.approx(0.630930, abs=1e-6)
    assert result["coverage@3"] == pytest.approx(0.3)
    assert result["users"] == 1


class ListRanker:
    name = "ranker"

    def fit(self, train):
        self.calls = []

    def rank(self, user, k, exclude):
        self.calls.append((user, k, set(exclude)))
        return ["1", "6", "9"]  # "1" is in train: the harness drops it anyway


def test_ranker_protocol_and_short_lists():
    split = _simple_split()
    ranker = ListRanker()
    result = evaluate([ranker], split, k=5)["ranker"]
    assert ranker.calls == [("u", 5, {"1", "2", "3", "4"})]
    assert result["hr@5"] == 1.0 and result["mrr@5"] == pytest.approx(1.0)
    # two items ranked out of a catalog of ten; empty slots count for nothing
    assert result["coverage@5"] == pytest.approx(0.2)


def test_harness_rejects_wrong_shapes_and_duplicate_names():
    split = _simple_split()

    class Bad(Constant):
        name = "bad"

        def score(self, users):
            return np.zeros((len(users), 3))

    with pytest.raises(ValueError):
        evaluate_model(Bad(), split)
    with pytest.raises(ValueError):
        evaluate([Constant(), Constant()], split)
    with pytest.raises(ValueError):
        split_events([], CATALOG, EvalConfig(train_fraction=1.0))


def test_validation_split_never_sees_test():
    # 10 ratings -> 8 train / 2 test; the validation split cuts the 8 train into 6 / 2
    events = [ev("u", str(i), i) for i in range(1, 11)]
    split = split_events(events, CATALOG)
    val = validation_split(split)
    assert [e.item_id for e in val.train.events["u"]] == ["1", "2", "3", "4", "5", "6"]
    assert val.relevant == {"u": ["7", "8"]}
    assert val.train.items == split.train.items
