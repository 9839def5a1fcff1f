"""`tastebud serve` (the HTTP API under uvicorn) and `tastebud keys` (its API keys)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
    _export_flags()  # uvicorn builds the app in each worker from the environment (factory mode)
    workers = workers or settings.serve_workers
    live = None
    if workers > 1 and settings.serve_live_processes > 0 and settings.live_role == "all":
        os.environ["TASTEBUD_LIVE_ROLE"] = "worker"  # the workers leave the live refresh to them
        live = LiveProcesses(settings.serve_live_processes)
    try:
        uvicorn.run(
            "tastebud.api.app:create_app",
            factory=True,
            host=host or settings.serve_host,
            port=settings.serve_port if port is None else port,
            workers=workers,
            access_log=False,  # ours is TASTEBUD_HOME/logs/access.jsonl, without query strings
            timeout_graceful_shutdown=30,
            log_level="info",
        )
    finally:
        if live is not None:
            live.stop()


def _export_flags() -> None:
    """The global flags, as the variables they stand for, for processes started from here."""
    for name, value in State.flags.items():
        if value is not None:
            os.environ[f"TASTEBUD_{name.upper()}"] = str(value)


@app.command("live")
def live(
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: only the users of shard i of n (run one process per shard); shard 0 also builds the item side."),
    parent: Optional[int] = typer.Option(None, "--exit-with", hidden=True, help="Stop when this process is gone (serve's)."),
) -> None:
    """Keep profiles, their vectors and narratives current without serving HTTP:
    follow the event store until stopped (what `serve --workers N` runs beside its workers)."""
    from tastebud.live.process import run_until_signalled
    from tastebud.profiles.refresh import parse_shard
    from tastebud.retrieval.memo import ITEM_MEMO_S, RecordMemo

    part = parse_shard(shard)
    _export_flags()  # for the item-side builder it starts
    os.environ["TASTEBUD_LIVE_ROLE"] = "live"
    services = State.app()
    services.vectors.items.memo = RecordMemo(ITEM_MEMO_S)  # the live refresh reads the same item vectors again and again
    settings = services.settings
    builds = (settings.item_side_refresh_events > 0 or settings.item_side_refresh_s > 0) \
        and services.recommendations.cache_dir is not None  # without a disk cache each worker builds its own
    builder = ItemSideBuilder() if builds and (part is None or part[0] == 0) else None
    run_until_signalled(services, parent=parent, build_item_side=builder, shard=part)


class ItemSideBuilder:
    """Builds and publishes item sides in a process of its own, started once (its
    imports and composition root cost more CPU than a build) and at the lowest
    priority: its own GIL, so the live refresh is not held back, and the cores go to
    requests first. Called from the live process's item-side thread, which waits."""

    def __init__(self) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._conn = None
        self._start()

    def _start(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_build_item_sides, args=(child,), name="tastebud-item-side", daemon=True)
        self._proc.start()
        child.close()

    def __call__(self, seq: int) -> None:
        if not self._proc.is_alive():
            self._start()
        try:
            self._conn.send(seq)
            ok, detail = self._conn.recv()
        except (EOFError, OSError) as exc:  # it died mid-build: the next call starts another
            raise RuntimeError(f"the item-side builder exited ({exc})") from None
        if not ok:
            raise RuntimeError(f"item-side build failed: {detail}")


def lowest_priority() -> None:
    """Run only in the cores' idle moments. `nice` alone is not enough where the kernel
    groups processes by session (autogroup, on by default): it then ranks the process
    only against its own session (the live process), while the session as a whole
    competes with the workers' at full weight whenever the live process waits. So: a
    session of its own, that session's nice at 19, and the idle scheduling class."""
    try:
        os.setsid()
    except OSError:  # already a session's leader: its nice would be the caller's session's too
        pass
    else:
        for _ in range(5):  # without CAP_SYS_ADMIN it may be set once per 100 ms, system-wide
            try:
                with open("/proc/self/autogroup", "w") as fh:
                    fh.write("19")
                break
            except BlockingIOError:
                time.sleep(0.1)
            except OSError:  # no autogroup here: nothing groups the process with the live one
                break
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def _build_item_sides(conn) -> None:
    from tastebud.app import App
    from tastebud.settings import load_settings

    lowest_priority()
    recommendations = App(load_settings()).recommendations
    while True:
        try:
            seq = conn.recv()
        except (EOFError, OSError):
            return  # the live process is gone
        try:
            recommendations.refresh_side()
            recommendations.publish_side(seq)
            conn.send((True, None))
        except Exception as exc:  # noqa: BLE001 - reported to the live process, which logs and counts it
            conn.send((False, f"{type(exc).__name__}: {exc}"))


class LiveProcesses:
    """`tastebud live` as children of `serve` (n > 1: one per shard of the users),
    each restarted when it dies (it picks up every user of its shard whose profile is
    behind their events when it starts)."""

    RESTART_AFTER_S = 1.0

    def __init__(self, n: int) -> None:
        import threading

        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and stop() never cross: no child is left behind
        base = [sys.executable, "-c", "from tastebud.cli.main import run; run()", "live", "--exit-with", str(os.getpid())]
        self._argvs = [base if n == 1 else [*base, "--shard", f"{i}/{n}"] for i in range(n)]
        self.procs = [self._start(argv) for argv in self._argvs]
        for i in range(n):
            threading.Thread(target=self._watch, args=(i,), name=f"tastebud-live-watch-{i}", daemon=True).start()

    @staticmethod
    def _start(argv: list[str]) -> subprocess.Popen:
        # its own session: a Ctrl-C at the terminal reaches serve, which stops it in order
        return subprocess.Popen(argv, start_new_session=True)

    def _watch(self, i: int) -> None:
        import logging

        while not self._stopping.is_set():
            code = self.procs[i].wait()
            if self._stopping.wait(self.RESTART_AFTER_S):
                return
            log = logging.getLogger("tastebud.live")
            log.error("live process %d exited with %s; starting it again", i, code)
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self.procs[i] = self._start(self._argvs[i])
                except OSError:
                    log.exception("live process %d could not be started; trying again", i)

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._stopping.set()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
