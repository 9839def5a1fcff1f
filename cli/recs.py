"""Recommendation commands: index, recommend, why, eval."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tastebud.cli.state import State, app
from tastebud.timefmt import human_time

eval_app = typer.Typer(help="Offline evaluation.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@app.command("index")
def index(as_json: bool = typer.Option(False, "--json")) -> None:
    """Embed catalog items into Chroma (only new or changed texts are encoded)."""
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.retrieval.service import sync_item_vectors

    with err_console.status("embedding catalog items"):
        report = sync_item_vectors(State.app().store, State.app().vectors)
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(f"items: {report.as_dict()}")


@app.command("recommend")
def recommend(
    user: str = typer.Argument(..., help="User id."),
    k: int = typer.Option(10, "-k", "--k", help="How many items."),
    category: Optional[str] = typer.Option(None, "--category", help="Only items in this category."),
    exclude: Optional[list[str]] = typer.Option(None, "--exclude", help="Item ids or categories/tags to leave out."),
    intent: Optional[str] = typer.Option(None, "--intent", help="Free text that biases the semantic part."),
    diversify: Optional[float] = typer.Option(None, "--diversify", help="MMR lambda in (0, 1]; lower = more diverse."),
    explain: bool = typer.Option(False, "--explain", help="Show why each item scored."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Ranked, filtered recommendations; every list is logged for `why`."""
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.retrieval.service import render_why

    with err_console.status("recommending"):
        rec = State.app().recommendations.recommend(user, k, category, exclude or (), intent, diversify, source="cli")
    if as_json:
        print_json(rec.as_dict(evidence=explain))
        return
    from rich.table import Table

    table = Table(title=f"recommendations for user {user}", caption=f"request {rec.request_id} · profile v{rec.profile_version}")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("title")
    table.add_column("score", justify="right")
    table.add_column("why" if explain else "top parts", overflow="fold")
    for it in rec.items:
        if explain:
            why = " ".join(render_why({"parts": it.parts, "evidence": it.evidence}))
        else:
            why = ", ".join(f"{p} {v:.2f}" for p, v in sorted(it.parts.items(), key=lambda kv: -kv[1])[:3])
        table.add_row(str(it.rank), it.item_id, it.title, f"{it.score:.3f}", why)
    console.print(table)
    if not rec.items:
        console.print("nothing left to recommend with these filters")


@app.command("why")
def why(
    user: str = typer.Argument(..., help="User id."),
    item: str = typer.Argument(..., help="Item id."),
    request: Optional[str] = typer.Option(None, "--request", help="A logged request id (default: the latest with this item)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Why an item was recommended, from the logged score parts and evidence."""
    from tastebud.cli.render import console, print_json
    from tastebud.errors import NotFoundError

    try:  # from the log alone: no recommender, no vectors, no model (an instant command)
        entry = State.app().reclog.explain(user, item, request)
    except NotFoundError as exc:  # a plain answer, not an error: exit 1 so scripts can tell
        if as_json:
            print_json({"user_id": user, "item_id": item, "request_id": request, "recommended": False, "message": str(exc)})
        else:
            console.print(f"{exc}.", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if as_json:
        print_json({**entry, "recommended": True})
        return
    when = human_time(entry["created_at"])
    console.print(f"[bold]{entry['title']}[/] was #{entry['rank']} for user {user} on {when} "
                  f"(request {entry['request_id']}, profile v{entry['profile_version']}, score {entry['score']:.3f})")
    for sentence in entry["sentences"]:
        console.print(f"  • {sentence}")


@eval_app.command("movielens")
def eval_movielens(
    directory: Path = typer.Argument(..., help="ml-latest-small or ml-100k directory."),
    fit: bool = typer.Option(False, "--fit", help="Fit blend weights on a validation split and save them."),
    narratives: bool = typer.Option(False, "--narratives", help="Include LLM narratives (slow; metrics do not use them)."),
    semantic: bool = typer.Option(True, "--semantic/--no-semantic", help="Use the embedding model for semantic parts."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The protocol of docs/design.md#evaluation-protocol: tastebud vs Pop, ItemKNN, EASE, plus ablations."""
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.retrieval.offline import run_eval
    from tastebud.settings import write_setting

    app_ = State.app()
    embedder = app_.embedder if semantic else None
    with err_console.status("evaluating") as status:
        result = run_eval(directory, app_.settings, embedder, narratives=narratives, fit=fit,
                          log=lambda msg: status.update(msg[:100]))
    if fit:
        path = write_setting(app_.settings, "blend", result["fitted_blend"])
        result["fitted_blend_written_to"] = str(path)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"offline evaluation ({result['protocol']['eval_users']} users, k=10, {result['narratives']})")
    cols = ("recall@10", "ndcg@10", "hr@10", "mrr@10", "coverage@10")
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    rows = [("tastebud", result["tastebud"])] + [(n, m) for n, m in result.get("baselines", {}).items()]
    rows += [(f"  {n}", m) for n, m in result.get("ablations", {}).items()]
    for name, m in rows:
        table.add_row(name, *(f"{m[c]:.4f}" for c in cols))
    console.print(table)
    if fit:
        console.print(f"fitted blend {result['fitted_blend']} written to {result['fitted_blend_written_to']}")
