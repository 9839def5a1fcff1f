"""The cold-start protocols of retrieval/offline.py on tiny hand-made histories."""

from tastebud.profiles.events import Event, Item
from tastebud.retrieval.baselines import Pop
from tastebud.retrieval.evaluation import run_model, split_events
from tastebud.retrieval.offline import cold_item_split, sample_users, stated_preferences_from


def ev(user, item, ts, value=5.0, n=[0]):
    n[0] += 1
    return Event(f"c{n[0]}", user, item, "rating", ts, value)


def _world():
    # five users; each has 4 train ratings and 1 test rating (floor(0.8 * 5) = 4).
    # test: "8" is liked by u1, u2, u3 and "9" by u4, u5; u5 also rated "8" in train
    events = []
    tests = {"u1": "8", "u2": "8", "u3": "8", "u4": "9", "u5": "9"}
    for n, (user, test_item) in enumerate(tests.items()):
        train = ["1", "2", "3", "8"] if user == "u5" else ["1", "2", "3", "4"]
        events += [ev(user, i, t) for t, i in enumerate(train)]
        events.append(ev(user, test_item, 10))
    events.append(ev("u9", "1", 1))  # a user with one event: no test part worth anything
    return split_events(events, [str(i) for i in range(1, 11)])


def test_cold_item_split_holds_out_items_and_removes_their_train_interactions():
    split = _world()
    # "8" is relevant for 3 users, "9" for 2
    cold, held = cold_item_split(split, fraction=1.0, seed=0, min_positives=3)
    assert held == ["8"]  # only "8" has >= 3 relevant test users
    assert cold.stats["eligible_items"] == 1 and cold.stats["removed_train_interactions"] == 1
    assert cold.relevant == {"u1": ["8"], "u2": ["8"], "u3": ["8"]}
    col = cold.train.item_index["8"]
    assert cold.train.binary[:, col].nnz == 0  # u5's train rating of "8" is gone
    assert all(e.item_id != "8" for evs in cold.train.events.values() for e in evs)
    # Pop cannot rank the item it never saw: "8" now scores 0 like 5, 6, 7, 9, 10, which come
    # first in catalog order, so at k=2 every metric is 0. On the warm split u5's train rating
    # makes "8" the only candidate with a count: Pop's first pick.
    run = run_model(Pop(), cold, k=2)
    assert run.per_user["hr"].tolist() == [0.0, 0.0, 0.0]
    warm = run_model(Pop(), split, k=2)
    assert warm.per_user["hr"][:3].tolist() == [1.0, 1.0, 1.0]


def test_cold_item_sample_is_seeded_and_a_fraction_of_the_eligible():
    split = _world()
    _, held = cold_item_split(split, fraction=0.5, seed=0, min_positives=2)  # eligible: "8", "9"
    assert len(held) == 1
    assert cold_item_split(split, fraction=0.5, seed=0, min_positives=2)[1] == held
    both = {tuple(cold_item_split(split, fraction=0.5, seed=s, min_positives=2)[1]) for s in range(20)}
    assert both == {("8",), ("9",)}


def test_stated_preferences_from_ratings_by_hand():
    cat = {
        "a": Item("a", "A", categories=("Drama", "Romance")),
        "b": Item("b", "B", categories=("Drama", "Comedy")),
        "c": Item("c", "C", categories=("Comedy", "(no genres listed)")),
        "d": Item("d", "D", categories=("Horror",)),
        "e": Item("e", "E", categories=("Horror", "Drama")),
        "f": Item("f", "F", categories=("Western",)),
    }
    evs = [ev("u", "a", 1, 5.0), ev("u", "b", 2, 4.0), ev("u", "c", 3, 4.5),
           ev("u", "d", 4, 1.0), ev("u", "e", 5, 2.0), ev("u", "f", 6, 1.5), ev("u", "f", 7, 3.0)]
    out = stated_preferences_from(evs, cat)
    # >= 4: Drama 2, Comedy 2, Romance 1 -> likes Comedy, Drama (ties by name), Romance
    # <= 2: Horror 2 (0 high) -> dislike; Drama is liked; Western has only 1 low rating
    assert [(e.type, e.text) for e in out] == [("like", "Comedy"), ("like", "Drama"), ("like", "Romance"),
                                              ("dislike", "Horror")]
    assert all(e.item_id is None and e.user_id == "u" and e.ts == 7 for e in out)


def test_sample_users_is_seeded_and_keeps_order():
    users = [f"u{i}" for i in range(50)]
    a = sample_users(users, 10, seed=1)
    assert len(a) == 10 and a == sample_users(users, 10, seed=1) and a == sorted(a, key=users.index)
    assert a != sample_users(users, 10, seed=2)
    assert sample_users(users, None, 1) == users and sample_users(users, 80, 1) == users
