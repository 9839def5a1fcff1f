"""Data rights: forget a user everywhere, export everything held about them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tastebud.cli.state import State, app
from tastebud.errors import InputError


@app.command("forget")
def forget(
    user: str = typer.Argument(..., help="The user to remove from every store."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Remove everything held about a user: events, profiles, vectors, the recommendation log,
    the narrative queue, quarantined rows, chat sessions, API keys and log lines. One audit
    row stays, with a salted hash of the id. Safe to rerun; idempotent."""
    from tastebud.cli.render import console, print_json

    if not user.strip() or len(user) > 64:
        raise InputError("a user id is 1 to 64 characters")
    if not yes:
        if not typer.confirm(f"Forget user {user!r} everywhere? This cannot be undone", default=False):
            raise typer.Exit(1)
    report = State.app().privacy.forget(user, requested_by="cli")
    if as_json:
        print_json(report)
        return
    removed = report["removed"]
    parts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in removed.items() if v)
    console.print(f"forgot user {user!r}: {parts or 'nothing was left'} ({report['seconds']:.2f} s)", highlight=False)
    console.print(f"note: {report['item_side']}", highlight=False)


@app.command("export")
def export(
    user: str = typer.Argument(..., help="The user whose data to export."),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the JSON here (default: stdout)."),
) -> None:
    """Everything held about a user as one JSON document (schema: retrieval/export.schema.json)."""
    import json

    document = State.app().privacy.export(user)
    text = json.dumps(document, ensure_ascii=False, indent=1)
    if out is None:
        typer.echo(text)
        return
    import os

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner-only
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    typer.echo(f"wrote {out} ({len(document['events'])} events, {len(document['profile_versions'])} profile versions)",
               err=True)


@app.command("optout")
def optout(
    user: str = typer.Argument(..., help="The user who no longer wants to be profiled."),
    undo: bool = typer.Option(False, "--undo", help="Opt the user back in (same as `tastebud optin U`)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Stop profiling a user: their profile versions, narratives, tags and profile vectors are
    removed now, no refresh makes new ones, and their recommendations are popularity only (minus
    what they have seen). Events and API keys are kept. `--undo` (or `optin`) reverses it; the next
    refresh rebuilds the profile."""
    _opt(user, undo, as_json)


@app.command("optin")
def optin(
    user: str = typer.Argument(..., help="The user to profile again."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Profile a user again after `tastebud optout`; the next refresh rebuilds their profile."""
    _opt(user, True, as_json)


def _opt(user: str, undo: bool, as_json: bool) -> None:
    from tastebud.cli.render import console, print_json

    if not user.strip() or len(user) > 64:
        raise InputError("a user id is 1 to 64 characters")
    privacy = State.app().privacy
    report = privacy.opt_in(user) if undo else privacy.opt_out(user, requested_by="cli")
    if as_json:
        print_json(report)
        return
    if undo:
        state = "opted back in" if report["was_opted_out"] else "was not opted out"
        console.print(f"user {user!r} {state}: the next refresh rebuilds their profile", highlight=False)
        return
    parts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in report["removed"].items() if v)
    console.print(f"user {user!r} opted out of profiling{' (already)' if report['already'] else ''}: "
                  f"removed {parts or 'nothing (no profile was left)'}; events and keys kept; "
                  f"recommendations are popularity only until `tastebud optin {user}`", highlight=False)
