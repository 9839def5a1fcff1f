"""`tastebud serve` (the HTTP API under uvicorn) and `tastebud keys` (its API keys)."""

from __future__ import annotations

import os
from typing import Optional

import typer

from tastebud.cli.state import State, app
from tastebud.timefmt import human_time

keys_app = typer.Typer(help="API keys for `tastebud serve`.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (setting serve_host, default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (setting serve_port, default 8000)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (setting serve_workers, default 1)."),
) -> None:
    """Run the HTTP API: events in, profiles, recommendations, explanations and chat out."""
    import uvicorn

    settings = State.app().settings
    # uvicorn builds the app in each worker from the environment (factory mode):
    # hand the global flags down as the variables they stand for.
    for name, value in State.flags.items():
        if value is not None:
            os.environ[f"TASTEBUD_{name.upper()}"] = str(value)
    uvicorn.run(
        "tastebud.api.app:create_app",
        factory=True,
        host=host or settings.serve_host,
        port=settings.serve_port if port is None else port,
        workers=workers or settings.serve_workers,
        access_log=False,  # ours is TASTEBUD_HOME/logs/access.jsonl, without query strings
        timeout_graceful_shutdown=30,
        log_level="info",
    )


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="user, support or operator."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="The user a `user` key belongs to."),
    name: Optional[str] = typer.Option(None, "--name", help="A note for `keys list` (who or what uses it)."),
) -> None:
    """Create a key. It is printed once, alone on the last line: store it now."""
    from tastebud.api.keys import KeyStore
    from tastebud.cli.render import err_console

    record, key = KeyStore(State.app().store).create(role.lower(), user, name)
    who = f" for user {record.user_id}" if record.user_id else ""
    err_console.print(f"created {record.role} key {record.key_id}{who}; it is shown only now:", highlight=False)
    typer.echo(key)


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every key: id, prefix, role, user, name, created, last used, revoked (never a secret)."""
    from tastebud.api.keys import KeyStore
    from tastebud.cli.render import console, print_json

    keys = KeyStore(State.app().store).list()
    if as_json:
        print_json([k.as_dict() for k in keys])
        return
    from rich.table import Table

    table = Table(title="API keys")
    for col in ("key id", "prefix", "role", "user", "name", "created", "last used", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.key_id, k.prefix + "…", k.role, k.user_id or "-", k.name or "-", human_time(k.created_at),
                      human_time(k.last_used_at), human_time(k.revoked_at))
    console.print(table)
    if not keys:
        console.print("no keys yet: tastebud keys create --role operator")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id (from `keys list`).")) -> None:
    """Revoke a key; every worker refuses it from its next request."""
    from tastebud.api.keys import KeyStore
    from tastebud.cli.render import console

    record = KeyStore(State.app().store).revoke(key_id)
    console.print(f"revoked key {record.key_id} ({record.role}{', user ' + record.user_id if record.user_id else ''})",
                  highlight=False)
