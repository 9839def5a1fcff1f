"""The Typer app and the per-invocation state that every command module shares.

Its own module so that command modules import it, and `cli.main` imports
the command modules, without an import cycle."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(
    name="tastebud",
    help="Living, explainable user profiles for recommender systems.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


class State:
    debug = False
    flags: dict = {}
    # Parts passed to the composition root (App(settings, embedder=…)): an
    # in-process caller, such as a test, injects its own instead of patching.
    parts: dict[str, Any] = {}
    _app = None

    @classmethod
    def app(cls):
        if cls._app is None:
            from tastebud.app import App

            cls._app = App(**cls.flags, **cls.parts)
        return cls._app
