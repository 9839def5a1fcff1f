"""Profile commands: show, history, refresh."""

from __future__ import annotations

from typing import Optional

import typer

from tastebud.cli.state import State, app
from tastebud.timefmt import human_time

profile_app = typer.Typer(help="Read a user's living profile.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")


@profile_app.command("show")
def profile_show(
    user: str = typer.Argument(..., help="User id."),
    version: Optional[int] = typer.Option(None, "--version", help="An older version (default: latest)."),
    as_json: bool = typer.Option(False, "--json", help="The JSON contract."),
) -> None:
    """Narratives, weighted tags with evidence, dislikes and drift."""
    from tastebud.cli.render import console, print_json

    repo = State.app().profiles
    data = repo.get(user, version) if version else repo.require_latest(user)
    if as_json:
        print_json(data)
        return
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.table import Table

    def tags_table(title: str, tags: list[dict]) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column("tag")
        table.add_column("weight", justify="right")
        table.add_column("evidence", justify="right")
        for t in tags[:10]:
            table.add_row(t["tag"], f"{t['weight']:+.3f}" if t["weight"] < 0 else f"{t['weight']:.3f}", str(t["evidence_count"]))
        return table

    drift = data["drift"]
    source = data.get("narrative_source", "?")
    body = (
        f"[bold]Long term[/]\n{data['long_term'].get('narrative') or '-'}\n\n"
        f"[bold]Lately[/]\n{data['short_term'].get('narrative') or '-'}\n\n"
        f"[dim]drift {drift['score']:.3f} · emerging: {', '.join(drift['emerging']) or 'none'} · "
        f"fading: {', '.join(drift['fading']) or 'none'}[/]"
    )
    console.print(Panel(
        body,
        title=f"user {data['user_id']} · v{data['version']} · narrative: {source}",
        subtitle=f"generated {human_time(data.get('generated_at'))}",
        expand=False,
    ))
    console.print(Columns([
        tags_table("long-term tags", data["long_term"]["tags"]),
        tags_table("short-term tags", data["short_term"]["tags"]),
        tags_table("disliked tags", data["dislikes"]["tags"]),
    ]))
    if data["dislikes"]["items"]:
        console.print("[bold]disliked items:[/] " + "; ".join(
            f"{i['title']}" + (f" ({i['value']:g}/5)" if i.get("value") is not None else f" ({i['type']})")
            for i in data["dislikes"]["items"][:6]
        ))
    if data.get("extra_tags"):
        console.print("[bold]LLM-proposed tags (cited):[/] " + ", ".join(t["tag"] for t in data["extra_tags"]))


@profile_app.command("history")
def profile_history(
    user: str = typer.Argument(..., help="User id."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every version with what changed and the events that triggered it."""
    from tastebud.cli.render import console, print_json

    history = State.app().profiles.history(user)
    if as_json:
        print_json({"user_id": user, "versions": history})
        return
    from rich.table import Table

    table = Table(title=f"profile history of user {user}")
    for col in ("version", "created", "narrative", "changes", "triggered by"):
        table.add_column(col, overflow="fold")
    for v in history:
        c = v["changes"]
        parts = []
        for h, label in (("long_term", "long"), ("short_term", "short")):
            if c[h]["added"]:
                parts.append(f"{label} +{', +'.join(c[h]['added'][:4])}")
            if c[h]["removed"]:
                parts.append(f"{label} -{', -'.join(c[h]['removed'][:4])}")
            if c[h]["reweighted"]:
                parts.append(f"{label} reweighted {len(c[h]['reweighted'])}")
        if c["narrative_changed"]:
            parts.append("narrative changed")
        n = len(v["trigger_event_ids"])
        table.add_row(str(v["version"]), human_time(v["created_at"]), v["narrative_source"], "; ".join(parts) or "-",
                      f"{n}{'+' if n == 50 else ''} events")
    console.print(table)


@app.command("refresh")
def refresh(
    users: Optional[list[str]] = typer.Option(None, "--user", "-u", help="Refresh these users (repeatable)."),
    all_users: bool = typer.Option(False, "--all", help="Every user, up to date or not."),
    since: Optional[str] = typer.Option(None, "--since", help="Users with events since this time (ISO-8601 or epoch)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: this worker's share of users (0 <= i < n)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="Narrative requests in flight."),
    no_narratives: bool = typer.Option(False, "--no-narratives", help="Computed parts only; narratives marked stale."),
    stale_narratives: bool = typer.Option(False, "--stale-narratives", help="Also users whose narratives are stale."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many users."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Bring profiles up to date; by default only lagging users (events newer than their profile)."""
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.profiles.events import parse_timestamp
    from tastebud.profiles.events import RowError
    from tastebud.profiles.refresh import parse_shard
    from tastebud.errors import InputError

    since_ts = None
    if since:
        try:
            since_ts = parse_timestamp(since)
        except RowError as exc:
            raise InputError(str(exc)) from None
    app_ = State.app()
    refresher = app_.refresher(narratives=not no_narratives, concurrency=concurrency)
    retention = refresher.apply_retention(app_.settings.retention_days, narratives=not no_narratives)
    if retention.get("events"):  # TASTEBUD_RETENTION_DAYS: old events went, their profiles were rebuilt
        err_console.print(f"retention: deleted {retention['events']:,} events older than "
                          f"{app_.settings.retention_days:g} days; rebuilt {retention['profiles_rebuilt']:,} profiles, "
                          f"removed {retention['profiles_removed']:,}", highlight=False)
    chosen = refresher.select_users(users, all_users, since_ts, parse_shard(shard), stale_narratives)
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        # nothing lags, but a refresh killed before its profile vectors were stored
        # left a marker: this run stores them (unchanged ones are skipped by hash)
        repaired = refresher.refresh([], narratives=False).hooks
        repaired = {k: repaired[k] for k in ("repaired_interrupted_runs", "written") if k in repaired} \
            if repaired.get("repaired_interrupted_runs") else {}
        if as_json:
            print_json({"users": 0, **({"retention": {k: v for k, v in retention.items() if k != "rebuilt_users"}}
                                       if retention.get("events") else {}),
                        **({"repaired_vectors": repaired} if repaired else {})})
        else:
            if repaired:
                console.print(f"an interrupted refresh was finished: {repaired['written']:,} profile vectors stored")
            console.print("all profiles are up to date")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]refresh"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} users/s"), TimeRemainingColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("refresh", total=len(chosen), rate="-")
        import time

        start = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(1e-9, time.perf_counter() - start)
            bar.update(task, completed=done, rate=f"{rate:.1f}")

        report = refresher.refresh(chosen, narratives=not no_narratives, progress=progress)
    if as_json:
        print_json({**report.as_dict(), **({"retention": {k: v for k, v in retention.items() if k != "rebuilt_users"}}
                                            if retention.get("events") else {})})
        return
    console.print(
        f"refreshed {report.users:,} users in {report.seconds:.1f}s ({report.as_dict()['users_per_s']} users/s): "
        f"{report.new_versions:,} new versions, {report.unchanged:,} unchanged; narratives: "
        f"{report.narratives_llm} llm, {report.narratives_template} template, {report.narratives_kept} kept, "
        f"{report.narratives_stale} stale"
    )
