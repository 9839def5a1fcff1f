"""Profile refresh: recompute, narrate, version, notify.

Each user is saved in its own transaction after its narrative is written, so
a killed run leaves finished users finished and the rest lagging (events newer
than their profile); the next run (which by default takes the lagging users)
picks up exactly where it stopped. A narrative not rewritten is stored marked
`narrative_source: stale`.
"""

from __future__ import annotations

import time
import zlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Sequence

from sqlalchemy import select, update

from tastebud.profiles.erasure import erase_profile_rows
from tastebud.profiles.events import Event
from tastebud.profiles.incremental import IncrementalProfiles
from tastebud.profiles.interest import InterestConfig, InterestProfile, build_interest_profile
from tastebud.profiles.migrations import events, profile_heads
from tastebud.profiles.narrative import NarrativeWriter, template_narrative
from tastebud.profiles.narrative_queue import NarrativeQueue
from tastebud.profiles.optout import opted_out, profile_rows_of
from tastebud.profiles.retention import drop_citing_versions, expire_events
from tastebud.profiles.store import EventStore, _row_event
from tastebud.profiles.versions import ProfileRepository, profile_content_hash
from tastebud.errors import InputError, NotFoundError

ProfileHook = Callable[[list[dict[str, Any]]], None]
ProgressFn = Callable[[int, int], None]


@dataclass
class RefreshReport:
    users: int = 0
    new_versions: int = 0
    unchanged: int = 0
    narratives_llm: int = 0
    narratives_template: int = 0
    narratives_kept: int = 0
    narratives_stale: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    llm_seconds: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)
    hooks: dict[str, Any] = field(default_factory=dict)  # what batching hooks report on flush (profile vectors)
    narrative_errors: dict[str, str] = field(default_factory=dict)  # user -> why the LLM gave no narrative
    opted_out: int = 0  # users skipped because they opted out of profiling (their profile removed)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["users_per_s"] = round(self.users / self.seconds, 1) if self.seconds else None
        d.pop("versions")
        d.pop("narrative_errors")
        return d


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'i/n' with 0 <= i < n: this worker takes users whose crc32 % n == i."""
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"bad shard {text!r}", hint="use i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"bad shard {text!r}", hint="need 0 <= i < n")
    return i, n


def in_shard(user_id: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or zlib.crc32(user_id.encode()) % shard[1] == shard[0]


class Refresher:
    def __init__(
        self,
        store: EventStore,
        config: InterestConfig,
        writer: NarrativeWriter | None = None,
        hooks: Sequence[ProfileHook] = (),
        chunk_size: int = 32,
        incremental: IncrementalProfiles | None = None,
        drop_profiles: Callable[[Sequence[str]], Any] | None = None,
    ):
        """incremental: interest states a long-running process keeps (the live
        updater); without it, or without a kept catalog, every profile is the full
        recomputation, which stays the reference and the repair path."""
        self.store = store
        self.incremental = incremental
        self.repo = ProfileRepository(store)
        self.config = config
        self.writer = writer
        self.hooks = list(hooks)
        self.chunk_size = chunk_size
        # removes profiles from every store (vectors too); default: the database rows only
        self.drop_profiles = drop_profiles or (lambda users: erase_profile_rows(store, users))

    # -------------------------------------------------------------- selection
    def select_users(
        self,
        users: Sequence[str] | None = None,
        all_users: bool = False,
        since_ts: int | None = None,
        shard: tuple[int, int] | None = None,
        stale_narratives: bool = False,
    ) -> list[str]:
        if users:
            missing = [u for u in users if not self.store.user_exists(u)]
            if missing:
                raise NotFoundError(f"no events for user(s) {', '.join(missing[:5])}")
            chosen = list(dict.fromkeys(users))
        elif all_users:
            chosen = sorted(self.store.user_last_seqs())
        elif since_ts is not None:
            chosen = self.store.users_with_events_since(since_ts)
        else:
            chosen = self.store.lagging_users()
            if stale_narratives:
                with self.store.engine.connect() as conn:
                    extra = conn.execute(
                        select(profile_heads.c.user_id).where(profile_heads.c.narrative_source == "stale")
                    ).scalars()
                    chosen = sorted(set(chosen) | set(extra))
        return [u for u in chosen if in_shard(u, shard)]

    # -------------------------------------------------------------- refresh
    def _events_of(self, users: Sequence[str]) -> dict[str, tuple[list[Event], int]]:
        """Each user's events in time order and their last seq, for a chunk of users in
        one query (a round trip per user cost a fifth of a full refresh). Rows are read
        as the store reads them: fields of unusable types read as unknown."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(events).where(events.c.user_id.in_(list(users)))
                                .order_by(events.c.user_id, events.c.ts, events.c.seq)).all()
        out: dict[str, tuple[list[Event], int]] = {u: ([], 0) for u in users}
        for r in rows:
            evs, last = out[r.user_id]
            evs.append(_row_event(r))
            if r.seq > last:
                out[r.user_id] = (evs, r.seq)
        return out

    def compute(self, user_id: str, items: dict | None = None,
                read: tuple[list[Event], int] | None = None) -> tuple[dict[str, Any], int]:
        """The computed half of a user's profile and the last event seq it covers
        (`read`: the user's events and last seq, when the caller read them)."""
        if self.incremental is not None and items is not None:
            profile, last_seq = self.incremental.profile(self.store, user_id, items, self.config)
        else:
            evs, last_seq = read if read is not None else self._events_of([user_id])[user_id]
            if items is None:
                items = self.store.items_by_id({e.item_id for e in evs if e.item_id})
            profile = build_interest_profile(user_id, evs, items, self.config, last_seq)
        return self._computed(profile, last_seq)

    @staticmethod
    def _computed(profile: InterestProfile, last_seq: int) -> tuple[dict[str, Any], int]:
        data = profile.computed()
        data["computed_hash"] = profile_content_hash(data)
        return data, last_seq

    def refresh(
        self, users: Sequence[str], narratives: bool = True, progress: ProgressFn | None = None,
        items: dict | None = None, renarrate: AbstractSet[str] = frozenset(),
    ) -> RefreshReport:
        """items: the catalog, when the caller keeps one (a long-running service);
        else it is read here, whole for many users and per user for a few.
        renarrate: users whose old narrative must not be carried over (retention
        removed evidence it may name): the LLM writes a new one when it runs,
        else the template stands in, marked stale. Opted-out users are skipped
        and what is left of their profile is removed."""
        report = RefreshReport()
        start = time.perf_counter()
        opted = opted_out(self.store, users)
        if opted:  # never profiled: what is left of their profile goes (an opt-out that was interrupted)
            users = [u for u in users if u not in opted]
            report.opted_out = len(opted)
            self._drop_opted_out(sorted(opted))
        if items is None and len(users) > 50:
            items = self.store.items_by_id()
        use_llm = narratives and self.writer is not None
        for hook in self.hooks:  # hooks that batch across chunks (profile vectors) start buffering
            begin = getattr(hook, "begin", None)
            if begin is not None:
                begin()
        try:
            self._refresh_chunks(users, use_llm, progress, items, report, renarrate)
        finally:
            # hooks that batch across chunks (profile vectors) finish this run's work
            for hook in self.hooks:
                flush = getattr(hook, "flush", None)
                if flush is not None:
                    figures = flush()
                    if isinstance(figures, dict):
                        report.hooks.update(figures)
        report.seconds = time.perf_counter() - start
        return report

    def _refresh_chunks(self, users: Sequence[str], use_llm: bool, progress: ProgressFn | None, items: dict | None,
                        report: RefreshReport, renarrate: AbstractSet[str] = frozenset()) -> None:
        for offset in range(0, len(users), self.chunk_size):
            chunk = users[offset : offset + self.chunk_size]
            if self.incremental is not None and items is not None:
                held = self.incremental.profile_many(self.store, chunk, items, self.config)
                computed = [self._computed(*held[u]) for u in chunk]
            else:
                read = self._events_of(chunk)
                computed = [self.compute(u, items, read.get(u)) for u in chunk]
            latest = self.repo.latest_many(chunk)
            previous = [latest[u] for u in chunk]
            to_write: list[int] = []
            finals: list[tuple[dict[str, Any], int, str]] = []
            for i, ((data, seq), prev) in enumerate(zip(computed, previous)):
                if data["user_id"] in renarrate:
                    prev = None  # nothing of the old narrative is carried over
                same = prev is not None and prev.get("computed_hash") == data["computed_hash"]
                if same and prev.get("narrative_source") in ("llm", "template"):
                    self._carry(data, prev, prev["narrative_source"])
                    report.narratives_kept += 1
                elif use_llm:
                    to_write.append(i)
                else:
                    if prev is not None and prev.get("long_term", {}).get("narrative"):
                        self._carry(data, prev, "stale")
                    else:
                        long, short = template_narrative(data)
                        data["long_term"]["narrative"], data["short_term"]["narrative"] = long, short
                        data["narrative_source"], data["extra_tags"] = "stale", []
                    report.narratives_stale += 1
                finals.append((data, seq, data.get("narrative_source", "stale")))
            if to_write:
                t0 = time.perf_counter()
                written = self.writer.write_many([computed[i][0] for i in to_write])
                report.llm_seconds += time.perf_counter() - t0
                for i, result in zip(to_write, written):
                    data = computed[i][0]
                    data["long_term"]["narrative"], data["short_term"]["narrative"] = result.long, result.short
                    data["narrative_source"] = result.source
                    data["extra_tags"] = result.extra_tags
                    data["narrative_meta"] = {"attempts": result.attempts, "violations": result.violations}
                    report.output_tokens += result.output_tokens
                    if result.source == "llm":
                        report.narratives_llm += 1
                    else:
                        report.narratives_template += 1
                        errors = [v for v in result.violations if v.startswith("LLM error:")]
                        if errors:
                            report.narrative_errors[data["user_id"]] = errors[-1]
                    finals[i] = (data, computed[i][1], result.source)
            saved = []
            for (data, _seq, _source), (version, created) in zip(finals, self.repo.save_many(finals)):
                data["version"] = version
                report.users += 1
                report.versions[data["user_id"]] = version
                if created:
                    report.new_versions += 1
                    saved.append(data)
                else:
                    report.unchanged += 1
                if progress:
                    progress(report.users, len(users))
            for hook in self.hooks:
                if saved:
                    hook(saved)

    def _drop_opted_out(self, users: Sequence[str]) -> None:
        if self.incremental is not None:
            for user in users:
                self.incremental.forget(user)
        left = profile_rows_of(self.store, users)
        if left:
            self.drop_profiles(sorted(left))

    def apply_retention(self, days: float | None, narratives: bool = False, items: dict | None = None,
                        now_ms: int | None = None, hold: Callable[[Sequence[str]], Any] | None = None,
                        request_narratives: Callable[[Sequence[str]], Any] | None = None) -> dict[str, Any]:
        """Retention (profiles/retention.py): delete events older than `days`, rebuild
        the profiles that rested on them without carrying their narratives over,
        drop the older versions that cite a removed event, and remove the profiles
        of users left without events. `days` None: nothing (events are kept).
        Without `narratives` the rebuilt profiles get the template (stale) and their
        narratives are requested (`request_narratives`, default the durable queue).
        `hold(users)`: a context that keeps other writers of this process off them."""
        if not days:
            return {"events": 0, "users": 0}
        expiry = expire_events(self.store, days, now_ms)
        if not expiry.events:
            return {"events": 0, "users": 0, "cutoff_ms": expiry.cutoff_ms}
        with (hold(expiry.users) if hold is not None else nullcontext()):
            return self._rebuild_after_expiry(expiry, narratives, items, request_narratives)

    def _rebuild_after_expiry(self, expiry: Any, narratives: bool, items: dict | None,
                              request_narratives: Callable[[Sequence[str]], Any] | None) -> dict[str, Any]:
        affected = expiry.users
        remaining = self.store.user_last_seqs(affected)
        gone = [u for u in affected if u not in remaining]
        if self.incremental is not None:
            for user in affected:
                self.incremental.forget(user)
        if gone:
            self.drop_profiles(gone)
        rebuilt = [u for u in affected if u in remaining]
        with self.store.transaction() as conn:  # a head past the events left (a late-ingested old event went)
            for user in rebuilt:
                conn.execute(update(profile_heads).where(profile_heads.c.user_id == user,
                                                         profile_heads.c.last_event_seq > remaining[user])
                             .values(last_event_seq=remaining[user]))
        report = self.refresh(rebuilt, narratives=narratives, items=items, renarrate=frozenset(rebuilt)) if rebuilt \
            else RefreshReport()
        versions = drop_citing_versions(self.store, {u: expiry.removed[u] for u in rebuilt})
        if rebuilt and not (narratives and self.writer is not None):
            (request_narratives or NarrativeQueue(self.store).request)(rebuilt)  # the LLM rewrites them later
        return {"events": expiry.events, "users": len(affected), "cutoff_ms": expiry.cutoff_ms,
                "profiles_rebuilt": report.users, "profiles_removed": len(gone), "versions_removed": versions,
                "rebuilt_users": rebuilt}

    @staticmethod
    def _carry(data: dict[str, Any], prev: dict[str, Any], source: str) -> None:
        for h in ("long_term", "short_term"):
            data[h]["narrative"] = prev.get(h, {}).get("narrative")
        data["narrative_source"] = source
        data["extra_tags"] = prev.get("extra_tags", [])
        if "narrative_meta" in prev:
            data["narrative_meta"] = prev["narrative_meta"]
