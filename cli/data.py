"""Operator commands for data: config, ingest, quarantine, status."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tastebud.cli.state import State, app
from tastebud.errors import InputError

config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load events and catalog items.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Rows that failed validation.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(ingest_app, name="ingest")
app.add_typer(quarantine_app, name="quarantine")


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Print every setting, its value and where it came from (flag, env, toml, default)."""
    from tastebud.cli.render import console, print_json

    settings = State.app().settings
    values = settings.model_dump(mode="json")
    if settings.llm_api_key and settings.llm_api_key != "not-needed":
        values["llm_api_key"] = "***"
    sources = settings.sources
    if as_json:
        print_json({k: {"value": values[k], "source": sources[k]} for k in values})
        return
    from rich.table import Table

    table = Table(title=f"tastebud settings (home: {settings.home})")
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    table.add_column("source")
    for key, value in values.items():
        table.add_row(key, str(value), sources[key])
    console.print(table)


def _summary(reports: dict, as_json: bool) -> None:
    from tastebud.cli.render import console, print_json

    data = {name: r.as_dict() for name, r in reports.items()}
    if as_json:
        print_json(data)
    else:
        from rich.table import Table

        table = Table(title="ingest summary")
        for col in ("kind", "read", "accepted", "duplicates", "rejected", "source"):
            table.add_column(col, justify="right" if col not in ("kind", "source") else "left")
        for r in reports.values():
            table.add_row(r.kind, f"{r.read:,}", f"{r.accepted:,}", f"{r.duplicates:,}", f"{r.rejected:,}", r.source)
        console.print(table)
        for r in reports.values():
            for reason, count in r.reasons.most_common(5):
                console.print(f"  [yellow]{count:,} rejected[/] ({r.kind}): {reason}")
        if any(r.rejected for r in reports.values()):
            console.print("  see them with [bold]tastebud quarantine list[/]")
    if all(r.read == 0 for r in reports.values()):
        raise InputError("nothing could be read")


@ingest_app.command("events")
def ingest_events(
    file: str = typer.Argument(..., help="CSV or JSONL file, or - for stdin."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv or jsonl (default: from the extension)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Append behaviour events; re-ingesting the same rows adds nothing."""
    from tastebud.cli.render import ByteProgress

    with ByteProgress("events") as bar:
        report = State.app().ingestor(bar).ingest_events(file, fmt)
    _summary({"events": report}, as_json)


@ingest_app.command("catalog")
def ingest_catalog(
    file: str = typer.Argument(..., help="CSV or JSONL file, or - for stdin."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv or jsonl (default: from the extension)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Insert or update catalog items."""
    from tastebud.cli.render import ByteProgress

    with ByteProgress("catalog") as bar:
        report = State.app().ingestor(bar).ingest_catalog(file, fmt)
    _summary({"catalog": report}, as_json)


@ingest_app.command("movielens")
def ingest_movielens_cmd(
    directory: Path = typer.Argument(..., help="An ml-latest-small or ml-100k directory."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Load a MovieLens release: ratings, tags (events) and movies (catalog)."""
    from tastebud.cli.render import ByteProgress
    from tastebud.profiles.movielens import adopt_rating_scale, ingest_movielens

    with ByteProgress("movielens") as bar:
        reports = ingest_movielens(State.app().ingestor(bar), directory)
    scale = adopt_rating_scale(State.app().settings, directory)
    _summary(reports, as_json)
    if scale and not as_json:
        from tastebud.cli.render import console

        console.print(f"rating scale {scale[0]:g}-{scale[1]:g} (this release's) saved to tastebud.toml")


@quarantine_app.command("list")
def quarantine_list(
    limit: int = typer.Option(50, "--limit", "-n"),
    kind: Optional[str] = typer.Option(None, "--kind", help="events or catalog"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show open quarantined rows with file, line and reason."""
    from tastebud.cli.render import console, print_json

    rows = State.app().store.open_quarantine(limit=limit, kind=kind)
    if as_json:
        print_json([{k: r[k] for k in ("id", "kind", "source", "line_no", "reason", "raw")} for r in rows])
        return
    if not rows:
        console.print("quarantine is empty")
        return
    from rich.table import Table

    table = Table(title=f"quarantine (first {limit})")
    for col in ("id", "kind", "source:line", "reason", "raw"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["kind"], f"{Path(r['source']).name}:{r['line_no']}", r["reason"], r["raw"][:80])
    console.print(table)


@quarantine_app.command("retry")
def quarantine_retry(
    ids: Optional[list[int]] = typer.Argument(None, help="Row ids to retry (default: all open rows)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-validate quarantined rows (after a fix); those that pass are ingested."""
    from tastebud.cli.render import console, print_json

    report = State.app().ingestor().retry_quarantine(ids or None)
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(
            f"retried {report.read:,}: {report.accepted:,} ingested, {report.duplicates:,} already present, "
            f"{report.rejected:,} still rejected"
        )


@quarantine_app.command("fix")
def quarantine_fix(
    qid: int = typer.Argument(..., help="Row id, from `quarantine list`."),
    raw: str = typer.Argument(..., help="The corrected row, written as in its file (same columns and delimiter)."),
    retry: bool = typer.Option(True, "--retry/--no-retry", help="Re-validate the row right away."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Correct a quarantined row's raw text (a typo, a bad date) and retry it."""
    from tastebud.cli.render import console, print_json

    state = State.app()
    state.store.fix_quarantine(qid, raw)
    if not retry:
        if as_json:
            print_json({"id": qid, "fixed": True, "retried": False})
        else:
            console.print(f"row {qid} updated; run [bold]tastebud quarantine retry {qid}[/] to ingest it")
        return
    report = state.ingestor().retry_quarantine([qid])
    if as_json:
        print_json({"id": qid, "fixed": True, "retried": True, **report.as_dict()})
    elif report.rejected:
        [row] = state.store.open_quarantine(ids=[qid])
        console.print(f"row {qid} still rejected: {row['reason']}", highlight=False)
    else:
        console.print(f"row {qid} ingested ({'already present' if report.duplicates else 'new'})")


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Counts of users, items, events, quarantine, and profiles lagging their events."""
    from tastebud.cli.render import console, print_json

    from tastebud.retrieval.ranker_files import ranker_state

    app_ = State.app()
    data = app_.store.status()
    data["ranker"] = ranker_state(app_.settings.ranker_path)
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title="tastebud status", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key in ("users", "items", "stub_items", "events"):
        table.add_row(key, f"{data[key]:,}")
    for etype, count in data["events_by_type"].items():
        table.add_row(f"  {etype}", f"{count:,}")
    table.add_row("first event", data["first_event_at"] or "-")  # None: no events, or not renderable
    table.add_row("last event", data["last_event_at"] or "-")
    table.add_row("quarantined", f"{data['quarantined']:,}")
    table.add_row("profiles", f"{data['profiles']:,}")
    table.add_row("profiles lagging", f"{data['profiles_stale']:,}")
    table.add_row("narratives stale", f"{data['narratives_stale']:,}")
    ranker = data["ranker"]
    said = {"off": "off (setting ranker=off): the blend", "none": "not trained: the blend (tastebud train-ranker)",
            "stale": "from an older version: the blend until tastebud train-ranker",
            "unreadable": "its files are unreadable: the blend until tastebud train-ranker"}.get(ranker["state"])
    if said is None:
        facts = ([f"trained {ranker['trained_at']}"] if ranker.get("trained_at") else []) + \
            ([f"on {ranker['trained_on_events']:,} events"] if "trained_on_events" in ranker else [])
        said = "in use" + (f" ({' '.join(facts)})" if facts else "")
    table.add_row("ranker", said)
    console.print(table)
