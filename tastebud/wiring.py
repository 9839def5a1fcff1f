"""Builds services from settings, lazily, so a command only pays for what it uses."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from tastebud.settings import Settings, load_settings


class App:
    def __init__(self, settings: Settings | None = None, **flags: Any):
        self.settings = settings or load_settings(**flags)

    @cached_property
    def store(self):
        from profiles.store import EventStore

        return EventStore.from_settings(self.settings)

    def ingestor(self, progress=None):
        from profiles.ingest import Ingestor

        return Ingestor(self.store, self.settings.ingest_batch_size, progress)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
