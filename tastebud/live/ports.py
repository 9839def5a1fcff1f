"""What the live workers need of the services around them, as a Protocol: the
composition root (`tastebud.app.App`) has all of it, but the workers do not
depend on it, so `tastebud serve`, a CLI daemon or a test passes anything of
this shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tastebud.llm import LLM
    from tastebud.profiles.refresh import Refresher
    from tastebud.profiles.store import EventStore
    from tastebud.profiles.versions import ProfileRepository
    from tastebud.retrieval.service import RecommendationService
    from tastebud.retrieval.vectors import VectorStore
    from tastebud.settings import Settings


class LiveServices(Protocol):
    @property
    def settings(self) -> "Settings": ...

    @property
    def store(self) -> "EventStore": ...

    @property
    def profiles(self) -> "ProfileRepository": ...

    @property
    def vectors(self) -> "VectorStore": ...  # item vectors for new catalog items

    @property
    def recommendations(self) -> "RecommendationService": ...  # its item side is rebuilt and swapped

    @property
    def llm(self) -> "LLM": ...  # read by the narrative worker only (its batch size); may start it

    def refresher(self, narratives: bool = True) -> "Refresher":
        """A Refresher whose profile hooks keep profile vectors current; with
        `narratives`, its narrative writer calls the LLM."""
