import re

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from tastebud.profiles.interest import InterestConfig, build_interest_profile
from tastebud.profiles.narrative import (
    GroundingChecker,
    NarrativeWriter,
    build_digest,
    normalise_title,
    parse_answer,
    template_narrative,
)
from tastebud.settings import DEFAULT_EVENT_WEIGHTS
from tests.profile_helpers import item, rating

ITEMS = {
    "heat": item("heat", ["Crime", "Thriller"], ["heist"], "Heat (1995)"),
    "ronin": item("ronin", ["Crime", "Action"], [], "Ronin (1998)"),
    "notebook": item("notebook", ["Romance"], [], "Notebook, The (2004)"),
}
CATALOG = ["Heat (1995)", "Ronin (1998)", "Notebook, The (2004)", "Matrix, The (1999)", "Toy Story (1995)"]
GENRES = ["Crime", "Thriller", "Action", "Romance", "Horror", "Comedy", "Sci-Fi"]


def profile():
    events = [rating("u", "heat", 5.0, 0), rating("u", "ronin", 4.5, 1), rating("u", "notebook", 1.0, 2)]
    data = build_interest_profile("u", events, ITEMS, InterestConfig(event_weights=DEFAULT_EVENT_WEIGHTS)).computed()
    return data


GOOD = (
    "LONG: This user loves Crime and Thriller stories; Heat (1995) and Ronin (1998) are favourites.\n"
    "SHORT: Lately they keep returning to Crime and Action.\n"
    "TAGS: tense [1,2]; slow burn [9]"
)
INVENTED = (
    "LONG: This user loves Crime films like The Matrix and Heat.\n"
    "SHORT: Lately they watch Horror.\n"
    "TAGS:"
)
MIXED_UP = (
    "LONG: This user enjoys Crime. The Notebook is also a strong choice for them.\n"
    "SHORT: Lately they watch Crime and Action.\n"
)


def writer(responses):
    checker = GroundingChecker(CATALOG, GENRES)
    return NarrativeWriter(FakeListChatModel(responses=responses), checker, concurrency=1)


def test_digest_is_compact_and_keeps_likes_and_dislikes_apart():
    digest = build_digest(profile())
    lines = digest.text.splitlines()
    liked = next(line for line in lines if line.startswith("Liked:"))
    disliked = next(line for line in lines if line.startswith("Disliked:"))
    assert "[1] Heat" in liked and "Notebook" not in liked
    assert disliked == "Disliked: The Notebook"
    # titles as people write them; no years or ratings for the small model to recite
    assert not re.search(r"\d/5|\(\d{4}\)", digest.text)
    assert digest.ratings == {"heat": 5.0, "ronin": 4.5, "the notebook": 1.0}
    assert len(digest.text) < 400


def test_grounded_answer_is_kept_and_only_cited_tags_survive():
    [result] = writer([GOOD]).write_many([profile()])
    assert result.source == "llm" and result.attempts == 1
    assert "Heat (1995)" in result.long
    # "tense" cites liked titles [1,2]; "slow burn" cites [9], which does not exist
    assert [t["tag"] for t in result.extra_tags] == ["tense"]
    assert len(result.extra_tags[0]["evidence_event_ids"]) == 2


def test_invented_title_triggers_one_regeneration():
    [result] = writer([INVENTED, GOOD]).write_many([profile()])
    assert result.source == "llm" and result.attempts == 2
    assert any("matrix" in v for v in result.violations)


def test_two_failures_fall_back_to_the_template():
    [result] = writer([INVENTED, MIXED_UP]).write_many([profile()])
    assert result.source == "template"
    assert (result.long, result.short) == template_narrative(profile())
    assert any("disliked title" in v for v in result.violations)


def test_checker_flags_genres_without_evidence_and_accepts_negated_dislikes():
    checker = GroundingChecker(CATALOG, GENRES)
    digest = build_digest(profile())
    assert checker.violations("They also like Horror movies.", digest) == ["genre 'horror' has no evidence"]
    assert checker.violations("They did not enjoy The Notebook (2004), rating it 1/5.", digest) == []
    assert checker.violations("They love Crime thrillers such as Heat.", digest) == []


def test_parse_answer_and_title_normalisation():
    long, short, tags = parse_answer("**LONG:** One.\nTwo.\nSHORT: Three.\nTAGS: noir [1, 2]")
    assert (long, short, tags) == ("One. Two.", "Three.", [("noir", [1, 2])])
    assert normalise_title("Matrix, The (1999)") == "the matrix"
    assert normalise_title("Seven Samurai (Shichinin no samurai) (1954)") == "seven samurai"


def test_model_errors_fall_back_to_the_template():
    class Broken(FakeListChatModel):
        def _call(self, *args, **kwargs):
            raise TimeoutError("slow")

    checker = GroundingChecker(CATALOG, GENRES)
    [result] = NarrativeWriter(Broken(responses=["x"]), checker).write_many([profile()])
    assert result.source == "template"
    assert "the model did not answer" in result.violations


def test_rating_claims_must_belong_to_a_title_with_that_rating():
    checker = GroundingChecker(CATALOG, GENRES)
    digest = build_digest(profile())
    assert checker.violations("They gave Heat 5/5.", digest) == []
    assert checker.violations("They rated Crime 5/5 on each genre.", digest) == ["rating 5/5 not tied to a title with that rating"]
    assert checker.violations("They gave Ronin 5 stars.", digest) == ["rating 5/5 not tied to a title with that rating"]


def test_checker_reads_titles_in_their_written_forms():
    checker = GroundingChecker(CATALOG + ["Big Lebowski, The (1998)", "Star Wars: Episode IV - A New Hope (1977)",
                                          "Children, The (1980)"], GENRES + ["War", "Children"])
    events = [rating("u", "lebowski", 5.0, 0), rating("u", "sw", 4.0, 1), rating("u", "notebook", 1.0, 2)]
    items = {**ITEMS, "lebowski": item("lebowski", ["Comedy"], [], "Big Lebowski, The (1998)"),
             "sw": item("sw", ["Sci-Fi"], [], "Star Wars: Episode IV - A New Hope (1977)")}
    digest = build_digest(build_interest_profile("u", events, items, InterestConfig(event_weights=DEFAULT_EVENT_WEIGHTS)).computed())
    # 'Star Wars' is a digest title, not the genre War; a rating may sit next to the title without its article
    assert checker.violations("They loved Star Wars and gave Big Lebowski 5/5.", digest) == []
    # 'the children' as a word is not the film 'The Children'; with capitals it is
    assert checker.violations("Not much for the children genre.", digest) == ["genre 'children' has no evidence"]
    assert checker.violations("They like Comedy, e.g. The Children.", digest) == [
        "genre 'children' has no evidence", "invented title 'the children'"]
    # quotes pair up even around a short title (too short to police itself)
    assert checker.violations('They enjoy "Big Lebowski" and "Up" and "Hot Shots".', digest) == [
        "invented title 'Hot Shots'"]
    assert checker.violations("Notebook is a favourite.", digest) == ["disliked title 'the notebook' presented as liked"]


def test_cut_off_answers_and_echoed_example_tags_are_not_kept():
    cut = "LONG: This user loves Crime and Thriller, with Heat (1995) a favourite.\nSHORT: Lately they watch Crime and"
    echo = GOOD.replace("tense [1,2]", "heist [1,2]")
    [result] = writer([cut, echo]).write_many([profile()])
    assert result.attempts == 2 and "SHORT must be 1-5 complete sentences" in result.violations
    assert result.source == "llm" and result.extra_tags == []


def test_a_disliked_title_needs_a_negative_word_in_its_own_stretch():
    checker = GroundingChecker(CATALOG, GENRES)
    digest = build_digest(profile())
    assert checker.violations("They love Crime films such as Heat, Ronin and The Notebook. Avoided: nothing.", digest) == [
        "disliked title 'the notebook' presented as liked"]
    assert checker.violations("They love Heat and Ronin but did not enjoy The Notebook.", digest) == []
    assert checker.violations("They love Heat; The Notebook, rated 1/5, was a miss.", digest) == []


def test_a_liked_title_after_a_rejection_is_flagged_and_genre_tags_are_not_extra_tags():
    checker = GroundingChecker(CATALOG, GENRES)
    digest = build_digest(profile())
    assert checker.violations("They did not enjoy Heat.", digest) == ["liked title 'heat' presented as disliked"]
    assert checker.violations("They did not enjoy The Notebook, and loved Heat.", digest) == []
    assert checker.violations("Critically acclaimed Heat is a favourite.", digest) == []
    [result] = writer([GOOD.replace("tense [1,2]", "thriller [1,2]; gritty crime [1]")]).write_many([profile()])
    assert [t["tag"] for t in result.extra_tags] == ["gritty crime"]
