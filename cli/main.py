"""The `tastebud` command. Only this package imports Typer and Rich; heavy
libraries are imported inside commands so `tastebud --help` stays instant."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from tastebud.cli.state import State, app
from tastebud.errors import TastebudError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

@app.callback()
def main(
    home: Optional[Path] = typer.Option(None, "--home", help="State directory (env TASTEBUD_HOME)."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="SQLAlchemy URL of the event store."),
    llm_base_url: Optional[str] = typer.Option(None, "--llm-base-url", help="OpenAI-compatible endpoint (vLLM)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from tastebud.home import private_umask

    private_umask()  # everything a command creates under TASTEBUD_HOME is owner-only (App tightens the rest)
    State.debug = debug
    State.flags = {"home": home, "database_url": database_url, "llm_base_url": llm_base_url}
    State._app = None


def _register() -> None:
    """Import the command modules: each registers its commands on `app`."""
    from tastebud.cli import chat, data, doctor, privacy, profile, recs, serve  # noqa: F401


def run() -> None:
    _register()
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except TastebudError as exc:
        if State.debug:
            raise
        from rich.console import Console
        from rich.markup import escape

        # One line however long, and a message is text, not markup (a file may be named "[x].csv").
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.stderr.write("aborted\n")
            sys.exit(1)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if State.debug:
            raise
        sys.stderr.write(f"error: unexpected {exc.__class__.__name__}: {exc} (rerun with --debug for a traceback)\n")
        sys.exit(70)
    finally:
        if State._app is not None:
            State._app.close()


if __name__ == "__main__":  # pragma: no cover
    run()
