"""`tastebud chat` (a Rich REPL) and `tastebud ask` (one question, optionally JSON).

Roles: `--user U` is the end user U (every tool pinned to U); `--as support`
reads any user (read-only); `--as operator` adds refresh and status.
`--template` answers from the deterministic renderings only (no LLM at all).
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from tastebud.cli.state import State, app

HISTORY_FILE = "chat_history"


def _agent(user: str | None, as_role: str | None, session_id: str | None, template: bool, mode: str | None):
    from tastebud.agent.agent import Agent
    from tastebud.agent.roles import Principal, Role
    from tastebud.agent.session import Session
    from tastebud.errors import InputError

    if as_role and as_role.lower() not in ("user", "support", "operator"):
        raise InputError(f"unknown role {as_role!r}", hint="use --as support or --as operator")
    if mode and mode not in ("auto", "tools", "router"):
        raise InputError(f"unknown mode {mode!r}", hint="auto, tools or router")
    if (as_role or "user").lower() == "user" and not user:
        raise InputError("who is chatting?", hint="tastebud chat --user U, or --as support / --as operator")
    principal = Principal.of(as_role.lower() if as_role else None, user)
    app_ = State.app()
    session = Session.resume_or_new(app_.settings.home, session_id, principal.role.value, principal.user_id)
    if principal.role is not Role.USER and user:
        session.target_user = user
    return Agent(app_, principal, session, mode=mode, phrasing=not template)


def _table(call: Any):
    from rich.table import Table

    r = call.result
    if call.name == "search_items":
        table = Table(title=f"catalog matches for \u201c{r['query']}\u201d", title_justify="left")
        for col, just in (("#", "right"), ("item", "left"), ("title", "left"), ("categories", "left"), ("similarity", "right")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for n, it in enumerate(r["items"], 1):
            table.add_row(str(n), it["item_id"], it["title"], ", ".join(it["categories"][:3]), f"{it['similarity']:.2f}")
        return table
    who = f"user {r['user_id']}"
    title = f"recommendations for {who}" if call.name == "recommend" else f"logged for {who} · {r.get('created_at') or '-'}"
    table = Table(title=title, title_justify="left", caption=f"request {r['request_id']} · /why N explains one")
    for col, just in (("#", "right"), ("item", "left"), ("title", "left"), ("score", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    if call.name == "recommend":
        table.add_column("top reason", overflow="fold", max_width=60)
    for it in r["items"]:
        row = [str(it["rank"]), it["item_id"], it["title"], f"{it['score']:.3f}"]
        if call.name == "recommend":
            row.append(it["why"][0] if it.get("why") else "")
        table.add_row(*row)
    return table


def _final(turn: Any):
    """What stays on screen for a turn: the answer (Markdown) and, for lists, a table."""
    from rich.console import Group
    from rich.markdown import Markdown

    call = turn.table_call
    if call is None or not call.result.get("items"):
        return Markdown(turn.answer)
    if turn.phrased_by == "template":  # the table says it all
        return _table(call)
    return Group(Markdown(turn.answer), _table(call))


def _footer(turn: Any) -> str:
    dropped = len(turn.claims.get("dropped") or [])
    if turn.replaced:
        why = turn.claims.get("fallback") or (f"it named: {', '.join(turn.ungrounded[:3])}" if turn.ungrounded else "")
        bits = [f"[yellow]model answer replaced by the evidence{f' ({why})' if why else ''}[/]"]
    elif turn.phrased_by == "llm" and dropped:
        bits = [f"[yellow]{dropped} unsupported sentence(s) dropped[/] · {turn.claims.get('checked', 0)} checked"]
    elif turn.phrased_by == "llm":
        bits = [f"[green]every sentence checked ({turn.claims.get('checked', 0)})[/]"]
    else:
        bits = ["[green]from the data[/]"]
    tools = [c.name + ("(refused)" if c.refused else "") for c in turn.tool_calls]
    if tools:
        bits.append("tools: " + ", ".join(tools))
    if turn.first_token_s is not None:
        bits.append(f"first token {turn.first_token_s:.1f} s")
    bits.append(f"{turn.total_s:.1f} s")
    return "[dim]" + " · ".join(bits) + "[/]"


def _setup_history(home) -> Any:
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform: plain input()
        return None
    path = home / HISTORY_FILE
    try:
        readline.read_history_file(path)
    except (OSError, FileNotFoundError):
        pass
    readline.set_history_length(1000)
    return lambda: _save_history(readline, path)


def _save_history(readline: Any, path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError:
        pass


@app.command("chat")
def chat(
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Chat as this end user (or, for staff, start on this user)."),
    as_role: Optional[str] = typer.Option(None, "--as", help="support (read-only, any user) or operator (adds refresh, status)."),
    session: Optional[str] = typer.Option(None, "--session", help="Resume a saved session by id."),
    template: bool = typer.Option(False, "--template", help="No LLM: answer with the deterministic renderings only."),
    mode: Optional[str] = typer.Option(None, "--mode", help="auto | tools | router (default: the agent_mode setting). tools needs an endpoint that calls tools, e.g. vLLM with --enable-auto-tool-choice --tool-call-parser hermes."),
) -> None:
    """Chat with tastebud: recommendations, why, your profile; /help lists commands."""
    from rich.live import Live
    from rich.markdown import Markdown
    from rich.spinner import Spinner

    from tastebud.cli.render import console

    # Ctrl-C cancels an answer: started from a script or `nohup`, SIGINT may have
    # been inherited as ignored, and then no Ctrl-C would ever reach the loop.
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    agent = _agent(user, as_role, session, template, mode)
    home = agent.app.settings.home
    save_history = _setup_history(home)
    who = agent.principal.describe()
    with console.status("loading models…"):
        agent.warm_up()
    console.print(f"[bold]tastebud chat[/] · {who} · session {agent.session.id} · "
                  f"{'template answers' if template else agent.mode + ' mode'} · /help for commands, /quit to leave",
                  highlight=False)
    prompt = f"{agent.principal.user_id or agent.principal.role.value}> "
    try:
        while True:
            try:
                line = input(prompt)
            except EOFError:
                console.print()
                break
            except KeyboardInterrupt:
                console.print("[dim](Ctrl-C: /quit leaves)[/]", highlight=False)
                continue
            line = line.strip()
            if not line:
                continue
            if line.split()[0].lower() in ("/quit", "/exit", "/q"):
                break
            thinking = Spinner("dots", text="thinking…", style="cyan")
            live = Live(thinking, console=console, refresh_per_second=12, transient=False)

            def on_text(text: str) -> None:
                live.update(Markdown(text) if text else thinking)

            try:
                # not `with Live(...)`: a Ctrl-C landing inside __enter__ would skip
                # __exit__ and leave the spinner thread drawing over the prompt
                try:
                    live.start()
                    turn = agent.ask(line, on_text)
                    live.update(_final(turn))
                finally:
                    live.stop()
            except KeyboardInterrupt:
                live.stop()
                agent.cancel.set()
                console.print("[dim](cancelled)[/]", highlight=False)
                continue
            console.print(_footer(turn), highlight=False)
            agent.save()
            if agent.principal.is_staff and agent.session.target_user:
                prompt = f"{agent.principal.role.value}:{agent.session.target_user}> "
    finally:
        agent.save()
        if save_history:
            save_history()
    resume = f"--user {agent.principal.user_id}" if not agent.principal.is_staff else f"--as {agent.principal.role.value}"
    console.print(f"bye · resume with: tastebud chat {resume} --session {agent.session.id}", highlight=False)


@app.command("ask")
def ask(
    question: str = typer.Argument(..., help="The question."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Ask as this end user (or, for staff, about this user)."),
    as_role: Optional[str] = typer.Option(None, "--as", help="support or operator."),
    session: Optional[str] = typer.Option(None, "--session", help="Continue a saved session (and save this turn to it)."),
    template: bool = typer.Option(False, "--template", help="No LLM: the deterministic answer."),
    mode: Optional[str] = typer.Option(None, "--mode", help="auto | tools | router."),
    as_json: bool = typer.Option(False, "--json", help="answer, tool_calls, grounded, claims (checked, dropped with reasons) and timing as JSON."),
) -> None:
    """Answer one question and exit."""
    from tastebud.cli.render import console, err_console, print_json

    agent = _agent(user, as_role, session, template, mode)
    if as_json:
        turn = agent.ask(question)
    else:
        with err_console.status("thinking…"):
            turn = agent.ask(question)
    if session:
        agent.save()
    if as_json:
        print_json(turn.as_dict(agent.session.id if session else None))
        return
    console.print(_final(turn))
    console.print(_footer(turn), highlight=False)
