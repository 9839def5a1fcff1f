"""The real embedded model writes narratives end to end, and the grounding rules hold on what it wrote.

A temp home gets the whole ml-latest-small catalog (the checker's vocabulary)
and the ratings and tags of three users; `App.refresher()` (the production
wiring: store, interest model, NarrativeWriter over the session's llama-cpp
server, the profile-vector hook) refreshes them. Whatever the model writes, each
stored profile must be grounded: an `llm` narrative that passes an independent
title/genre oracle and the checker, or the template with the violations that
sent it there. The last test feeds the model's real prose, with an invented
title and genre appended, back through the checker: it fails if the grounding
machinery is gone even when the model happened to behave.

Run: .venv/bin/python -m pytest -m llm tests/integration/test_narratives_embedded.py -s
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from tests.conftest import ML_SMALL

pytestmark = [pytest.mark.llm, pytest.mark.integration]

USERS = ("1", "68", "414")  # short and long histories, with dislikes and drift


def _subset(src: Path, dst: Path, users: set[str]) -> Path:
    dst.mkdir()
    (dst / "movies.csv").write_bytes((src / "movies.csv").read_bytes())
    for name in ("ratings.csv", "tags.csv"):
        with (src / name).open(newline="", encoding="utf-8") as fin, (dst / name).open("w", newline="", encoding="utf-8") as fout:
            reader = csv.reader(fin)
            writer = csv.writer(fout)
            writer.writerow(next(reader))
            writer.writerows(row for row in reader if row[0] in users)
    return dst


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory, embedded_llm):
    """One real refresh of USERS, shared by the module's tests (the model is slow on 2 cores)."""
    from tastebud.profiles.movielens import ingest_movielens
    from tastebud.settings import load_settings
    from tastebud.app import App

    root = tmp_path_factory.mktemp("narratives")
    data = _subset(ML_SMALL, root / "ml", set(USERS))
    with pytest.MonkeyPatch.context() as mp:  # the `home` fixture's isolation, for the whole module
        for key in [k for k in os.environ if k.startswith("TASTEBUD_")]:
            mp.delenv(key)
        mp.setenv("TASTEBUD_HOME", str(root / "home"))
        app = App(load_settings(), llm=embedded_llm)  # the session's server: injected, so close() leaves it running
        ingest_movielens(app.ingestor(), data)
        refresher = app.refresher()
        report = refresher.refresh(refresher.select_users())
        profiles = {u: app.profiles.require_latest(u) for u in USERS}
        for u, p in profiles.items():
            print(f"\nuser {u} [{p['narrative_source']}] {p.get('narrative_meta')}\n"
                  f"  LONG: {p['long_term']['narrative']}\n  SHORT: {p['short_term']['narrative']}\n"
                  f"  extra tags: {p.get('extra_tags')}")
        yield app, report, profiles
        app.close()


def _checker(app):
    from tastebud.profiles.narrative import GroundingChecker

    catalog = app.store.items_by_id()
    return GroundingChecker((i.title for i in catalog.values() if i.title),
                            {c for i in catalog.values() for c in i.categories}), catalog


def test_every_user_gets_an_llm_or_template_narrative(refreshed):
    _, report, profiles = refreshed
    assert report.users == len(USERS) and report.new_versions == len(USERS)
    assert report.narratives_llm + report.narratives_template == len(USERS)
    assert report.output_tokens > 0  # the model did answer
    for p in profiles.values():
        assert p["narrative_source"] in ("llm", "template")
        assert p["long_term"]["narrative"] and p["short_term"]["narrative"]


def test_stored_narratives_are_grounded(refreshed):
    from tastebud.profiles.narrative import build_digest, normalise_title, plain_title, template_narrative

    app, _, profiles = refreshed
    checker, catalog = _checker(app)
    genres = {c for i in catalog.values() for c in i.categories}
    for user, p in profiles.items():
        digest = build_digest(p)  # the digest the writer saw: built from the same computed profile
        text = f"{p['long_term']['narrative']}\n{p['short_term']['narrative']}"
        meta = p["narrative_meta"]
        if p["narrative_source"] == "template":
            # two rejected answers, their reasons recorded, and the deterministic fallback stored
            assert meta["attempts"] == 2 and meta["violations"]
            assert (p["long_term"]["narrative"], p["short_term"]["narrative"]) == template_narrative(p)
            assert p["extra_tags"] == []
            continue
        assert checker.violations(text, digest) == [], (user, text)
        assert meta["attempts"] == 1 or meta["violations"]  # a regeneration says why
        # An independent oracle: catalog titles as written (case-sensitive, display form) ...
        shown = text  # the text without the digest's own titles (or their 'Star Wars'-style heads)
        heads = {re.split(r":| - ", name)[0] for name in digest.allowed_titles}
        for name in sorted(digest.allowed_titles | heads, key=len, reverse=True):
            shown = re.sub(re.escape(name), " ", shown, flags=re.IGNORECASE)
        for item in catalog.values():
            title = plain_title(item.title or "")
            if len(title) >= 10 and " " in title and re.search(rf"(?<!\w){re.escape(title)}(?!\w)", shown):
                assert any(normalise_title(title) in allowed for allowed in digest.allowed_titles), (user, title)
        # ... and every genre named outside a title is one the digest gave evidence for
        for genre in genres:
            if re.search(rf"\b{re.escape(genre)}\b", shown, flags=re.IGNORECASE):
                assert genre.lower() in digest.allowed_tags, (user, genre, text)
        # a disliked title is never named without a negative word near it
        cue = re.compile(r"\b(not|never|dislik\w*|disappoint\w*|avoid\w*|hate\w*|low\w*|poor\w*|less|weak\w*|"
                         r"bor(?:ed|ing)|fading|unimpress\w*|negative\w*|critic\w*|[0-2](?:\.5)?/5)\b|n't", re.IGNORECASE)
        for part in (p["long_term"]["narrative"], p["short_term"]["narrative"]):
            for name in digest.disliked_titles:
                for m in re.finditer(re.escape(name), part, flags=re.IGNORECASE):
                    assert cue.search(part[max(0, m.start() - 250):m.end() + 40]), (user, name, part)


def test_extra_tags_cite_real_events_of_that_user(refreshed):
    from tastebud.profiles.narrative import EXAMPLE_TAGS, build_digest

    app, _, profiles = refreshed
    for user, p in profiles.items():
        own = {e.event_id for e in app.store.events_for_user(user)}
        allowed = build_digest(p).allowed_tags
        for tag in p.get("extra_tags", []):
            assert tag["source"] == "llm" and tag["evidence_event_ids"]
            assert set(tag["evidence_event_ids"]) <= own, (user, tag)
            assert tag["tag"] not in allowed | EXAMPLE_TAGS  # new words, not the digest's or the prompt's


def test_checker_rejects_the_models_prose_once_it_invents(refreshed):
    """The model's real output, plus one invented title and one genre without evidence: both caught,
    by the checker and by the writer's whole check (so removing either makes this fail)."""
    from tastebud.profiles.narrative import _core, build_digest, normalise_title, plain_title

    app, _, profiles = refreshed
    checker, catalog = _checker(app)
    writer = app.narrative_writer()
    for user, p in profiles.items():
        digest = build_digest(p)
        invented = next(plain_title(i.title) for i in sorted(catalog.values(), key=lambda i: i.item_id)
                        if i.title and " " in _core(t := normalise_title(i.title)) and len(t) >= 12 and ":" not in t
                        and not any(t in a or a in t for a in digest.allowed_titles))
        genre = next(g for g in ("Horror", "Documentary", "Western", "Musical", "Film-Noir", "War")
                     if g.lower() not in digest.allowed_tags)
        long = p["long_term"]["narrative"].rstrip()
        poisoned = f"{long} They also love {invented} and {genre} films."
        found = checker.violations(f"{poisoned}\n{p['short_term']['narrative']}", digest)
        assert f"invented title {normalise_title(invented)!r}" in found, (invented, found)
        assert f"genre {genre.lower()!r} has no evidence" in found
        answer = f"LONG: {poisoned}\nSHORT: {p['short_term']['narrative']}\nTAGS:"
        assert writer.check(answer, digest)[3], "the writer accepted an invented title"
