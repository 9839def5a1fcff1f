"""`tastebud eval`: the protocol (docs/design.md#evaluation-protocol) run on a fresh home, tastebud next to
Pop, ItemKNN and EASE on the same split, plus ablations and blend fitting."""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from tastebud.profiles.interest import InterestConfig, build_interest_profile
from tastebud.retrieval import bootstrap as bp
from tastebud.retrieval.bootstrap import Plan, metric_intervals, paired
from tastebud.retrieval.evaluation import (
    ModelRun, Split, TrainData, evaluate_model, run_model, split_events, train_data_from, validation_split,
)
from tastebud.retrieval.recommender import (
    COLD_KEY, COLD_POPULARITY, PARTS, SAME_START, ItemSide, Recommender, UserContext, history_length, interaction_matrix,
)
from tastebud.retrieval.blas import single_threaded_blas
from tastebud.retrieval.same_start import StartTracker
from tastebud.retrieval.profile_vectors import vectors_from_matrix

if TYPE_CHECKING:
    from tastebud.profiles.events import Event

ABLATIONS = {
    "long_term_only": {"semantic_short": 0.0},
    "short_term_only": {"semantic_long": 0.0, "tag_match": 0.0},
    "no_semantic": {"semantic_long": 0.0, "semantic_short": 0.0},
    "no_co_occurrence": {"co_occurrence": 0.0},
}


class TastebudScorer:
    """The production recommender behind the harness's Scorer protocol: profiles
    are built from the train events only, exactly as refresh builds them."""

    def __init__(self, blend: Mapping[str, float], interest: InterestConfig, embedder: Any = None,
                 name: str = "tastebud", item_vectors: np.ndarray | None = None,
                 profile_users: Sequence[str] | None = None):
        self.name = name
        # None: profiles for every train user; else only these (the cold-user protocol
        # scores a sample, so the other users' profiles would be encoded for nothing)
        self.profile_users = None if profile_users is None else list(profile_users)
        self.blend = dict(blend)
        self.interest = interest
        self.embedder = embedder
        self.item_vectors = item_vectors
        self.recommender: Recommender | None = None
        self.k = 10  # the protocol's cut-off: the new-item places are the last of the top k

    def fit(self, train: TrainData) -> "TastebudScorer":
        catalog = train.catalog or {}
        if self.item_vectors is None and self.embedder is not None:
            texts = [catalog[i].text_for_embedding() if i in catalog else i for i in train.items]
            self.item_vectors = self.embedder.encode(texts)
        events = (ev for user in train.users for ev in train.events[user])
        starts = StartTracker()
        interactions = interaction_matrix(events, train.item_index, starts)
        side = ItemSide.build(train.items, catalog, interactions, self.item_vectors,
                              starts=starts.matrix(*interactions.shape))
        self.recommender = Recommender(side, self.blend)
        self.profiles: dict[str, Any] = {}
        self.vectors: dict[str, dict[str, np.ndarray]] = {u: {} for u in train.users}
        self._parts_cache: dict[str, dict[str, np.ndarray]] = {}
        self.train = train
        self._build_profiles(train, train.users if self.profile_users is None else self.profile_users)
        return self

    def _build_profiles(self, train: TrainData, users: Sequence[str]) -> None:
        catalog = train.catalog or {}
        users = list(users)
        for u in users:
            self.profiles[u] = build_interest_profile(u, train.events.get(u, []), catalog, self.interest).computed()
            self.vectors[u] = {}
            self._parts_cache.pop(u, None)
        if self.item_vectors is not None:  # as production derives them (retrieval/profile_vectors.py)
            for u in users:
                self.vectors[u] = vectors_from_matrix(self.profiles[u], train.item_index, self.item_vectors)

    def refold(self, train: TrainData, users: Sequence[str]) -> "TastebudScorer":
        """Give `users` the histories they have in `train` (profiles rebuilt as refresh
        would, from those events only); the item side stays as fitted. For the
        cold-user protocol: a user the item side never saw, arriving with a short history."""
        self.train = train
        self._build_profiles(train, users)
        return self

    def with_blend(self, blend: Mapping[str, float], name: str) -> "TastebudScorer":
        """A copy sharing the fitted state, for ablations and fitting."""
        clone = TastebudScorer(blend, self.interest, self.embedder, name, self.item_vectors)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("name", "blend", "recommender")})
        clone.recommender = Recommender(self.recommender.side, blend)
        return clone

    def _parts(self, user: str) -> dict[str, np.ndarray]:
        if user not in self._parts_cache:
            ctx = UserContext(user, self.train.events.get(user, []), self.profiles.get(user), self.vectors.get(user, {}))
            with single_threaded_blas():
                parts, _ = self.recommender.parts(ctx)
                mask, near = self.recommender.blocked(ctx)
            if near is not None:
                parts["dislike_similarity"] = near
            parts["_blocked"] = mask
            parts["_history"] = np.array(history_length(ctx.events))
            self._parts_cache[user] = parts
        return self._parts_cache[user]

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(user_ids), len(self.train.items)), dtype=np.float64)
        for row, user in enumerate(user_ids):
            parts = self._parts(user)
            blend = self.recommender.blend_for(int(parts["_history"]))
            out[row] = np.where(parts["_blocked"], -np.inf, self.recommender.total(parts, blend))
            if self.recommender.new_items and self.vectors.get(user):
                self._give_new_items_their_places(out[row], parts, blend)
        return out

    def _give_new_items_their_places(self, total: np.ndarray, parts: dict[str, np.ndarray], blend: dict[str, float]) -> None:
        """As Recommender.recommend does: the picked never-interacted items take the
        last places of the top k (scored just above the first item they displace)."""
        k = self.k
        finite = np.flatnonzero(np.isfinite(total))
        if finite.size <= k:
            return  # every rankable item is in the top k already
        order = finite[np.argsort(-total[finite], kind="stable")[:k]].tolist()
        picks = self.recommender.new_item_picks(total, parts, blend, order, k)
        if picks:
            displaced = total[order[k - len(picks)]]
            for i, col in enumerate(picks):
                total[col] = displaced + (len(picks) - i) * 1e-9 * max(1.0, abs(displaced))


def fit_blend(scorer: TastebudScorer, split: Split, log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Coordinate ascent over a small grid of each part's weight, on NDCG@10."""
    scorer.fit(split.train)
    best = {COLD_KEY: COLD_POPULARITY, **scorer.blend}
    best_ndcg = evaluate_model(scorer.with_blend(best, "fit"), split, fit=False)["ndcg@10"]
    grid = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
    cold_grid = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)  # the short-history popularity backoff (Recommender.blend_for)
    for _round in range(2):
        improved = False
        for part in (*PARTS, COLD_KEY):
            for value in (cold_grid if part == COLD_KEY else grid):
                trial = {**best, part: value}
                if all(trial.get(p, 0) == 0 for p in PARTS) or trial == best:
                    continue
                ndcg = evaluate_model(scorer.with_blend(trial, "fit"), split, fit=False)["ndcg@10"]
                if ndcg > best_ndcg + 1e-5:
                    best, best_ndcg, improved = trial, ndcg, True
                    if log:
                        log(f"fit: {part}={value} -> validation NDCG@10 {ndcg:.4f}")
        if not improved:
            break
    return best


PROTOCOLS = ("warm", "cold-items", "cold-users")
SPLIT_RULE = ("per user, interactions (item events except tag and search) sorted by time, ties in ingestion "
              "order; the first floor(0.8*n) train, the rest test; relevant = test items rated >= 4.0 (implicit: "
              "positive events) not already in train; users without a relevant test item skipped; every catalog "
              "item not interacted with in train is ranked, ties by catalog order")
COLD_ITEM_RULE = ("items rated >= 4.0 in the test part by at least {min_positives} evaluated users are eligible; "
                  "a seeded sample of {fraction:.0%} of them is held out; every train interaction with a held-out "
                  "item is removed (from every user); models are fitted on that train; evaluated users = users "
                  "with a held-out item among their relevant test items; relevant = those held-out items only; "
                  "candidates = every catalog item the user did not interact with in the reduced train "
                  "(among_held_out: the held-out items only)")
COLD_USER_RULE = ("a seeded sample of evaluated users becomes new: the models are fitted on the train part with "
                  "those users' rows emptied, then each sampled user is scored with a history of only their first "
                  "1, 3 or 5 train events (by time), with stated category likes/dislikes only, or with their full "
                  "train part; relevant test items as in the warm protocol; the ranking excludes only the items "
                  "in the given history")
STATED_RULE = ("from the user's train ratings: likes = the 3 categories most frequent among items rated >= 4 "
               "(ties by name); dislikes = up to 2 other categories with at least 2 ratings <= 2 and more ratings "
               "<= 2 than >= 4, most such ratings first; '(no genres listed)' never counts; one item-less like/"
               "dislike event per category, dated at the user's last train event")


def load_split(source: Mapping[str, Any], settings: Any = None) -> Split:
    """Ingest a MovieLens directory or an events file (+ catalog file) into a fresh temporary
    store through the real ingestion, and split it."""
    from tastebud.profiles.ingest import Ingestor
    from tastebud.profiles.store import EventStore

    with tempfile.TemporaryDirectory(prefix="tastebud-eval-") as tmp:
        store = EventStore(f"sqlite:///{Path(tmp) / 'eval.db'}")
        try:
            ingestor = Ingestor(store)
            if source.get("movielens"):
                from tastebud.profiles.movielens import ingest_movielens

                ingest_movielens(ingestor, source["movielens"])
            else:
                from tastebud.errors import InputError

                if settings is not None:  # the value rules `tastebud ingest` would apply
                    from tastebud.profiles.events import ValueRules

                    ingestor.rules = ValueRules.from_settings(settings)
                if source.get("catalog"):
                    ingestor.ingest_catalog(str(source["catalog"]), source.get("catalog_format"))
                report = ingestor.ingest_events(str(source["events"]), source.get("events_format"))
                if report.accepted == 0 and report.duplicates == 0:
                    raise InputError(f"no usable event in {source['events']}")
            split = split_events(store.all_events(), store.items_by_id())
        finally:
            store.close()
    return split


def file_hashes(source: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of every input file (a MovieLens directory: its CSV files)."""
    paths: list[Path] = []
    if source.get("movielens"):
        paths = sorted(p for p in Path(source["movielens"]).iterdir() if p.suffix == ".csv")
    else:
        paths = [Path(source[k]) for k in ("events", "catalog") if source.get(k)]
    out = {}
    for p in paths:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[str(p)] = h.hexdigest()
    return out


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tastebud")
    except Exception:  # noqa: BLE001 - not installed: say so rather than fail an evaluation
        return "unknown"


def _model_params(models: Sequence[Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for m in models:
        params = {k: v for k, v in vars(m).items() if k in ("lam", "neighbours", "shrink", "weighting", "neighbourhood")}
        out[m.name] = {"class": type(m).__name__, **params}
    return out


def _table(runs: Sequence[ModelRun], p: Plan, compare: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """{model: metrics + "ci95"}, plus paired comparisons (a − b on the same resampled users)."""
    by_name = {r.name: r for r in runs}
    table: dict[str, Any] = {}
    for r in runs:
        row = _clean(r.summary())
        row["ci95"] = metric_intervals(r.per_user, p, r.k)
        table[r.name] = row
    comparisons = {}
    for a, b in compare:
        if a in by_name and b in by_name:
            comparisons[f"{a} - {b}"] = {
                f"{m}@{by_name[a].k}": _clean(paired(by_name[a].per_user[m], by_name[b].per_user[m], p))
                for m in by_name[a].per_user}
    return {"models": table, "comparisons": comparisons}


def sample_users(users: Sequence[str], n: int | None, seed: int) -> list[str]:
    """A seeded sample of n users (all of them when n is None or >= len), in the given order."""
    if n is None or n >= len(users):
        return list(users)
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(len(users), size=n, replace=False).tolist())
    return [u for i, u in enumerate(users) if i in keep]


def cold_item_split(split: Split, fraction: float = 0.1, seed: int = 0, min_positives: int = 2) -> tuple[Split, list[str]]:
    """The cold-item protocol's split (see COLD_ITEM_RULE) and the held-out items."""
    counts: dict[str, int] = {}
    for rel in split.relevant.values():
        for iid in rel:
            counts[iid] = counts.get(iid, 0) + 1
    order = {iid: i for i, iid in enumerate(split.train.items)}
    eligible = sorted((i for i, c in counts.items() if c >= min_positives), key=order.__getitem__)
    n = max(1, round(fraction * len(eligible))) if eligible else 0
    rng = np.random.default_rng(seed)
    held = sorted((eligible[i] for i in rng.choice(len(eligible), size=n, replace=False)), key=order.__getitem__) if n else []
    cold = set(held)
    train_events = {u: [ev for ev in evs if ev.item_id not in cold] for u, evs in split.train.events.items()}
    relevant = {u: [i for i in rel if i in cold] for u, rel in split.relevant.items()}
    relevant = {u: rel for u, rel in relevant.items() if rel}
    train = train_data_from(train_events, split.train.items, split.train.catalog)
    stats = {"eligible_items": len(eligible), "held_out_items": len(held), "eval_users": len(relevant),
             "relevant_test_items": sum(len(r) for r in relevant.values()),
             "removed_train_interactions": sum(len(v) for v in split.train.events.values()) - sum(len(v) for v in train_events.values())}
    return Split(train=train, test_events=split.test_events, relevant=relevant, config=split.config, stats=stats), held


def stated_preferences_from(events: Sequence["Event"], catalog: Mapping[str, Any], likes: int = 3, dislikes: int = 2) -> list["Event"]:
    """Item-less like/dislike statements derived from train ratings (see STATED_RULE)."""
    from tastebud.profiles.events import Event

    high: dict[str, int] = {}
    low: dict[str, int] = {}
    rated = [ev for ev in events if ev.type == "rating" and ev.value is not None and ev.item_id]
    for ev in rated:
        item = catalog.get(ev.item_id)
        for c in (item.categories if item else ()):
            if c == "(no genres listed)":
                continue
            if ev.value >= 4.0:
                high[c] = high.get(c, 0) + 1
            elif ev.value <= 2.0:
                low[c] = low.get(c, 0) + 1
    liked = [c for c, _ in sorted(high.items(), key=lambda kv: (-kv[1], kv[0]))[:likes]]
    candidates = [(c, n) for c, n in low.items() if c not in liked and n >= 2 and n > high.get(c, 0)]
    disliked = [c for c, _ in sorted(candidates, key=lambda kv: (-kv[1], kv[0]))[:dislikes]]
    if not events:
        return []
    user, ts = events[0].user_id, max(ev.ts for ev in events)
    out = [Event(f"stated-like-{user}-{n}", user, None, "like", ts, None, c) for n, c in enumerate(liked)]
    out += [Event(f"stated-dislike-{user}-{n}", user, None, "dislike", ts, None, c) for n, c in enumerate(disliked)]
    return out


def _variants(scorer: TastebudScorer, blend: Mapping[str, float], which: Sequence[str]) -> list[TastebudScorer]:
    """The blend and its semantic-off (content-off, same_start-off) versions, sharing the fitted state."""
    out = []
    for name in which:
        if name == "tastebud":
            out.append(scorer.with_blend(dict(blend), "tastebud"))
        elif name == "no_semantic":
            out.append(scorer.with_blend({**blend, "semantic_long": 0.0, "semantic_short": 0.0}, "tastebud no_semantic"))
        elif name == "no_same_start":
            out.append(scorer.with_blend({**blend, SAME_START: 0.0}, "tastebud no_same_start"))
        elif name == "semantic_only":
            out.append(scorer.with_blend({**{p: (blend.get(p, 0.0) if p in ("semantic_long", "semantic_short") else 0.0)
                                             for p in blend}, SAME_START: 0.0}, "tastebud semantic only"))
        elif name == "content_only":  # no part learned from other people's interactions
            out.append(scorer.with_blend({**blend, "co_occurrence": 0.0, "popularity": 0.0, SAME_START: 0.0},
                                         "tastebud content only"))
        elif name == "no_content":
            out.append(scorer.with_blend({**blend, "semantic_long": 0.0, "semantic_short": 0.0, "tag_match": 0.0},
                                         "tastebud no_semantic no_tags"))
    return out


class _OnlyItems:
    """A fitted scorer restricted to some catalog columns (the rest score -inf)."""

    def __init__(self, model: Any, cols: Sequence[int]):
        self.model, self.name, self.cols = model, model.name, np.asarray(cols, dtype=np.int64)

    def fit(self, train: TrainData) -> Any:
        return self.model.fit(train)

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        scores = np.asarray(self.model.score(user_ids), dtype=np.float64)
        out = np.full(scores.shape, -np.inf)
        out[:, self.cols] = scores[:, self.cols]
        return out


COMPARE = (("tastebud", "ease"), ("tastebud", "pop"), ("tastebud", "itemknn"), ("tastebud", "tastebud no_semantic"),
           ("ranker", "pop"), ("ranker", "tastebud"))


def run_cold_items(split: Split, blend: Mapping[str, float], interest: Any, embedder: Any, item_vectors: Any,
                   p_seed: int, resamples: int, seed: int, fraction: float = 0.1, min_positives: int = 2,
                   say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    from tastebud.retrieval.baselines import default_baselines

    cold, held = cold_item_split(split, fraction, seed, min_positives)
    say(f"cold items: {cold.stats}")
    baselines = default_baselines()
    runs = [run_model(m, cold) for m in baselines]
    scorer = TastebudScorer(blend, interest, embedder, "tastebud", item_vectors)
    scorer.fit(cold.train)
    variants = _variants(scorer, blend, ("tastebud", "no_semantic", "no_content", "content_only", "semantic_only"))
    runs += [run_model(v, cold, fit=False) for v in variants]
    p = bp.plan(len(cold.eval_users), resamples, p_seed)
    compare = COMPARE + (("tastebud", "tastebud no_semantic no_tags"), ("tastebud content only", "pop"),
                         ("tastebud semantic only", "pop"), ("tastebud semantic only", "ease"))
    out = _table(runs, p, compare)
    # the same users, ranking only the held-out items: which new item to show to whom
    cols = [cold.train.item_index[i] for i in held]
    out["among_held_out"] = _table([run_model(_OnlyItems(m, cols), cold, fit=False) for m in [*baselines, *variants]],
                                   p, compare)
    out["protocol"] = {"name": "cold-items", "rule": COLD_ITEM_RULE.format(min_positives=min_positives, fraction=fraction),
                       "seed": seed, "fraction": fraction, "min_positives": min_positives, **cold.stats,
                       "held_out_sample": held[:20], "bootstrap": p.describe()}
    return out


def run_cold_users(split: Split, blend: Mapping[str, float], interest: Any, embedder: Any, item_vectors: Any,
                   p_seed: int, resamples: int, seed: int, sample: int | None = 200, lengths: Sequence[int] = (1, 3, 5),
                   say: Callable[[str], None] = lambda _m: None, ranker: bool = False,
                   keep: dict[str, list[ModelRun]] | None = None) -> dict[str, Any]:
    """ranker: also the learned ranker, trained (on a validation split) and with its sources fitted
    on the training part without the sampled users, as the baselines are. keep: given, it
    receives each level's runs (their per-user metrics), to pool samples (bench/cold_users.py)."""
    from tastebud.retrieval.baselines import default_baselines

    users = sample_users(split.eval_users, sample, seed)
    full = split.train.events
    base = dict(full)
    for u in users:
        base[u] = []
    fit_train = train_data_from(base, split.train.items, split.train.catalog)
    baselines = default_baselines()
    for m in baselines:
        m.fit(fit_train)
    scorer = TastebudScorer(blend, interest, embedder, "tastebud", item_vectors, profile_users=users)
    scorer.fit(fit_train)
    ranked = _cold_user_ranker(fit_train, split, blend, interest, embedder, scorer, say) if ranker else None
    catalog = split.train.catalog or {}
    histories: dict[str, Callable[[str], list]] = {f"first {n}": (lambda u, n=n: list(full[u][:n])) for n in lengths}
    histories["stated only"] = lambda u: stated_preferences_from(full[u], catalog)
    histories["full train"] = lambda u: list(full[u])
    p = bp.plan(len(users), resamples, p_seed)
    relevant = {u: split.relevant[u] for u in users}
    levels: dict[str, Any] = {}
    stated_counts = []
    for label, history in histories.items():
        events = dict(base)
        for u in users:
            events[u] = history(u)
        if label == "stated only":
            stated_counts = [(sum(e.type == "like" for e in events[u]), sum(e.type == "dislike" for e in events[u])) for u in users]
        level_train = train_data_from(events, split.train.items, split.train.catalog)
        level = Split(train=level_train, test_events=split.test_events, relevant=relevant, config=split.config)
        runs = []
        for m in baselines:
            m.train = level_train  # fitted without these users; scored from the given history
            runs.append(run_model(m, level, fit=False))
        scorer.refold(level_train, users)
        runs += [run_model(v, level, fit=False)
                 for v in _variants(scorer, blend, ("tastebud", "no_semantic", "no_same_start"))]
        if ranked is not None:
            runs.append(run_model(ranked, level, fit=False))
        levels[label] = _table(runs, p, COMPARE + (("tastebud", "tastebud no_same_start"),))
        if keep is not None:
            keep[label] = runs
        say(f"cold users, {label}: " + ", ".join(f"{r.name} {r.summary()['ndcg@10']:.4f}" for r in runs))
    likes = np.array([c[0] for c in stated_counts]) if stated_counts else np.zeros(0)
    dislikes = np.array([c[1] for c in stated_counts]) if stated_counts else np.zeros(0)
    return {"levels": levels, "protocol": {
        "name": "cold-users", "rule": COLD_USER_RULE, "stated_rule": STATED_RULE, "seed": seed,
        "sample": len(users), "of_eval_users": len(split.eval_users), "sample_users": users,
        "stated": {"mean_likes": round(float(likes.mean()), 2) if likes.size else 0.0,
                   "mean_dislikes": round(float(dislikes.mean()), 2) if dislikes.size else 0.0},
        "bootstrap": p.describe()}}


def _cold_user_ranker(fit_train: TrainData, split: Split, blend: Mapping[str, float], interest: Any, embedder: Any,
                      scorer: TastebudScorer, say: Callable[[str], None]) -> Any:
    from tastebud.retrieval.ranker_train import RankerScorer, fit_on_validation

    try:
        model, _info = fit_on_validation(Split(fit_train, {}, {}, split.config),
                                         lambda: TastebudScorer(blend, interest, embedder, "ranker-base", scorer.item_vectors),
                                         say, check=False)
    except ValueError as exc:  # too little data to learn from: the tables go on without it
        say(f"cold users: no ranker ({exc})")
        return None
    return RankerScorer(scorer, model).fit(fit_train)


def run_eval(
    directory: str | Path | None, settings: Any, embedder: Any = None, narratives: bool = False, fit: bool = False,
    baselines: bool = True, ablations: bool = True, log: Callable[[str], None] | None = None, *,
    events: str | Path | None = None, catalog: str | Path | None = None,
    protocols: Sequence[str] = ("warm",), resamples: int = bp.DEFAULT_RESAMPLES, seed: int = 0,
    bootstrap_seed: int = bp.DEFAULT_SEED, cold_user_sample: int | None = 200, cold_item_fraction: float = 0.1,
    ranker: bool = True,
) -> dict[str, Any]:
    """Ingest into a fresh temporary home, split, and evaluate everything on that split.

    directory: a MovieLens folder; or events (+ catalog): files in the formats `tastebud ingest`
    reads. protocols: any of PROTOCOLS. seed: the cold protocols' samples; bootstrap_seed: the
    resampling of users for the intervals. ranker: also train the learned ranker on a validation
    split of the training data (retrieval/ranker_train.py) and evaluate it (warm protocol)."""
    from tastebud.retrieval.baselines import default_baselines

    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from {PROTOCOLS}")
    if (directory is None) == (events is None):
        raise ValueError("give a MovieLens directory or an events file, not both")
    source: dict[str, Any] = {"movielens": str(directory)} if directory is not None else \
        {"events": str(events), "catalog": str(catalog) if catalog else None}
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    split = load_split(source, settings)
    say(f"split: {split.stats}")
    interest = InterestConfig.from_settings(settings)
    blend = dict(settings.blend)
    base_models = default_baselines()
    result: dict[str, Any] = {
        "protocol": {
            **split.stats, "train_fraction": split.config.train_fraction,
            "relevance_threshold": split.config.relevance_threshold, "k": split.config.k,
            "split_rule": SPLIT_RULE, "protocols": list(protocols),
            "seeds": {"bootstrap": bootstrap_seed, "cold_protocols": seed},
            "source": {k: v for k, v in source.items() if v}, "data_sha256": file_hashes(source),
            "tastebud_version": _version(), "embedder": getattr(embedder, "name", None) if embedder is not None else None,
            "models": {**_model_params(base_models), "tastebud": {"class": "TastebudScorer", "blend": blend},
                       **{f"ablation {n}": {"blend_override": o} for n, o in ABLATIONS.items()}},
        },
        "narratives": "used" if narratives else "not used (computed profiles only)",
    }
    if fit:
        say("fitting blend weights on a validation split of the training data")
        blend = fit_blend(TastebudScorer(blend, interest, embedder, "fit"), validation_split(split), say)
        result["fitted_blend"] = blend
        result["protocol"]["models"]["tastebud"]["blend"] = blend
    result["blend"] = blend
    scorer = TastebudScorer(blend, interest, embedder)
    item_vectors = None
    if "warm" in protocols:
        p = bp.plan(len(split.eval_users), resamples, bootstrap_seed)
        result["protocol"]["bootstrap"] = p.describe()
        runs = [run_model(scorer, split)]
        item_vectors = scorer.item_vectors
        say(f"tastebud: {_clean(runs[0].summary())}")
        if baselines:
            for m in base_models:
                runs.append(run_model(m, split))
                say(f"{m.name}: {_clean(runs[-1].summary())}")
        if ranker:
            from tastebud.retrieval.ranker_train import ranker_run

            try:
                run, info = ranker_run(split, scorer, lambda: TastebudScorer(blend, interest, embedder, "ranker-base",
                                                                            scorer.item_vectors), say)
                runs.append(run)
                result["protocol"]["models"]["ranker"] = {"class": "RankerScorer", **info}
                say(f"ranker: {_clean(run.summary())}")
            except ValueError as exc:  # too little data to learn from: say so, keep the rest
                result["protocol"]["models"]["ranker"] = {"class": "RankerScorer", "skipped": str(exc)}
        ablation_runs = []
        if ablations:
            for name, override in ABLATIONS.items():
                ablation_runs.append(run_model(scorer.with_blend({**blend, **override}, name), split, fit=False))
                say(f"{name}: {_clean(ablation_runs[-1].summary())}")
        table = _table(runs + ablation_runs, p, (("tastebud", "ease"), ("tastebud", "pop"), ("tastebud", "itemknn"),
                                                 ("tastebud", "no_semantic"), ("ranker", "tastebud"), ("ranker", "ease")))
        models = table["models"]
        result["tastebud"] = models["tastebud"]
        if "ranker" in models:
            result["ranker"] = models["ranker"]
        if baselines:
            result["baselines"] = {m.name: models[m.name] for m in base_models}
        if ablations:
            result["ablations"] = {n: models[n] for n in ABLATIONS}
        result["comparisons"] = table["comparisons"]
    if ("cold-items" in protocols or "cold-users" in protocols) and item_vectors is None and embedder is not None:
        catalog_ = split.train.catalog or {}
        item_vectors = embedder.encode([catalog_[i].text_for_embedding() if i in catalog_ else i for i in split.train.items])
    if "cold-items" in protocols:
        result["cold_items"] = run_cold_items(split, blend, interest, embedder, item_vectors, bootstrap_seed, resamples,
                                              seed, cold_item_fraction, say=say)
    if "cold-users" in protocols:
        result["cold_users"] = run_cold_users(split, blend, interest, embedder, item_vectors, bootstrap_seed, resamples,
                                              seed, cold_user_sample, say=say, ranker=ranker)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _clean(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
