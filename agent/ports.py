"""What the agent needs of the services around it, as a Protocol: the agent is
wired by the composition root (`tastebud.app.App` has all of it) but does not
depend on it, so a test or another host can pass anything of this shape."""

from __future__ import annotations

from typing import Any, Protocol

from tastebud.settings import Settings


class AgentServices(Protocol):
    settings: Settings

    @property
    def store(self) -> Any: ...  # tastebud.profiles.store.EventStore

    @property
    def profiles(self) -> Any: ...  # tastebud.profiles.versions.ProfileRepository

    @property
    def recommendations(self) -> Any: ...  # tastebud.retrieval.service.RecommendationService

    @property
    def vectors(self) -> Any: ...  # tastebud.retrieval.vectors.VectorStore

    @property
    def embedder(self) -> Any: ...  # tastebud.retrieval.embedder.Embedder

    @property
    def llm(self) -> Any: ...  # tastebud.llm.LLM, started on first use

    @property
    def privacy(self) -> Any: ...  # tastebud.retrieval.privacy.Privacy (opt-out)

    def started(self, part: str) -> bool:
        """Whether a part (e.g. "llm") exists yet, without starting it."""

    def refresher(self, narratives: bool = True, concurrency: int | None = None) -> Any: ...
