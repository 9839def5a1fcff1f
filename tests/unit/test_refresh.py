import pytest

from tastebud.profiles.interest import InterestConfig
from tastebud.profiles.refresh import Refresher, in_shard, parse_shard
from tastebud.profiles.store import EventStore
from tastebud.profiles.versions import ProfileRepository, _HeadMoved, profile_content_hash
from tastebud.errors import InputError, NotFoundError
from tastebud.settings import DEFAULT_EVENT_WEIGHTS
from tests.profile_helpers import item, load, rating

CONFIG = InterestConfig(event_weights=DEFAULT_EVENT_WEIGHTS)
GENRES = ["Comedy", "Horror", "Drama", "Crime", "Sci-Fi"]


def seed(store: EventStore, users: int = 30) -> None:
    items = [item(f"i{n}", [GENRES[n % 5]], [f"tag{n % 7}"], title=f"Film number {n} (2001)") for n in range(60)]
    events = [
        rating(f"u{u}", f"i{(u * 7 + k) % 60}", float(1 + (u + k) % 5), k, n=k)
        for u in range(users) for k in range(12)
    ]
    load(store, items, events)


def test_refresh_creates_versions_only_when_content_changes(store):
    seed(store, 3)
    refresher = Refresher(store, CONFIG)
    first = refresher.refresh(refresher.select_users(), narratives=False)
    assert (first.users, first.new_versions) == (3, 3)
    assert refresher.select_users() == []  # no profile lags its events any more
    again = refresher.refresh(refresher.select_users(all_users=True), narratives=False)
    assert (again.new_versions, again.unchanged) == (0, 3)
    store.write_batch([rating("u1", "i5", 5.0, 30, n=99)])
    assert refresher.select_users() == ["u1"]
    third = refresher.refresh(refresher.select_users(), narratives=False)
    assert third.new_versions == 1
    history = ProfileRepository(store).history("u1")
    assert [v["version"] for v in history] == [1, 2]
    assert history[1]["trigger_event_ids"] == ["u1-i5-99"]
    assert history[1]["changes"]["long_term"]["reweighted"]


def test_profile_json_contract(store):
    seed(store, 1)
    refresher = Refresher(store, CONFIG)
    refresher.refresh(["u0"], narratives=False)
    data = ProfileRepository(store).require_latest("u0")
    for key in ("user_id", "version", "narrative_source", "dislikes"):
        assert key in data
    for horizon in ("long_term", "short_term"):
        assert isinstance(data[horizon]["narrative"], str) and data[horizon]["narrative"]
        for tag in data[horizon]["tags"]:
            assert set(tag) >= {"tag", "weight", "evidence_event_ids"}
    assert set(data["drift"]) >= {"score", "emerging", "fading"}
    assert data["narrative_source"] == "stale"  # --no-narratives marks narratives stale
    assert data["content_hash"] == profile_content_hash(data)


def test_interrupted_refresh_resumes_to_the_same_profiles(tmp_path):
    def run(home, interrupt_after=None):
        store = EventStore(f"sqlite:///{home}/t.db")
        seed(store, 30)
        refresher = Refresher(store, CONFIG, chunk_size=4)

        def progress(done, total):
            if interrupt_after is not None and done == interrupt_after:
                raise KeyboardInterrupt

        if interrupt_after is not None:
            with pytest.raises(KeyboardInterrupt):
                refresher.refresh(refresher.select_users(), narratives=False, progress=progress)
            assert 0 < len(refresher.select_users()) < 30  # some done, the rest still lagging
        refresher.refresh(refresher.select_users(), narratives=False)
        assert refresher.select_users() == []
        repo = ProfileRepository(store)
        out = {u: (repo.latest(u)["content_hash"], repo.latest(u)["version"]) for u in (f"u{i}" for i in range(30))}
        store.close()
        return out

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert run(tmp_path / "a", interrupt_after=7) == run(tmp_path / "b")


def test_shards_partition_users():
    users = [str(u) for u in range(200)]
    shards = [[u for u in users if in_shard(u, (i, 4))] for i in range(4)]
    assert sorted(sum(shards, [])) == sorted(users)
    assert all(shards)
    with pytest.raises(InputError):
        parse_shard("4/4")
    assert parse_shard("1/4") == (1, 4)


def test_unknown_user_is_a_clear_error(store):
    seed(store, 1)
    with pytest.raises(NotFoundError):
        Refresher(store, CONFIG).select_users(["nobody"])
    with pytest.raises(NotFoundError, match="no user"):
        ProfileRepository(store).require_latest("nobody")


def test_latest_many_reads_what_latest_reads_for_a_chunk(store):
    from sqlalchemy import update

    from tastebud.profiles.migrations import profile_heads

    seed(store, 3)
    refresher = Refresher(store, CONFIG)
    refresher.refresh(["u0", "u1"], narratives=False)
    store.write_batch([rating("u1", "i5", 5.0, 30, n=99)])
    refresher.refresh(["u1"], narratives=False)  # u1 has two versions, its head at v2
    repo = ProfileRepository(store)
    with store.transaction() as conn:  # u0's head points at a version that is not stored
        conn.execute(update(profile_heads).where(profile_heads.c.user_id == "u0").values(version=7))
    got = repo.latest_many(["u1", "u0", "u2", "u1"])
    assert set(got) == {"u0", "u1", "u2"}
    assert got["u1"] == repo.latest("u1") and got["u1"]["version"] == 2
    assert got["u0"] == repo.latest("u0") and got["u0"]["version"] == 1  # the fallback read
    assert got["u2"] is None  # never refreshed


class RacedOnce(ProfileRepository):
    """Another writer moves the head of the second user in the first batch transaction."""

    raced = False
    one_by_one = 0  # saves outside the batch transaction

    def save(self, *args):
        self.one_by_one += 1
        return super().save(*args)

    def _save_in(self, conn, data, last_event_seq, narrative_source, **given):
        if data["user_id"] == "u1" and not self.raced:
            self.raced = True
            raise _HeadMoved("u1")
        return super()._save_in(conn, data, last_event_seq, narrative_source, **given)


def test_save_many_is_one_transaction_that_falls_back_to_one_user_at_a_time(store):
    seed(store, 3)
    refresher = Refresher(store, CONFIG)
    entries = [(refresher.compute(u)[0], refresher.compute(u)[1], "stale") for u in ("u0", "u1", "u2")]
    repo = RacedOnce(store)
    assert repo.save_many(entries) == [(1, True), (1, True), (1, True)]
    assert repo.raced
    # the batch was rolled back whole before the fallback: u0 has one version, not two
    assert [v["version"] for v in repo.history("u0")] == [1]
    assert repo.one_by_one == 3
    assert repo.save_many(entries) == [(1, False)] * 3  # unchanged content: no new versions
    older = (entries[2][0], entries[2][1] - 1, "stale")
    assert repo.save_many([entries[0], older]) == [(1, False), (1, False)]  # behind the head: not saved
    assert repo.one_by_one == 3  # both in one transaction, with the heads read for the batch


def test_stored_json_is_the_merge_of_data_and_stamp():
    import json

    from tastebud.profiles.versions import _prepared, _stamped

    def unique_keys(pairs):
        assert len(pairs) == len(dict(pairs)), f"a key twice: {pairs}"
        return dict(pairs)

    stamp = {"version": 3, "content_hash": "h"}
    for data in ({"user_id": "u", "tags": ["x"]}, {"user_id": "u", "version": 1}, {}):
        stored = _stamped(data, _prepared(data)[1], stamp)
        assert json.loads(stored, object_pairs_hook=unique_keys) == {**data, **stamp}


def test_the_stored_json_is_what_the_content_hash_is_taken_of():
    """One JSON pass per version: the hash must still be the hash of what a profile says."""
    import json

    from tastebud.profiles.versions import _prepared

    data = {"user_id": "u", "long_term": {"tags": [{"tag": "Crime", "weight": 0.5}], "narrative": "Liebt Krimis"},
            "drift": None}
    digest, stored = _prepared(data)
    assert json.loads(stored) == data
    assert digest == profile_content_hash(data) == profile_content_hash({**data, "version": 7, "generated_at": 1})
    assert _prepared({**data, "version": 7})[0] == digest  # a volatile field does not change what it says
    assert _prepared({**data, "drift": {"tag": "Comedy"}})[0] != digest
