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
def index(
    rebuild_profiles: bool = typer.Option(
        False, "--rebuild-profiles",
        help="Recreate the profile vectors' collection with today's graph settings (a home made before them); "
             "stop `serve` and `live` first."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Embed catalog items into Chroma (only new or changed texts are encoded), then
    bring every profile's vectors (averages of its items' vectors) up to date."""
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.profiles.versions import ProfileRepository
    from tastebud.retrieval.profile_vectors import store_all_profile_vectors
    from tastebud.retrieval.service import sync_item_vectors

    app_ = State.app()
    rebuilt = rebuild_profiles and not app_.vectors.profile_graph_is_current()
    if rebuilt:  # a process still writing reopens the new collection, but its writes meanwhile would be lost
        from tastebud.errors import StoreError
        from tastebud.live.follow import running_live_pids

        if running := running_live_pids(app_.settings.home):
            raise StoreError(f"a live process of this home is running (pid {', '.join(map(str, running))})",
                             hint="stop `tastebud serve` and `tastebud live`, then rebuild")
    with err_console.status("embedding catalog items"):
        report = sync_item_vectors(app_.store, app_.vectors)
    if rebuilt:
        app_.vectors.recreate_profile_collection()
    with err_console.status("profile vectors"):
        profiles = store_all_profile_vectors(app_.vectors, ProfileRepository(app_.store).current_profiles())
    if as_json:
        print_json({**report.as_dict(), "profiles": {**profiles, "collection_recreated": rebuilt}})
    else:
        console.print(f"items: {report.as_dict()}")
        console.print(f"profile vectors: {profiles['written']:,} written, {profiles['unchanged']:,} unchanged"
                      + (" (collection recreated with today's graph)" if rebuilt else ""))
    if not rebuilt and not app_.vectors.profile_graph_is_current():
        err_console.print("note: the profile vectors' collection predates today's graph settings, which make "
                          "writing profile vectors cheaper; run `tastebud index --rebuild-profiles` with serve stopped")


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


@app.command("train-ranker")
def train_ranker(
    semantic: bool = typer.Option(True, "--semantic/--no-semantic", help="Train with the semantic parts (loads the model)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train the learned ranker on this home's events; `recommend` uses it (setting ranker=auto)."""
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.retrieval.ranker import ranker_dir
    from tastebud.profiles.interest import InterestConfig
    from tastebud.retrieval.offline import TastebudScorer
    from tastebud.retrieval.ranker_train import train_for_store
    from tastebud.retrieval.service import _item_vectors

    app_ = State.app()
    vectors = app_.vectors if semantic else None
    with err_console.status("training the ranker") as status:
        items = sorted(app_.store.items_by_id())
        item_vectors = _item_vectors(vectors, items) if vectors is not None else None
        interest = InterestConfig.from_settings(app_.settings)
        model, info = train_for_store(
            app_.store, lambda: TastebudScorer(dict(app_.settings.blend), interest, app_.encoder if semantic else None,
                                               "ranker-base", item_vectors),
            semantic, say=lambda msg: status.update(msg[:100]))
        folder = ranker_dir(app_.settings.home)
        model.save(folder)
    out = {"saved_to": str(folder), "training": info["training"], "seconds": info["train_seconds"],
           "used": app_.settings.ranker == "auto"}
    if as_json:
        print_json(out)
        return
    console.print(f"ranker saved to {folder} ({info['training']['rows']:,} rows, "
                  f"{info['training']['users_with_positive_candidate']} users, {info['train_seconds']} s)"
                  + ("" if out["used"] else "; the setting ranker=off keeps the blend"))


PROTOCOL_HELP = "warm, cold-items, cold-users or all (repeatable); see docs/design.md#evaluation-protocol."


def _protocols(values: Optional[list[str]]) -> tuple[str, ...]:
    from tastebud.errors import InputError
    from tastebud.retrieval.offline import PROTOCOLS

    chosen: list[str] = []
    for v in values or ["warm"]:
        for name in (PROTOCOLS if v == "all" else [v]):
            if name not in PROTOCOLS:
                raise InputError(f"unknown protocol {name!r}: choose from {', '.join(PROTOCOLS)} or all")
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen)


def _run_eval(source: dict, fit: bool, narratives: bool, semantic: bool, as_json: bool, protocol: Optional[list[str]],
              resamples: int, seed: int, bootstrap_seed: int, sample_users: int, output: Optional[Path],
              ranker: bool = True) -> None:
    from tastebud.cli.render import console, err_console, print_json
    from tastebud.retrieval.offline import run_eval
    from tastebud.settings import write_setting

    protocols = _protocols(protocol)
    app_ = State.app()
    embedder = app_.embedder if semantic else None
    with err_console.status("evaluating") as status:
        result = run_eval(source.get("directory"), app_.settings, embedder, narratives=narratives, fit=fit,
                          log=lambda msg: status.update(msg[:100]), events=source.get("events"),
                          catalog=source.get("catalog"), protocols=protocols, resamples=resamples, seed=seed,
                          bootstrap_seed=bootstrap_seed, cold_user_sample=sample_users or None, ranker=ranker)
    if fit:
        path = write_setting(app_.settings, "blend", result["fitted_blend"])
        result["fitted_blend_written_to"] = str(path)
    if output is not None:
        import json

        output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print_json(result)
        return
    _render_eval(result, console)
    if fit:
        console.print(f"fitted blend {result['fitted_blend']} written to {result['fitted_blend_written_to']}")
    if output is not None:
        console.print(f"written to {output}")


def _render_eval(result: dict, console) -> None:
    from rich.table import Table

    cols = ("recall@10", "ndcg@10", "hr@10", "mrr@10", "coverage@10")

    def cell(m: dict, c: str) -> str:
        ci = m.get("ci95", {}).get(c)
        return f"{m[c]:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{m[c]:.4f}"

    def show(title: str, rows: list, comparisons: dict) -> None:
        table = Table(title=title, caption="95% bootstrap intervals over users in brackets")
        table.add_column("model")
        for c in cols:
            table.add_column(c, justify="right")
        for name, m in rows:
            table.add_row(name, *(cell(m, c) for c in cols))
        console.print(table)
        for pair, diffs in comparisons.items():
            d = diffs.get("ndcg@10")
            if d:
                verdict = "a win" if d["wins"] > 0 else ("a loss" if d["wins"] < 0 else "not a difference")
                console.print(f"  {pair}: NDCG@10 {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] ({verdict})")

    if "tastebud" in result:
        rows = [("tastebud", result["tastebud"])] + ([("ranker", result["ranker"])] if "ranker" in result else [])
        rows += [(n, m) for n, m in result.get("baselines", {}).items()]
        rows += [(f"  {n}", m) for n, m in result.get("ablations", {}).items()]
        show(f"warm ({result['protocol']['eval_users']} users, k=10, {result['narratives']})", rows,
             result.get("comparisons", {}))
    if "cold_items" in result:
        ci = result["cold_items"]
        show(f"cold items ({ci['protocol']['held_out_items']} held-out items, {ci['protocol']['eval_users']} users)",
             list(ci["models"].items()), ci["comparisons"])
        if "among_held_out" in ci:
            show("cold items, ranked among the held-out items only", list(ci["among_held_out"]["models"].items()),
                 ci["among_held_out"]["comparisons"])
    if "cold_users" in result:
        cu = result["cold_users"]
        for label, level in cu["levels"].items():
            show(f"cold users: {label} ({cu['protocol']['sample']} sampled users)", list(level["models"].items()),
                 level["comparisons"])


_FIT = typer.Option(False, "--fit", help="Fit blend weights on a validation split and save them.")
_NARRATIVES = typer.Option(False, "--narratives", help="Include LLM narratives (slow; metrics do not use them).")
_SEMANTIC = typer.Option(True, "--semantic/--no-semantic", help="Use the embedding model for semantic parts.")
_JSON = typer.Option(False, "--json")
_PROTOCOL = typer.Option(None, "--protocol", help=PROTOCOL_HELP)
_RESAMPLES = typer.Option(1000, "--resamples", help="Bootstrap resamples of users for the 95% intervals.")
_SEED = typer.Option(0, "--seed", help="Seed of the cold protocols' samples (held-out items, sampled users).")
_BOOT_SEED = typer.Option(20260115, "--bootstrap-seed", help="Seed of the bootstrap resampling.")
_SAMPLE = typer.Option(200, "--sample-users", help="Users sampled for the cold-user protocol (0 = all).")
_OUTPUT = typer.Option(None, "--output", "-o", help="Also write the JSON result to this file.")
_RANKER = typer.Option(True, "--ranker/--no-ranker", help="Also train (on validation) and evaluate the learned ranker.")


@eval_app.command("movielens")
def eval_movielens(
    directory: Path = typer.Argument(..., help="ml-latest-small or ml-100k directory."),
    fit: bool = _FIT, narratives: bool = _NARRATIVES, semantic: bool = _SEMANTIC, as_json: bool = _JSON,
    protocol: Optional[list[str]] = _PROTOCOL, resamples: int = _RESAMPLES, seed: int = _SEED,
    bootstrap_seed: int = _BOOT_SEED, sample_users: int = _SAMPLE, output: Optional[Path] = _OUTPUT,
    ranker: bool = _RANKER,
) -> None:
    """The protocol of docs/design.md#evaluation-protocol: tastebud vs Pop, ItemKNN, EASE, the ranker, plus ablations."""
    _run_eval({"directory": directory}, fit, narratives, semantic, as_json, protocol, resamples, seed,
              bootstrap_seed, sample_users, output, ranker)


@eval_app.command("events")
def eval_events(
    events: Path = typer.Argument(..., help="Events file (CSV or JSONL, as `tastebud ingest events` reads)."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog file (as `tastebud ingest catalog` reads)."),
    fit: bool = _FIT, narratives: bool = _NARRATIVES, semantic: bool = _SEMANTIC, as_json: bool = _JSON,
    protocol: Optional[list[str]] = _PROTOCOL, resamples: int = _RESAMPLES, seed: int = _SEED,
    bootstrap_seed: int = _BOOT_SEED, sample_users: int = _SAMPLE, output: Optional[Path] = _OUTPUT,
    ranker: bool = _RANKER,
) -> None:
    """The same protocols on any events file plus catalog, ingested into a fresh temporary store."""
    _run_eval({"events": events, "catalog": catalog}, fit, narratives, semantic, as_json, protocol, resamples, seed,
              bootstrap_seed, sample_users, output, ranker)
