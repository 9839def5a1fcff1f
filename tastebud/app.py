"""The composition root: builds the services from settings, lazily, so a
command only pays for what it uses, and takes any part by injection instead,
so tests and the API pass theirs in (`App(settings, llm=fake)`) rather than
patching. It sits above the layers it wires (docs/design.md#composition-root):
nothing below `tastebud.cli`, `tastebud.api` and `tastebud.live` imports it;
the agent and the live workers depend on small Protocols of what they use.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from tastebud.settings import Settings, load_settings

# The parts a caller may inject; each is otherwise built on first use.
INJECTABLE = ("store", "llm", "embedder", "vectors", "recommendations", "profiles")


class App:
    def __init__(self, settings: Settings | None = None, *, store: Any = None, llm: Any = None, embedder: Any = None,
                 vectors: Any = None, recommendations: Any = None, profiles: Any = None, **flags: Any):
        self.settings = settings or load_settings(**flags)
        given = dict(store=store, llm=llm, embedder=embedder, vectors=vectors, recommendations=recommendations,
                     profiles=profiles)
        # A cached_property reads the instance dict first: an injected part is simply already "built".
        self.__dict__.update({name: part for name, part in given.items() if part is not None})
        self._injected = {name for name, part in given.items() if part is not None}

    def started(self, part: str) -> bool:
        """Whether a part exists yet (built or injected): status pages report the
        LLM without starting it, close() stops only what was started."""
        if part not in INJECTABLE:
            raise ValueError(f"unknown part {part!r}")
        return part in vars(self)

    @cached_property
    def home(self):
        """TASTEBUD_HOME, opened private: created 0700, anything looser tightened
        (one WARNING line), and the process umask set to 077 so that what SQLite,
        Chroma, logging and llama.cpp create under it later is owner-only too."""
        from tastebud.home import open_home

        return open_home(self.settings.home)

    @cached_property
    def store(self):
        from tastebud.profiles.store import EventStore

        _ = self.home
        return EventStore.from_settings(self.settings)

    @cached_property
    def llm(self):
        """The chat model (vLLM when TASTEBUD_LLM_BASE_URL is set, else the
        embedded server, started here and stopped by close() or at exit)."""
        from tastebud.llm import get_llm

        _ = self.home  # the embedded model is assembled under it
        return get_llm(self.settings)

    def ingestor(self, progress=None):
        from tastebud.profiles.events import ValueRules
        from tastebud.profiles.ingest import Ingestor

        return Ingestor(self.store, self.settings.ingest_batch_size, progress, ValueRules.from_settings(self.settings))

    @cached_property
    def profiles(self):
        from tastebud.profiles.versions import ProfileRepository

        return ProfileRepository(self.store)

    def narrative_writer(self, concurrency: int | None = None):
        """The LLM-backed writer; builds the LLM backend (and may start the embedded server)."""
        from tastebud.profiles.narrative import GroundingChecker, NarrativeWriter

        catalog = self.store.items_by_id()
        checker = GroundingChecker(
            (i.title for i in catalog.values() if i.title),
            {c for i in catalog.values() for c in i.categories},
        )
        return NarrativeWriter(self.llm.chat_model, checker, concurrency or self.llm.concurrency,
                               timeout=self.settings.llm_timeout)

    def refresher(self, narratives: bool = True, concurrency: int | None = None):
        from tastebud.profiles.interest import InterestConfig
        from tastebud.profiles.refresh import Refresher

        writer = self.narrative_writer(concurrency) if narratives else None
        return Refresher(self.store, InterestConfig.from_settings(self.settings), writer, hooks=self.profile_hooks(),
                         drop_profiles=lambda users: self.privacy.drop_profiles(users))  # opted out: every store

    @cached_property
    def embedder(self):
        """The embedding model, loaded here (torch and all); the other parts hold
        `encoder` instead, so a command that only reads vectors never loads it."""
        from tastebud.retrieval.embedder import get_embedder

        return get_embedder(self.settings)

    @cached_property
    def encoder(self):
        """The embedder as the vectors and the recommendations hold it: the injected
        or already built one, else a LazyEmbedder that builds `embedder` on its
        first encode (so `started("embedder")` says whether the model was loaded)."""
        if self.started("embedder"):
            return self.embedder
        from tastebud.retrieval.embedder import LazyEmbedder, embedder_name

        return LazyEmbedder(embedder_name(self.settings), lambda: self.embedder)

    @cached_property
    def vectors(self):
        from tastebud.retrieval.vectors import VectorStore

        _ = self.home
        return VectorStore.from_settings(self.settings, self.encoder)

    @cached_property
    def recommendations(self):
        """Opens Chroma (`vectors`) on the first request that needs vectors: `why`
        and the log are read without it."""
        from tastebud.retrieval.service import RecommendationService

        return RecommendationService(self.store, lambda: self.vectors, self.settings.blend, self.encoder,
                                     ranker=self.settings.ranker_path)

    @cached_property
    def reclog(self):
        """The recommendation log, all that `why` reads: the recommendations' own when
        they exist, else one over the store (without importing the recommender)."""
        if self.started("recommendations"):
            return self.recommendations.log
        from tastebud.retrieval.reclog import RecommendationLog

        return RecommendationLog(self.store)

    @cached_property
    def privacy(self):
        """Forget and export over every store that holds a user (docs/design.md#privacy)."""
        from pathlib import Path

        from tastebud.agent import session
        from tastebud.retrieval.privacy import Privacy  # not retrieval.service: no scipy

        home = Path(self.home)

        class Sessions:
            def about(self, user_id):
                return session.sessions_about(home, user_id)

            def erase(self, user_id):
                return session.erase_sessions(home, user_id)

        return Privacy(self.store, lambda: self.vectors, home, Sessions())

    def profile_hooks(self) -> list:
        """Called with each batch of new profile versions: keeps profile vectors in Chroma
        current, computed from the item vectors (retrieval/profile_vectors.py) in big
        batches across users (flushed at the end of each refresh run)."""
        from tastebud.profiles.versions import ProfileRepository
        from tastebud.retrieval.profile_vectors import ProfileVectorSync

        def index_items(ids):  # cited items not indexed yet: embedded now (the model loads only then)
            return self.vectors.sync_items(self.store.items_by_id(set(ids)).values())

        return [ProfileVectorSync(lambda: self.vectors, runs_dir=self.settings.home / "runs", index_items=index_items,
                                  current_profiles=lambda: ProfileRepository(self.store).current_profiles())]

    def close(self) -> None:
        """Close what this App built; injected parts belong to whoever passed them in."""
        if self.started("store") and "store" not in self._injected:
            self.store.close()
        if self.started("llm") and "llm" not in self._injected:
            self.llm.close()
