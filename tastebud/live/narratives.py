"""Background narratives over the durable queue (`profiles.narrative_queue`):
the worker waits `narrative_debounce_s` after a user's latest request (a
burst is one narrative), claims a batch of `llm.concurrency` rows (vLLM
batches them; the embedded server takes one at a time), runs the Refresher
with the LLM and marks the rows done. Failures back off; a model that errs or
times out leaves the deterministic template.

Memory holds when each of up to `narrative_queue_size` users is due; the
table holds everything, and is read again for work of other processes,
retries and what did not fit.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

from tastebud.live.support import Shared, item_count
from tastebud.profiles.narrative_queue import NarrativeQueue

if TYPE_CHECKING:
    from tastebud.profiles.refresh import Refresher

RESCAN_S = 10.0  # how often the table is read for work of other processes and retries
MAX_BACKOFF_S = 300.0


class NarrativeWorker:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.settings = shared.settings
        self.queue = NarrativeQueue(shared.services.store)
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}  # user -> when it is due (epoch s)
        self._overflow = False
        self._rescan_at = 0.0
        self._in_flight = 0
        self._refresher: "Refresher | None" = None
        self._refresher_items = -1

    def request(self, users: Sequence[str]) -> None:
        """Queue durably (a new request moves requested_at, keeping any backoff)
        and remember as many as fit in memory; the table keeps the rest."""
        requested_ms = self.queue.request(users)
        due = requested_ms / 1000 + self.settings.narrative_debounce_s
        with self._cond:
            for user in users:
                if user in self._due or len(self._due) < self.settings.narrative_queue_size:
                    self._due[user] = due  # a later request pushes the narrative back: bursts coalesce
                else:
                    self._overflow = True
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stats(self, counts: dict[str, int]) -> dict[str, Any]:
        with self._cond:
            in_memory, in_flight = len(self._due), self._in_flight
        return {
            "in_memory": in_memory,
            "in_flight": in_flight,
            "processed": counts.get("narratives_processed", 0),
            "llm": counts.get("narratives_llm", 0),
            "template": counts.get("narratives_template", 0),
            "kept": counts.get("narratives_kept", 0),
            "llm_errors": counts.get("narrative_llm_errors", 0),
            "failed_batches": counts.get("narrative_failed_batches", 0),
        }

    # ------------------------------------------------------------------ the thread
    def loop(self) -> None:
        stopping, failures = self.shared.stopping, 0
        while not stopping.is_set():
            try:
                now = time.time()
                with self._cond:
                    rescan = now >= self._rescan_at or (
                        self._overflow and len(self._due) < self.settings.narrative_queue_size // 2)
                if rescan:
                    self._rescan()
                    self._rescan_at = now + RESCAN_S
                with self._cond:
                    due = sorted((t, u) for u, t in self._due.items() if t <= now)
                    if not due:
                        wake = min([self._rescan_at, *self._due.values()])
                        self._cond.wait(timeout=min(RESCAN_S, max(0.05, wake - now)))
                        continue
                batch_size = max(1, self.shared.services.llm.concurrency)  # may start the embedded server, once
                with self._cond:
                    batch = [u for _, u in due[:batch_size] if u in self._due]
                    for user in batch:
                        del self._due[user]
                    self._in_flight = len(batch)
                try:
                    self._write(batch)
                finally:
                    with self._cond:
                        self._in_flight = 0
                failures = 0
            except Exception as exc:
                failures += 1
                self.shared.book.error("narratives", exc)
                stopping.wait(min(MAX_BACKOFF_S, 2.0 ** failures))

    def _rescan(self) -> None:
        """Rows in the table but not in memory: left by a restart, queued while
        memory was full, backed off, or queued by another process."""
        size = self.settings.narrative_queue_size
        rows = self.queue.pending(size)
        debounce = self.settings.narrative_debounce_s
        with self._cond:
            for user, requested_at, not_before in rows:
                if user in self._due:
                    continue
                if len(self._due) >= size:
                    break
                self._due[user] = max(requested_at / 1000 + debounce, (not_before or 0) / 1000)
            self._overflow = len(rows) >= size

    # ------------------------------------------------------------------ the work
    def _lease_s(self) -> float:
        """How long a claimed row is ours: two LLM calls per user, each bounded by llm_timeout."""
        return 2 * self.settings.llm_timeout + 60

    def _narrative_refresher(self) -> "Refresher":
        """Built again when the catalog grows (the grounding checker knows its titles)."""
        n_items = item_count(self.shared.services.store)
        if self._refresher is None or n_items != self._refresher_items:
            refresher = self.shared.services.refresher(narratives=True)
            refresher.hooks = [self.shared.current_versions_only(h, lock=True) for h in refresher.hooks]
            self._refresher, self._refresher_items = refresher, n_items
        return self._refresher

    def _write(self, batch: list[str]) -> None:
        claimed = self.queue.claim(batch, self._lease_s())
        if len(claimed) < len(batch):  # leased elsewhere or backing off: the table says when
            self._rescan_at = 0.0
        if not claimed:
            return
        services, book = self.shared.services, self.shared.book
        has_profile = services.profiles.head_versions(list(claimed))
        ready = [u for u in batch if u in has_profile]
        for user in [u for u in claimed if u not in has_profile]:
            if services.store.user_exists(user):  # its computed profile is on the way: come back after it
                self._release(user, max(1.0, self.settings.narrative_debounce_s))
            else:
                self.queue.drop([user])
        if not ready:
            return
        try:
            report = self._narrative_refresher().refresh(ready, narratives=True, items=self.shared.catalog.get())
        except Exception as exc:
            book.count(narrative_failed_batches=1)
            book.error("narratives", exc)
            self._back_off(ready, exc)
            return
        book.count(narratives_processed=len(ready), narratives_llm=report.narratives_llm,
                   narratives_template=report.narratives_template, narratives_kept=report.narratives_kept,
                   narrative_llm_errors=len(report.narrative_errors))
        for user, error in report.narrative_errors.items():
            book.error("narratives", error, user, with_traceback=False)
        newer = self.queue.done({u: claimed[u] for u in ready})  # a newer request keeps its row
        with self._cond:
            for user, requested_at in newer.items():
                self._due[user] = max(self._due.get(user, 0.0), requested_at / 1000 + self.settings.narrative_debounce_s)

    def _release(self, user: str, delay_s: float) -> None:
        self.queue.release(user, delay_s)
        with self._cond:
            self._due[user] = time.time() + delay_s

    def _back_off(self, users: Sequence[str], exc: BaseException) -> None:
        delays = self.queue.back_off(users, f"{type(exc).__name__}: {exc}",
                                     base_s=max(1.0, self.settings.narrative_debounce_s), max_s=MAX_BACKOFF_S)
        with self._cond:
            for user, delay in delays.items():
                self._due[user] = time.time() + delay
