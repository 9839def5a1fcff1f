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
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sqlalchemy import select

from tastebud.profiles.events import Event
from tastebud.profiles.incremental import IncrementalProfiles
from tastebud.profiles.interest import InterestConfig, build_interest_profile
from tastebud.profiles.migrations import events, profile_heads
from tastebud.profiles.narrative import NarrativeWriter, template_narrative
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
    def _events(self, user_id: str) -> tuple[list[Event], int]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(events).where(events.c.user_id == user_id).order_by(events.c.ts, events.c.seq)
            ).all()
        evs = [_row_event(r) for r in rows]  # the store's reading: fields of unusable types read as unknown
        return evs, max((r.seq for r in rows), default=0)

    def compute(self, user_id: str, items: dict | None = None) -> tuple[dict[str, Any], int]:
        """The computed half of a user's profile and the last event seq it covers."""
        if self.incremental is not None and items is not None:
            profile, last_seq = self.incremental.profile(self.store, user_id, items, self.config)
        else:
            evs, last_seq = self._events(user_id)
            if items is None:
                items = self.store.items_by_id({e.item_id for e in evs if e.item_id})
            profile = build_interest_profile(user_id, evs, items, self.config, last_seq)
        data = profile.computed()
        data["computed_hash"] = profile_content_hash(data)
        return data, last_seq

    def refresh(
        self, users: Sequence[str], narratives: bool = True, progress: ProgressFn | None = None,
        items: dict | None = None,
    ) -> RefreshReport:
        """items: the catalog, when the caller keeps one (a long-running service);
        else it is read here, whole for many users and per user for a few."""
        report = RefreshReport()
        start = time.perf_counter()
        if items is None and len(users) > 50:
            items = self.store.items_by_id()
        use_llm = narratives and self.writer is not None
        for hook in self.hooks:  # hooks that batch across chunks (profile vectors) start buffering
            begin = getattr(hook, "begin", None)
            if begin is not None:
                begin()
        try:
            self._refresh_chunks(users, use_llm, progress, items, report)
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
                        report: RefreshReport) -> None:
        for offset in range(0, len(users), self.chunk_size):
            chunk = users[offset : offset + self.chunk_size]
            computed = [self.compute(u, items) for u in chunk]
            previous = [self.repo.latest(u) for u in chunk]
            to_write: list[int] = []
            finals: list[tuple[dict[str, Any], int, str]] = []
            for i, ((data, seq), prev) in enumerate(zip(computed, previous)):
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
            for data, seq, source in finals:
                version, created = self.repo.save(data, seq, source)
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

    @staticmethod
    def _carry(data: dict[str, Any], prev: dict[str, Any], source: str) -> None:
        for h in ("long_term", "short_term"):
            data[h]["narrative"] = prev.get(h, {}).get("narrative")
        data["narrative_source"] = source
        data["extra_tags"] = prev.get("extra_tags", [])
        if "narrative_meta" in prev:
            data["narrative_meta"] = prev["narrative_meta"]
