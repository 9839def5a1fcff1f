"""The deterministic renderings in Chinese (issue 12 item 4): every answer kind
and every failed call, from realistic tool results, with the English renderings
byte-identical to the ones captured before the Chinese were added
(tests/data/render_en_golden.json). No LLM."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tastebud.agent.messages import help_text, say
from tastebud.agent.render import _md, render_call, render_calls
from tastebud.agent.render_zh import OWN_DATA, error_zh
from tastebud.agent.roles import Principal, Role, _WHY_NOT
from tastebud.agent.tools import ToolCall
from tastebud.errors import PermissionDenied
from tastebud.retrieval.service import CATEGORY_ZH, render_why, render_why_zh, tag_zh

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "render_en_golden.json").read_text(encoding="utf-8"))
CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORDS = ("recommend", "because", "profile", "sorry", "here is", "noted", "similarity", "weight", "popular",
                 "user", "events", "interests", "latest", "matches", "ask", "nothing", "refreshed", "status")

# ---------------------------------------------------------------- fixtures: the shapes agent/tools.py returns

WHY_EN = [["You rated The Matrix (1999) 5/5 and Aliens (1986) 4.5/5; people who liked those also liked this.",
           "Matches your interest in sci-fi (weight 0.82) and dystopia (weight 0.41)."],
          ["Popular: 1,234 people interacted with it positively."],
          []]
WHY_ZH = [["你评过《The Matrix (1999)》（5/5）和《Aliens (1986)》（4.5/5）；喜欢这些作品的人也喜欢这部。",
           "符合你对科幻（权重 0.82）、dystopia（权重 0.41）的兴趣。"],
          ["很受欢迎：有 1,234 人对它有正面互动。"],
          []]


def _rec_items(zh: bool) -> list[dict[str, Any]]:
    rows = [("1", "2571", "Blade Runner (1982)", 0.912, ["Action", "Sci-Fi", "Thriller", "Drama"]),
            ("2", "1200", "M*A*S*H (1970)", 0.801, ["Comedy", "War"]),
            ("3", "480", "Jurassic Park (1993)", 0.7, [])]
    out = []
    for (rank, iid, title, score, cats), why, why_zh in zip(rows, WHY_EN, WHY_ZH):
        it = {"rank": int(rank), "item_id": iid, "title": title, "score": score, "categories": cats, "why": why,
              "because_you_liked": [{"item_id": "2571", "title": "The Matrix (1999)"}] if why else []}
        if zh:
            it["why_zh"] = why_zh
        out.append(it)
    return out


def results(zh: bool = True) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (tool, result). zh=False: without the *_zh fields (older results)."""
    r: dict[str, tuple[str, dict[str, Any]]] = {}
    r["recommend"] = ("recommend", {
        "user_id": "1", "request_id": "7f0c2a9e-1111-4222-8333-944445555666", "profile_version": 4,
        "params": {"k": 3, "category": None, "exclude": [], "intent": None}, "items": _rec_items(zh)})
    r["recommend_intent_category"] = ("recommend", {
        "user_id": "1", "request_id": "7f0c2a9e-1111-4222-8333-944445555667", "profile_version": 4,
        "params": {"k": 3, "category": "Comedy", "exclude": ["Horror"], "intent": "something light for a rainy evening"},
        "items": _rec_items(zh)[:2]})
    r["recommend_seed"] = ("recommend", {
        "user_id": "1", "request_id": "7f0c2a9e-1111-4222-8333-944445555668", "profile_version": 4,
        "params": {"k": 2, "category": None, "exclude": [], "intent": None, "seed": "2571", "seed_title": "The Matrix (1999)"},
        "items": _rec_items(zh)[:1]})
    r["recommend_empty"] = ("recommend", {
        "user_id": "1", "request_id": "x", "profile_version": 4,
        "params": {"k": 5, "category": "Western", "exclude": [], "intent": None}, "items": []})
    explain = {
        "user_id": "1", "item_id": "2571", "title": "Blade Runner (1982)", "request_id": "7f0c2a9e-1111-4222-8333-944445555666",
        "rank": 1, "recommended_at": "2024-03-01 12:00 UTC", "score": 0.912, "profile_version": 4, "source": "agent",
        "sentences": WHY_EN[0] + ["Close to your long-term taste profile (similarity 0.71)."],
        "parts": {"co_occurrence": 0.45, "tag_match": 0.3, "semantic_long": 0.12},
        "evidence": {"because_you_liked": [{"item_id": "2571", "title": "The Matrix (1999)", "type": "rating", "value": 5.0},
                                           {"item_id": "1200", "title": "Aliens (1986)", "type": "rating", "value": 4.5}],
                     "matching_tags": [{"tag": "sci-fi", "weight": 0.82}, {"tag": "dystopia", "weight": 0.41}],
                     "popularity": 1234}}
    if zh:
        explain["sentences_zh"] = WHY_ZH[0] + ["与你的长期口味画像接近（相似度 0.71）。"]
    r["explain"] = ("explain", explain)
    r["explain_unknown_time"] = ("explain", {**explain, "recommended_at": None, "rank": 3})
    r["get_profile"] = ("get_profile", {
        "user_id": "1", "version": 4, "narrative_long_term": "Lasting interests are sci-fi, dystopia and heist films.",
        "narrative_recent": "Lately focused on comedy and anime.", "narrative_source": "template",
        "long_term_tags": [{"tag": "sci-fi", "weight": 0.823}, {"tag": "dystopia", "weight": 0.41}, {"tag": "heist", "weight": 0.2},
                           {"tag": "noir", "weight": 0.15}, {"tag": "cyberpunk", "weight": 0.14}, {"tag": "space", "weight": 0.12},
                           {"tag": "robots", "weight": 0.1}],
        "recent_tags": [{"tag": "comedy", "weight": 0.5}, {"tag": "anime", "weight": 0.3}],
        "disliked_tags": [{"tag": "gore", "weight": -0.4}, {"tag": "slasher", "weight": -0.2}],
        "liked_items": [{"item_id": "2571", "title": "The Matrix (1999)"}, {"item_id": "1200", "title": "Aliens (1986)"},
                        {"item_id": "1", "title": "Toy Story (1995)"}, {"item_id": "260", "title": "Star Wars (1977)"},
                        {"item_id": "32", "title": "Twelve Monkeys (1995)"}],
        "disliked_items": [{"item_id": "1347", "title": "A Nightmare on Elm Street (1984)"}],
        "emerging": ["comedy", "anime"], "fading": [], "events": 212})
    r["get_profile_bare"] = ("get_profile", {
        "user_id": "9", "version": 1, "narrative_long_term": None, "narrative_recent": None, "narrative_source": None,
        "long_term_tags": [], "recent_tags": [], "disliked_tags": [], "liked_items": [], "disliked_items": [],
        "emerging": [], "fading": ["western"], "events": 3})
    r["get_history"] = ("get_history", {"user_id": "1", "total_events": 212, "events": [
        {"when": "2024-03-01 12:00 UTC", "type": "rating", "item_id": "2571", "title": "The Matrix (1999)", "value": 5.0, "text": None},
        {"when": "2024-02-28 09:30 UTC", "type": "review", "item_id": "1200", "title": "Aliens (1986)", "value": None,
         "text": "Tense and loud, loved the ending"},
        {"when": None, "type": "like", "item_id": "1", "title": "Toy Story (1995)", "value": None, "text": None},
        {"when": "2024-02-01 08:00 UTC", "type": "rating", "item_id": "32", "title": "Twelve Monkeys (1995)", "value": 3.5, "text": None}]})
    r["get_history_empty"] = ("get_history", {"user_id": "1", "total_events": 212, "events": []})
    r["search_items"] = ("search_items", {"query": "space opera", "category": None, "items": [
        {"item_id": "260", "title": "Star Wars (1977)", "categories": ["Action", "Adventure", "Sci-Fi"], "similarity": 0.712,
         "description": "A farm boy joins a rebellion."},
        {"item_id": "1356", "title": "Star Trek: First Contact (1996)", "categories": ["Sci-Fi"], "similarity": 0.6,
         "description": "The Borg travel back in time."}]})
    r["search_items_empty"] = ("search_items", {"query": "zzqx", "category": None, "items": []})
    r["feedback_dislike_item"] = ("record_feedback", {"user_id": "1", "kind": "dislike", "item_id": "1347",
                                                     "title": "A Nightmare on Elm Street (1984)", "event_id": "agent-1",
                                                     "stored": "event", "profile_version": 5})
    r["feedback_like_item"] = ("record_feedback", {"user_id": "1", "kind": "like", "item_id": "260", "title": "Star Wars (1977)",
                                                  "event_id": "agent-2", "stored": "event", "profile_version": 6})
    r["feedback_dislike_category"] = ("record_feedback", {"user_id": "1", "kind": "dislike", "category": "Horror",
                                                         "event_id": "agent-3", "stored": "event", "profile_version": 7})
    r["feedback_like_category"] = ("record_feedback", {"user_id": "1", "kind": "like", "category": "Comedy",
                                                      "event_id": "agent-4", "stored": "event", "profile_version": 8})
    r["recommendation_log"] = ("recommendation_log", {
        "user_id": "7", "request_id": "7f0c2a9e-1111-4222-8333-944445555666", "created_at": "2024-03-01 12:00 UTC",
        "source": "agent", "profile_version": 4, "params": {"k": 2},
        "items": [{"rank": 1, "item_id": "2571", "title": "Blade Runner (1982)", "score": 0.912},
                  {"rank": 2, "item_id": "1200", "title": "Aliens (1986)", "score": 0.801}]})
    r["recommendation_log_no_date"] = ("recommendation_log", {**r["recommendation_log"][1], "created_at": None})
    r["refresh_profiles"] = ("refresh_profiles", {"users": 12, "new_versions": 9, "unchanged": 3, "narratives_llm": 0,
                                                  "narratives_template": 9, "narratives_kept": 0, "narratives_stale": 0,
                                                  "output_tokens": 0, "seconds": 2.345, "llm_seconds": 0.0, "users_per_s": 5.1,
                                                  "user_ids": ["1", "2"]})
    r["refresh_profiles_none"] = ("refresh_profiles", {"users": 0, "message": "all profiles are up to date"})
    r["opt_out"] = ("opt_out", {"user_id": "1", "opted_out": True, "already": False, "profile_versions_removed": 3,
                                "profile_vectors_removed": 2})
    r["opt_out_already"] = ("opt_out", {"user_id": "1", "opted_out": True, "already": True, "profile_versions_removed": 0,
                                        "profile_vectors_removed": 0})
    r["opt_in"] = ("opt_out", {"user_id": "1", "opted_out": False, "was_opted_out": True})
    r["opt_in_not_opted_out"] = ("opt_out", {"user_id": "1", "opted_out": False, "was_opted_out": False})
    r["status"] = ("status", {"users": 610, "items": 9742, "stub_items": 0, "events": 100836, "events_by_type": {"rating": 100836},
                              "first_event_at": None, "last_event_at": None, "quarantined": 2, "profiles": 610,
                              "profiles_stale": 14, "narratives_stale": 0, "vectors": {"items": 9742, "profiles": 1220},
                              "llm": {"backend": "embedded", "model": "qwen2.5-0.5b-instruct", "concurrency": 1}})
    r["status_no_vectors"] = ("status", {"users": 40, "items": 300, "events": 5000, "quarantined": 0, "profiles": 40,
                                         "profiles_stale": 0, "vectors": {"error": "connection refused"}})
    return copy.deepcopy(r)


def why_entry() -> dict[str, Any]:
    """A logged entry with seed, co_occurrence, tag_match (liked and avoided tags), popularity,
    semantic, intent and dislike parts."""
    return {
        "parts": {"seed": 0.9, "co_occurrence": 0.45, "tag_match": 0.3, "semantic_long": 0.12, "semantic_short": 0.05,
                  "intent": 0.2, "popularity": 0.08, "dislike_similarity": -0.1},
        "evidence": {
            "seed": {"item_ids": ["2571"], "titles": ["Matrix, The (1999)"], "co_occurrence": 0.6321, "cosine": 0.8312},
            "co_occurrence": [{"item_id": "1200", "title": "Aliens (1986)", "type": "rating", "value": 4.5},
                              {"item_id": "1", "title": "Toy Story (1995)", "type": "like", "value": None}],
            "tag_match": [{"tag": "sci-fi", "weight": 0.82}, {"tag": "dystopia", "weight": 0.41}, {"tag": "gore", "weight": -0.3}],
            "semantic_long": {"cosine": 0.7134}, "semantic_short": {"cosine": 0.5},
            "intent": {"text": "mind-bending action", "cosine": 0.5523},
            "popularity": {"positive_interactions": 1234},
        },
    }


ERRORS = {  # name -> (tool, refused, English text as the tools write it)
    "own_data": ("get_profile", True, "Sorry, I can only show you your own data."),
    "refused_recommend": ("recommend", True, "Sorry, I can't do that here: staff sessions don't serve recommendations "
                          "(a new list would be logged as served to the user); the recommendation log shows what the user was shown."),
    "refused_status": ("status", True, "Sorry, I can't do that here: system status needs the operator role."),
    "no_item": ("explain", False, "Sorry, I couldn't find an item called 'Zorro 3'."),
    "no_user": ("get_history", False, "Sorry, I don't know user 5."),
    "nothing_logged": ("recommendation_log", False, "Sorry, nothing has been recommended to user 3 yet."),
    "unexpected": ("search_items", False, "Sorry, search_items failed unexpectedly (RuntimeError)."),
    "no_error_text": ("search_items", False, None),
}


def call_of(name: str, zh: bool = True) -> ToolCall:
    tool, result = results(zh)[name]
    return ToolCall(tool, {}, result=result)


def data_strings(r: Any) -> list[str]:
    """Every string in a result (titles, tags, query, review text, ids, times...), as rendered (escaped)."""
    out: list[str] = []
    if isinstance(r, dict):
        for k, v in r.items():
            if k in ("why", "sentences"):  # the English sentences are not data shown in Chinese
                continue
            out += data_strings(v)
    elif isinstance(r, list):
        for v in r:
            out += data_strings(v)
    elif isinstance(r, str):
        out += [r, _md(r), " ".join(r.split())]
    return out


def english_left(text: str, result: dict[str, Any]) -> list[str]:
    """Latin words of a Chinese rendering once titles, tags and other data are taken out."""
    for s in sorted(set(data_strings(result)), key=len, reverse=True):
        if s:
            text = text.replace(s, " ")
    return [w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in ("LLM", "UTC")]


def facts(name: str, tool: str, r: dict[str, Any]) -> list[str]:
    """What the Chinese rendering must say: the titles and numbers the English one says."""
    f: list[str] = []
    if tool == "recommend":
        for it in r["items"]:
            f += [f"{it['rank']}. **{_md(it['title'])}**", *(it["why_zh"][:1] if it.get("why_zh") else [])]
            f += [CATEGORY_ZH[c] for c in it["categories"][:3]]
        if r["items"]:  # like the English, an empty list says only that nothing is left
            f += [r["params"]["intent"]] if r["params"].get("intent") else []
            f += [CATEGORY_ZH[r["params"]["category"]]] if r["params"].get("category") else []
    elif tool == "explain":
        f += [f"**{_md(r['title'])}**", f"第 {r['rank']} 位", f"用户 {r['user_id']}", *r["sentences_zh"]]
        f += [r["recommended_at"]] if r["recommended_at"] else ["未知时间"]
    elif tool == "get_profile":
        f += [f"用户 {r['user_id']}", f"v{r['version']}", *map(tag_zh, r["emerging"] + r["fading"])]
        f += [f"{tag_zh(t['tag'])}（{t['weight']:.2f}）" for t in r["long_term_tags"][:6]]
        f += [tag_zh(t["tag"]) for t in r["disliked_tags"]] + [f"**{_md(i['title'])}**" for i in r["liked_items"][:4]]
    elif tool == "get_history":
        f += [f"用户 {r['user_id']}"] + ([str(r["total_events"])] if r["events"] else [])
        for e in r["events"]:
            f += [f"**{_md(e['title'])}**", e["when"] or "时间未知"]
            f += [f"{e['value']:g}"] if e["value"] is not None else []
            f += [e["text"]] if e["text"] else []
    elif tool == "search_items":
        f += [r["query"]] + [f"**{_md(it['title'])}**" for it in r["items"]] + [f"{it['similarity']:.2f}" for it in r["items"]]
    elif tool == "record_feedback":
        f += [f"v{r['profile_version']}"]
        f += [CATEGORY_ZH[r["category"]]] if r.get("category") else [f"**{_md(r['title'])}**"]
    elif tool == "recommendation_log":
        f += [f"用户 {r['user_id']}", r["request_id"]] + [f"{it['rank']}. **{_md(it['title'])}**" for it in r["items"]]
        f += [r["created_at"]] if r["created_at"] else ["未知日期"]
    elif tool == "refresh_profiles":
        f += ([str(r["users"]), str(r["new_versions"]), str(r["unchanged"]), f"{r['seconds']:.1f}"] if r["users"] else ["最新"])
    elif tool == "opt_out":
        f += [f"{r['profile_versions_removed']} 个画像版本", f"{r['profile_vectors_removed']} 个画像向量"] \
            if r["opted_out"] and not r.get("already") else []
    elif tool == "status":
        f += [f"{r[k]:,}" for k in ("users", "items", "events", "profiles", "profiles_stale", "quarantined")]
        if "items" in r["vectors"]:
            f += [f"{r['vectors']['items']:,} 个物品", f"{r['vectors']['profiles']:,} 个画像"]
        f += [r["llm"]["backend"], r["llm"]["model"]] if r.get("llm") else []
    return f


# ---------------------------------------------------------------- English: unchanged

@pytest.mark.parametrize("zh", [False, True], ids=["plain", "with_zh_fields"])
def test_english_renderings_are_byte_identical(zh):
    for name, (tool, result) in results(zh).items():
        call = ToolCall(tool, {}, result=result)
        assert render_call(call) == GOLDEN[name], name
        assert render_call(call, "en") == GOLDEN[name], name
        assert render_call(call, lang="en") == GOLDEN[name], name
    for name, (tool, refused, err) in ERRORS.items():
        assert render_call(ToolCall(tool, {}, refused=refused, error=err)) == GOLDEN["error:" + name], name
    two = [ToolCall("status", {}, result=results()["status"][1]), ToolCall("get_history", {}, error="Sorry, I don't know user 5.")]
    assert render_calls(two) == render_calls(two, "en") == GOLDEN["calls:two"]
    assert render_calls([]) == render_calls([], "zh") == GOLDEN["calls:none"] == ""
    assert render_why(why_entry()) == GOLDEN["render_why:entry"]


# ---------------------------------------------------------------- Chinese: every answer kind

@pytest.mark.parametrize("name", list(results()))
def test_chinese_rendering_says_the_same_facts_in_chinese(name):
    tool, result = results()[name]
    zh = render_call(ToolCall(tool, {}, result=copy.deepcopy(result)), "zh")
    assert CJK.search(zh), zh
    missing = [f for f in facts(name, tool, result) if f not in zh]
    assert not missing, (missing, zh)
    data = " ".join(data_strings(result)).lower()
    assert not [w for w in ENGLISH_WORDS if w in zh.lower() and w not in data], zh
    assert not english_left(zh, result), (english_left(zh, result), zh)
    assert zh != GOLDEN[name]


def test_every_tool_kind_has_a_chinese_fixture():
    from tastebud.agent.render import RENDERERS
    from tastebud.agent.render_zh import RENDERERS_ZH

    assert set(RENDERERS_ZH) == set(RENDERERS) == {tool for tool, _ in results().values()}


def test_results_without_zh_fields_still_render_in_chinese():
    rec = render_call(call_of("recommend", zh=False), "zh")
    assert "**Blade Runner (1982)**" in rec and "You rated" not in rec and CJK.search(rec)
    exp = render_call(call_of("explain", zh=False), "zh")
    assert "《The Matrix (1999)》" in exp and "0.45" in exp and not english_left(exp, results(False)["explain"][1])


def test_render_calls_joins_in_chinese_and_zh_variants_count():
    two = [call_of("status"), ToolCall("get_history", {}, error="Sorry, I don't know user 5.")]
    out = render_calls(two, "zh")
    assert out.startswith("系统状态：") and out.endswith("抱歉，找不到用户 5。") and "\n\n" in out
    assert render_call(call_of("status"), "zh-CN") == render_call(call_of("status"), "zh")
    assert render_call(call_of("status"), "fr") == GOLDEN["status"]


# ---------------------------------------------------------------- Chinese: failed calls

def test_refusals_have_a_chinese_reason_per_tool():
    seen = set()
    for tool in _WHY_NOT:
        role = Role.USER if tool in ("refresh_profiles", "status") else Role.SUPPORT
        with pytest.raises(PermissionDenied) as exc:
            Principal(role, "1" if role is Role.USER else None).check_tool(tool)
        zh = render_call(ToolCall(tool, {}, refused=True, error=str(exc.value)), "zh")
        assert zh.startswith("抱歉") and CJK.search(zh) and not re.search(r"[A-Za-z]{3,}", zh), zh
        seen.add(zh)
    assert len(seen) == len(_WHY_NOT)
    with pytest.raises(PermissionDenied) as exc:
        Principal(Role.USER, "1").resolve_user("7")
    assert render_call(ToolCall("get_profile", {}, refused=True, error=str(exc.value)), "zh") == OWN_DATA == say("own_data", "zh")
    other = render_call(ToolCall("frobnicate", {}, refused=True, error="Sorry, I can't do that here: the support role cannot use frobnicate."), "zh")
    assert "客服" in other and "frobnicate" in other


@pytest.mark.parametrize("english, must", [
    ("Sorry, I couldn't find an item called 'Zorro 3'.", ["Zorro 3", "找不到"]),
    ("Sorry, I don't know user 5.", ["用户 5"]),
    ("Sorry, nothing has been recommended to user 3 yet.", ["用户 3", "还没有"]),
    ("Nothing has been recommended to user 3 yet.", ["用户 3", "还没有"]),
    ("Sorry, there is no category 'Cowboy'.", ["Cowboy", "类别"]),
    ("Sorry, search_items failed unexpectedly (RuntimeError).", ["RuntimeError", "意外失败"]),
    ("Sorry, user '5' has no profile yet (run: tastebud refresh --user 5).", ["用户 5", "tastebud refresh --user 5"]),
    ("Sorry, item '318' was never recommended to user '7' in request abc.", ["318", "用户 7", "abc"]),
    ("Sorry, no recommendation request 'abc' for user '7'.", ["abc", "用户 7"]),
    ('Which user? Name one ("user 42") or pick one with /user 42.', ["哪个用户", "/user 42"]),
    ("Which item (or category) is the feedback about?", ["反馈"]),
])
def test_common_errors_map_to_chinese(english, must):
    zh = render_call(ToolCall("explain", {}, error=english), "zh")
    assert CJK.search(zh) and all(m in zh for m in must), zh
    assert "Sorry" not in zh and "抱歉，没能完成" not in zh, zh
    assert error_zh(english) == zh


def test_other_errors_fall_back_to_the_english_text_after_a_chinese_lead():
    assert render_call(ToolCall("status", {}, error="Sorry, the disk is on fire."), "zh") == "抱歉，没能完成：the disk is on fire."
    assert render_call(ToolCall("status", {}, error="Chroma is down"), "zh") == "抱歉，没能完成：Chroma is down"
    assert render_call(ToolCall("status", {}, error=None), "zh") == "抱歉，没能完成。"


# ---------------------------------------------------------------- render_why_zh

def test_render_why_zh_says_the_same_sentences_in_the_same_order():
    entry = why_entry()
    en, zh = render_why(entry), render_why_zh(entry)
    assert len(zh) == len(en) == 9
    # the same sentence kinds, in the same order (biggest part first, seed leading)
    kinds_en = ["Like ", "You liked", "Matches", "Fits your request", "long-term", "Popular", "recent", "has gore", "resembles"]
    kinds_zh = ["与你问到的", "你喜欢过", "符合你对", "符合你的要求", "长期", "很受欢迎", "近期", "带有 gore", "与你不喜欢的作品相似"]
    assert [next(i for i, k in enumerate(kinds_en) if k in s) for s in en] == list(range(9))
    assert [next(i for i, k in enumerate(kinds_zh) if k in s) for s in zh] == list(range(9)), zh
    seed, co, tags, intent, long_, pop, short, avoid, _ = zh
    assert "《Matrix, The (1999)》" in seed and "喜欢它的人也喜欢这部" in seed and "0.83" in seed
    assert "《Aliens (1986)》（评分 4.5/5）" in co and "《Toy Story (1995)》（喜欢）" in co
    assert tags == "符合你对科幻（权重 0.82）、dystopia（权重 0.41）的兴趣。"  # a tag that is a category is said in Chinese
    assert avoid == "排名稍微靠后，因为它带有 gore，而你通常会避开这些。"
    assert "“mind-bending action”" in intent and "0.55" in intent
    assert "0.71" in long_ and "1,234" in pop and "0.50" in short
    for s in zh:
        assert CJK.search(s) and not re.search(r"\b(You|Like|because|similarity|weight|Popular|Held)\b", s), s


def test_render_why_zh_variants():
    entry = why_entry()
    entry["evidence"]["seed"]["co_occurrence"] = 0  # no co-occurrence with the seed: only the content similarity
    entry["evidence"]["co_occurrence"] = [{"item_id": "1200", "title": "Aliens (1986)", "type": "rating", "value": 4.5},
                                          {"item_id": "2571", "title": "The Matrix (1999)", "type": "rating", "value": 5.0}]
    zh = render_why_zh(entry)
    assert zh[0] == "与你问到的《Matrix, The (1999)》相似：内容相似度 0.83。"
    assert zh[1] == "你评过《Aliens (1986)》（4.5/5）和《The Matrix (1999)》（5/5）；喜欢这些作品的人也喜欢这部。"
    entry["parts"]["seed"] = 0.01  # the seed leads even when its part is small, in both languages
    assert render_why(entry)[0].startswith("Like ") and render_why_zh(entry)[0].startswith("与你问到的")
    assert render_why_zh({"parts": {"popularity": 0.0}, "evidence": {}}) == ["它只凭热度得分（还没有你的个人信号）。"]
    assert render_why({"parts": {"popularity": 0.0}, "evidence": {}}) == ["It scored on popularity alone (no personal signal yet)."]


# ---------------------------------------------------------------- fixed replies

def test_help_text_english_is_the_routers_and_chinese_is_chinese():
    for role in ("user", "support", "operator"):  # the golden is router.help_text as it was before the move
        for short in (False, True):
            assert help_text(role, short=short) == help_text(role, "en", short) == GOLDEN[f"help:{role}{':short' if short else ''}"]
            zh = help_text(role, "zh", short)
            assert CJK.search(zh) and "/help" in zh
    assert "/status" in help_text("operator", "zh") and "/status" not in help_text("support", "zh")


def test_say_has_every_key_in_both_languages_and_chinese_examples_route():
    from tastebud.agent.parsing_zh import intent

    en = {"didnt_catch": "Sorry, I didn't catch that. Try *recommend me something funny*, *why the first one?* or /help.",
          "own_data": "Sorry, I can only show you your own data.",
          "which_item": "Which item? Ask for recommendations first, then *why the first one?* (or /why 1).",
          "which_title": "Which title do you mean? Name it, or say e.g. *I didn't like the second one*.",
          "which_user": "Which user? /user 42", "search_what": "Search for what? /search space opera",
          "cancelled": "(cancelled)", "no_answer": "Sorry, I have no answer from the data for that."}
    for key, text in en.items():
        assert say(key) == say(key, "en") == text
        assert CJK.search(say(key, "zh")) and say(key, "zh") != text
    assert say("now_looking_at", user="7") == "Now looking at user 7." and say("now_looking_at", "zh", user="7") == "现在查看的是用户 7。"
    for role in ("user", "support", "operator"):
        assert "movie recommendations" in say("out_of_scope", role=role) and "电影推荐" in say("out_of_scope", "zh", role=role)
        for example in re.findall(r"\*([^*]+)\*", say("out_of_scope", "zh", role=role) + help_text(role, "zh")):
            assert intent(example) not in (None, "out_of_scope", "help"), example
    assert "/status" not in say("out_of_scope", role="support") and "系统状态" in say("out_of_scope", "zh", role="operator")
    with pytest.raises(KeyError):
        say("no_such_key")


# ---------------------------------------------------------------- the tools fill why_zh / sentences_zh

def test_tools_give_chinese_reasons_next_to_the_english(app):
    from tastebud.agent.session import Session
    from tastebud.agent.tools import Toolbox

    tb = Toolbox(app, Principal(Role.USER, "1"), Session.new("user", "1"))
    rec = tb.run("recommend", {"k": 3})
    assert rec.ok
    for it in rec.result["items"]:
        assert len(it["why_zh"]) == len(it["why"]) and all(CJK.search(s) for s in it["why_zh"])
    exp = tb.run("explain", {"item_id": rec.result["items"][0]["item_id"]})
    assert exp.ok and len(exp.result["sentences_zh"]) == len(exp.result["sentences"])
    zh = render_calls([rec, exp], "zh")
    assert CJK.search(zh) and all(f"**{_md(it['title'])}**" in zh for it in rec.result["items"])
    assert render_call(tb.run("explain", {"item_id": "No Such Film At All (1901)"}), "zh").startswith("抱歉，我找不到名为")
    assert render_call(tb.run("get_profile", {"user_id": "7"}), "zh") == OWN_DATA
