"""`tastebud doctor`: stored rows that break the value rules or disagree, and their repair."""

from __future__ import annotations

from typing import Any

import typer

from tastebud.cli.state import State, app

SHOWN_PER_KIND = 20  # text output lists at most this many findings of one kind (--json lists all)


def build_doctor(app_: Any) -> Any:
    """A Doctor over the App's store: vectors opened only for the orphan check (no
    embedding model needed for that), profiles recomputed through the App's
    Refresher without narratives, as `tastebud refresh --no-narratives` does."""
    from tastebud.profiles.doctor import Doctor
    from tastebud.profiles.events import ValueRules

    settings = app_.settings

    def vectors() -> Any:
        if app_.started("vectors"):
            return app_.vectors
        if not settings.chroma_url and not settings.chroma_path.exists():
            return None  # nothing was ever indexed here: no vector can be an orphan
        from tastebud.retrieval.vectors import VectorStore, make_client

        return VectorStore(make_client(settings), None)

    return Doctor(app_.store, ValueRules.from_settings(settings), vectors=vectors,
                  refresher=lambda: app_.refresher(narratives=False))


@app.command("doctor")
def doctor(
    fix: bool = typer.Option(False, "--fix", help="Quarantine bad events, repair heads and stubs, recompute "
                                                  "profiles (no narratives), delete orphan vectors."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Find stored rows that break the value rules or are inconsistent; exit 1 while problems remain."""
    from tastebud.cli.render import console, print_json

    checker = build_doctor(State.app())
    report = checker.fix() if fix else checker.check()
    if as_json:
        print_json(report.as_dict())
    else:
        _render(console, report)
    if report.problems:
        raise typer.Exit(1)


def _render(console: Any, report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.fixed is not None:
        done = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in report.fixed.items() if v) or "nothing to fix"
        console.print(f"fixed: {done}", highlight=False)
    for note in report.skipped:
        console.print(f"[yellow]skipped[/] {escape(note)}", highlight=False)
    if report.findings:
        table = Table(title="tastebud doctor" + (": what remains" if report.fixed is not None else ""))
        for col in ("kind", "target", "user", "reason"):
            table.add_column(col, overflow="fold")
        shown: dict[str, int] = {}
        for f in report.findings:
            shown[f.kind] = shown.get(f.kind, 0) + 1
            if shown[f.kind] <= SHOWN_PER_KIND:
                style = "" if f.severity == "error" else "dim"
                table.add_row(f.kind, escape(f.target), escape(f.user_id or "-"), escape(f.reason), style=style)
        for kind, n in shown.items():
            if n > SHOWN_PER_KIND:
                table.add_row(kind, f"… and {n - SHOWN_PER_KIND:,} more", "", "(--json lists every one)", style="dim")
        console.print(table)
    problems, notices = len(report.problems), len(report.notices)
    if problems:
        hint = "" if report.fixed is not None else "; run [bold]tastebud doctor --fix[/] to repair them"
        console.print(f"[bold red]{problems:,} problem(s)[/], {notices:,} notice(s){hint}", highlight=False)
    else:
        console.print(f"[green]no problems[/] ({notices:,} notice(s))", highlight=False)
