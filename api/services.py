"""What one API process holds: one `App` (store, vectors, recommender, LLM),
the key store, the rate limiter, the live updater and the chat agent."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tastebud.api.chat import ChatService
from tastebud.api.keys import KeyStore
from tastebud.api.limits import TokenBuckets
from tastebud.retrieval.memo import ITEM_MEMO_S, RecordMemo
from tastebud.settings import Settings

if TYPE_CHECKING:
    from tastebud.live import LiveUpdates
    from tastebud.app import App


@dataclass
class Services:
    app: "App"
    keys: KeyStore
    limiter: TokenBuckets
    live: "LiveUpdates"
    chat: ChatService
    checkpoints: threading.Event | None = None  # stops the WAL checkpoint thread (SQLite)

    @classmethod
    def start(cls, settings: Settings, parts: dict[str, Any] | None = None) -> "Services":
        """Build and warm everything a request needs, so the first one is not slow,
        and fail at startup, not per request, when a store is unreachable.
        `parts`: injected into the composition root (a test's embedder or LLM)."""
        from tastebud.live import LiveUpdates
        from tastebud.live.support import freeze_heap
        from tastebud.app import App

        app = App(settings, **(parts or {}))
        live = checkpoints = None
        try:
            checkpoints = app.store.checkpoint_in_background()  # not in the writers' queue
            keys = KeyStore(app.store)
            _ = app.recommendations.side  # item side (cached on disk; may not need Chroma)
            # the Chroma client: an unreachable Chroma fails here, not per request; the live
            # path reads the same item vectors again and again (retrieval/memo.py)
            app.vectors.items.memo = RecordMemo(ITEM_MEMO_S)
            _ = app.embedder
            if settings.live_role == "all":  # a live thread here: see the setting (a `worker` has none)
                sys.setswitchinterval(settings.serve_switch_interval_ms / 1000)
            freeze = freeze_heap if settings.serve_freeze_gc else None
            live = LiveUpdates(app, narratives=settings.serve_narratives, on_warmed=freeze, role=settings.live_role)
            live.start()
            chat = ChatService(app)
            chat.warm_up()
            if freeze is not None:  # and again once the live thread has warmed the interest states
                freeze()
        except BaseException:
            if live is not None:
                live.stop()
            if checkpoints is not None:
                checkpoints.set()
            app.close()
            raise
        return cls(app, keys, TokenBuckets(settings.api_rate_limit_per_s, settings.api_rate_burst), live, chat,
                   checkpoints)

    def stop(self, timeout: float = 10.0) -> None:
        """Called after the server stopped taking requests: finish in-flight live
        work, then close the store (and the embedded LLM server, if we started it)."""
        try:
            self.live.stop(timeout)
        finally:
            if self.checkpoints is not None:
                self.checkpoints.set()
            self.app.close()

    def status(self) -> dict[str, Any]:
        from tastebud.live.support import process_stats

        out: dict[str, Any] = {"store": self.app.store.status(), "live": self.live.stats(),
                               "process": process_stats()}  # of the worker that answered
        try:
            out["vectors"] = {"items": self.app.vectors.items.count(), "profiles": self.app.vectors.profiles.count()}
        except Exception as exc:  # noqa: BLE001 - a down Chroma server is status, not a failure
            out["vectors"] = {"error": str(exc)}
        out["chat"] = self.chat.describe()
        if self.app.started("llm"):
            out["llm"] = self.app.llm.describe()
        return out

    def readiness(self) -> tuple[dict[str, Any], bool]:
        """(checks, ready): the store answers at the current schema, Chroma answers."""
        from tastebud.profiles.migrations import current_revision, head_revision

        checks: dict[str, Any] = {}
        try:
            with self.app.store.engine.connect() as conn:
                revision = current_revision(conn)
            checks["store"] = "ok" if revision == head_revision() else f"schema at revision {revision}, not {head_revision()}"
        except Exception as exc:  # noqa: BLE001
            checks["store"] = f"unreachable: {type(exc).__name__}"
        try:
            self.app.vectors.items.count()
            checks["vectors"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["vectors"] = f"unreachable: {type(exc).__name__}"
        return checks, all(v == "ok" for v in checks.values())
