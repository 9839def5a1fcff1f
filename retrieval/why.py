"""Why an item was recommended, as short sentences in English or Chinese.

`reasons(entry)` picks, once, which logged parts explain the score and with
what evidence (biggest part first); `render_why` and `render_why_zh` only
phrase them, so the two languages cannot drift apart in what they claim.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

# Chinese names of the catalog's categories (MovieLens genres; a tag equal to one is said the same way)
CATEGORY_ZH = {
    "Action": "动作", "Adventure": "冒险", "Animation": "动画", "Children": "儿童", "Children's": "儿童",
    "Comedy": "喜剧", "Crime": "犯罪", "Documentary": "纪录片", "Drama": "剧情", "Fantasy": "奇幻",
    "Film-Noir": "黑色电影", "Horror": "恐怖", "IMAX": "IMAX", "Musical": "歌舞", "Mystery": "悬疑",
    "Romance": "爱情", "Sci-Fi": "科幻", "Thriller": "惊悚", "War": "战争", "Western": "西部",
    "(no genres listed)": "未列出类型",
}
_CATEGORY_ZH_BY_LOWER = {k.lower(): v for k, v in CATEGORY_ZH.items()}
EVENT_TYPE_ZH = {"view": "浏览", "click": "点击", "add_to_cart": "加入购物车", "purchase": "购买", "rating": "评分",
                 "review": "评论", "like": "喜欢", "dislike": "不喜欢", "skip": "跳过", "search": "搜索", "tag": "打标签"}


def tag_zh(tag: Any) -> str:
    """A tag that is a category name ("Comedy", "sci-fi") in Chinese; any other tag as stored."""
    return _CATEGORY_ZH_BY_LOWER.get(str(tag).strip().lower(), str(tag))


def reasons(entry: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(kind, facts) for every part that explains the logged score, biggest part
    first; penalties last. Kinds: seed, co_occurrence, tag_match, semantic
    (horizon long/short), intent, same_start, popularity, avoided_tags, resembles_disliked, opted_out,
    new_item (a place kept for never-interacted items); from the
    learned ranker also co_occurrence_recent, ease, popularity_recent, activity, rating_scale,
    item_age, popularity_share_year."""
    parts, evidence = entry["parts"], entry["evidence"]
    found: list[tuple[float, str, dict[str, Any]]] = []
    if evidence.get("opted_out"):  # said first: why nothing personal shaped the list
        found.append((100.0, "opted_out", {}))
    if evidence.get("new_item"):  # said first: why an item nobody has rated is in the list at all
        found.append((50.0, "new_item", {"places": int(evidence["new_item"].get("places", 1))}))
    seed = evidence.get("seed")
    if parts.get("seed", 0) > 0 and seed and seed.get("titles"):  # the user's own request leads
        found.append((parts["seed"] + 10.0, "seed", {"titles": list(seed["titles"]), "cosine": seed["cosine"],
                                                      "co_occurrence": seed.get("co_occurrence", 0) > 0}))
    co = evidence.get("co_occurrence") or []
    if parts.get("co_occurrence", 0) > 0 and co:
        found.append((parts["co_occurrence"], "co_occurrence", {"items": co}))
    tags = [t for t in evidence.get("tag_match") or [] if t["weight"] > 0]
    if parts.get("tag_match", 0) > 0 and tags:
        found.append((parts["tag_match"], "tag_match", {"tags": tags[:3]}))
    for horizon in ("long", "short"):
        key = f"semantic_{horizon}"
        if parts.get(key, 0) > 0 and key in evidence:
            found.append((parts[key], "semantic", {"horizon": horizon, "cosine": evidence[key]["cosine"]}))
    if parts.get("intent", 0) > 0 and "intent" in evidence:
        found.append((parts["intent"], "intent", dict(evidence["intent"])))
    started = (evidence.get("same_start") or {}).get("items") or []
    if parts.get("same_start", 0) > 0 and started:
        found.append((parts["same_start"], "same_start", {"items": started[:2],
                                                          "first": evidence["same_start"].get("first_items", 10)}))
    if parts.get("popularity", 0) > 0:
        found.append((parts["popularity"], "popularity",
                      {"n": (evidence.get("popularity") or {}).get("positive_interactions", 0)}))
    found += _ranker_reasons(parts, evidence)
    disliked = [t for t in evidence.get("tag_match") or [] if t["weight"] < 0]
    if disliked:
        found.append((-1.0, "avoided_tags", {"tags": [t["tag"] for t in disliked[:2]]}))
    if parts.get("dislike_similarity", 0) < 0:
        found.append((-1.0, "resembles_disliked", {}))
    found.sort(key=lambda r: -r[0])
    return [(kind, facts) for _, kind, facts in found]


# an age clipped to 0 (first seen after the user's time) or no interactions in the year: nothing to say
_SAID_ONLY_ABOVE_0 = frozenset({"item_age_days", "popularity_share_year"})


def _ranker_reasons(parts: Mapping[str, Any], evidence: Mapping[str, Any]) -> list[tuple[float, str, dict[str, Any]]]:
    """The learned ranker's own features (retrieval/ranker.py), each said only when its
    logged contribution raised the score; the facts are the logged feature values."""
    feats = (evidence.get("ranker") or {}).get("features") or {}
    out: list[tuple[float, str, dict[str, Any]]] = []
    recent = evidence.get("co_occurrence_short") or []
    if parts.get("co_occurrence_short", 0) > 0 and recent:
        out.append((parts["co_occurrence_short"], "co_occurrence_recent", {"items": recent}))
    for part, kind in (("ease", "ease"), ("popularity_recent", "popularity_recent"), ("user_events", "activity"),
                       ("user_mean_rating", "rating_scale"), ("item_age_days", "item_age"),
                       ("popularity_share_year", "popularity_share_year")):
        value = feats.get(part)
        if parts.get(part, 0) > 0 and value is not None and (value > 0 or part not in _SAID_ONLY_ABOVE_0):
            out.append((parts[part], kind, {"value": feats[part], **(evidence.get("ranker_user") or {})}))
    return out


def _no_reason(entry: Mapping[str, Any], zh: bool) -> list[str]:
    bias = entry["parts"].get("ranker_bias")
    if bias is None:
        return ["它只凭热度得分（还没有你的个人信号）。"] if zh else ["It scored on popularity alone (no personal signal yet)."]
    return [f"没有哪一项信号把它抬到模型基线（{bias:.2f}）之上。"] if zh else \
        [f"No single signal raised it above the model's baseline ({bias:.2f})."]


# ------------------------------------------------------------------ English

def _share(value: Any) -> str:
    """A share as a percentage with two significant digits (0.0012 -> 0.12%)."""
    return f"{float(value) * 100:.2g}%"


def _stars(value: Any) -> str:
    v = float(value)
    return f"{int(v) if v.is_integer() else v}/5"


def _and(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1] if words else ""


def _en_co(f: dict[str, Any]) -> str:
    co = f["items"]
    liked = [f"{e['title']} {_stars(e['value'])}" if e.get("type") == "rating" and e.get("value") is not None
             else f"{e['title']} ({e['type']})" for e in co]
    verb = "rated" if all(e.get("type") == "rating" for e in co) else "liked"
    return f"You {verb} {_and(liked)}; people who liked those also liked this."


SAME_START_LEAD = "People who started where you did"  # the chat's claim checker knows the sentence by it


def _en_same_start(f: dict[str, Any]) -> str:
    counted = [e for e in f["items"] if "went_on" in e]
    if counted:
        said = _and([f"{e['went_on']:,} of the {e['started']:,} whose first {f['first']} items included {e['title']}"
                     for e in counted])
    else:  # too few people behind the share to cite their counts
        said = f"some of those whose first {f['first']} items included " + _and([e["title"] for e in f["items"]])
    return f"{SAME_START_LEAD} went on to interact with it positively: {said}."


def _en_seed(f: dict[str, Any]) -> str:
    how = (["people who liked it also liked this"] if f["co_occurrence"] else []) + [f"content similarity {f['cosine']:.2f}"]
    return f"Like {_and(f['titles'])}, which you asked about: " + " and ".join(how) + "."


def _en_new(places: int) -> str:
    held = "the place" if places == 1 else f"one of the {places} places"
    return f"New: nobody has interacted with it yet, so it holds {held} kept for new items, chosen by closeness to your taste profile."


_EN: dict[str, Callable[[dict[str, Any]], str]] = {
    "seed": _en_seed,
    "co_occurrence": _en_co,
    "tag_match": lambda f: "Matches your interest in " + _and([f"{t['tag']} (weight {t['weight']:.2f})" for t in f["tags"]]) + ".",
    "semantic": lambda f: (f"Close to your {'long-term' if f['horizon'] == 'long' else 'recent'} taste profile "
                           f"(similarity {f['cosine']:.2f})."),
    "intent": lambda f: f"Fits your request \"{f['text']}\" (similarity {f['cosine']:.2f}).",
    "same_start": _en_same_start,
    "popularity": lambda f: f"Popular: {f['n']:,} people interacted with it positively.",
    "co_occurrence_recent": lambda f: "Recently you liked " + _and([e["title"] for e in f["items"]])
                                       + "; people who liked those also liked this.",
    "ease": lambda f: f"People with a history like yours rated it highly (history score {f['value']:.2f}).",
    "popularity_recent": lambda f: f"Popular lately (recent-popularity score {f['value']:.2f}).",
    "activity": lambda f: f"Ranked with your activity in mind ({f.get('events', 0):,} events).",
    "rating_scale": lambda f: f"Ranked with how you rate in mind (your mean rating {f['value']:.2f}).",
    "item_age": lambda f: (f"Ranked with its age in mind: people first interacted with it {round(f['value']):,} days "
                           "before your latest activity."),
    "popularity_share_year": lambda f: (f"Popular around your time: {_share(f['value'])} of all interactions in the year "
                                  "before your latest activity were with it."),
    "opted_out": lambda f: "You opted out of profiling, so this list is by popularity only (minus what you have seen).",
    "new_item": lambda f: _en_new(f["places"]),
    "avoided_tags": lambda f: "Held back a little because it has " + _and(f["tags"]) + ", which you tend to avoid.",
    "resembles_disliked": lambda f: "Held back a little because it resembles something you disliked.",
}


def render_why(entry: Mapping[str, Any]) -> list[str]:
    """Short deterministic sentences from the logged parts and evidence, biggest part first."""
    return [_EN[kind](facts) for kind, facts in reasons(entry)] or _no_reason(entry, False)


# ------------------------------------------------------------------ Chinese

def _and_zh(words: Sequence[str]) -> str:
    words = list(words)
    return "" if not words else words[0] if len(words) == 1 else "、".join(words[:-1]) + "和" + words[-1]


def _gap(word: str) -> str:
    """A space between Chinese text and a following Latin word, none before Chinese."""
    return " " if word[:1].isascii() else ""


def _zh_co(f: dict[str, Any]) -> str:
    co = f["items"]
    rated = all(e.get("type") == "rating" for e in co)
    liked = [f"《{e['title']}》（{'' if rated else '评分 '}{_stars(e['value'])}）"
             if e.get("type") == "rating" and e.get("value") is not None
             else f"《{e['title']}》（{EVENT_TYPE_ZH.get(e['type'], e['type'])}）" for e in co]
    return f"你{'评过' if rated else '喜欢过'}{_and_zh(liked)}；喜欢这些作品的人也喜欢这部。"


def _zh_same_start(f: dict[str, Any]) -> str:
    counted = [e for e in f["items"] if "went_on" in e]
    if counted:
        said = "；".join(f"最初 {f['first']} 部作品里有《{e['title']}》的 {e['started']:,} 人中，有 {e['went_on']:,} 人"
                        for e in counted)
    else:
        said = f"其中有些人最初 {f['first']} 部作品里有" + _and_zh([f"《{e['title']}》" for e in f["items"]])
    return f"和你起点相同的人后来对它有正面互动：{said}。"


def _zh_seed(f: dict[str, Any]) -> str:
    how = (["喜欢它的人也喜欢这部"] if f["co_occurrence"] else []) + [f"内容相似度 {f['cosine']:.2f}"]
    return f"与你问到的{_and_zh([f'《{t}》' for t in f['titles']])}相似：" + "，".join(how) + "。"


def _zh_tags(f: dict[str, Any]) -> str:
    said = "、".join(f"{tag_zh(t['tag'])}（权重 {t['weight']:.2f}）" for t in f["tags"])
    return f"符合你对{_gap(said)}{said}的兴趣。"


def _zh_avoided(f: dict[str, Any]) -> str:
    said = "、".join(tag_zh(t) for t in f["tags"])
    return f"排名稍微靠后，因为它带有{_gap(said)}{said}，而你通常会避开这些。"


def _zh_new(places: int) -> str:
    held = "位置" if places == 1 else f" {places} 个位置之一"
    return f"新作品：还没有人与它互动过，所以它占了为新作品保留的{held}，按与你口味画像的接近程度选出。"


_ZH: dict[str, Callable[[dict[str, Any]], str]] = {
    "seed": _zh_seed,
    "co_occurrence": _zh_co,
    "tag_match": _zh_tags,
    "semantic": lambda f: f"与你的{'长期' if f['horizon'] == 'long' else '近期'}口味画像接近（相似度 {f['cosine']:.2f}）。",
    "intent": lambda f: f"符合你的要求“{f['text']}”（相似度 {f['cosine']:.2f}）。",
    "same_start": _zh_same_start,
    "popularity": lambda f: f"很受欢迎：有 {f['n']:,} 人对它有正面互动。",
    "co_occurrence_recent": lambda f: "你最近喜欢过" + _and_zh(["《" + e["title"] + "》" for e in f["items"]])
                                       + "；喜欢这些作品的人也喜欢这部。",
    "ease": lambda f: f"和你口味历史相似的人给它打了高分（历史相似度得分 {f['value']:.2f}）。",
    "popularity_recent": lambda f: f"最近很受欢迎（近期热度得分 {f['value']:.2f}）。",
    "activity": lambda f: f"排序考虑了你的活跃程度（{f.get('events', 0):,} 个事件）。",
    "rating_scale": lambda f: f"排序考虑了你的评分习惯（你的平均评分 {f['value']:.2f}）。",
    "item_age": lambda f: f"排序考虑了作品的新旧：在你最近一次活动的 {round(f['value']):,} 天前已有人首次与它互动。",
    "popularity_share_year": lambda f: f"在你活跃的时期很受欢迎：你最近一次活动前的一年里，所有互动中有 {_share(f['value'])} 与它有关。",
    "opted_out": lambda f: "你已选择不做画像分析，所以这份列表只按热度排序（已去掉你看过的）。",
    "new_item": lambda f: _zh_new(f["places"]),
    "avoided_tags": _zh_avoided,
    "resembles_disliked": lambda f: "排名稍微靠后，因为它与你不喜欢的作品相似。",
}


def render_why_zh(entry: Mapping[str, Any]) -> list[str]:
    """render_why in Chinese: the same reasons in the same order (titles and tags as stored, numbers identical)."""
    return [_ZH[kind](facts) for kind, facts in reasons(entry)] or _no_reason(entry, True)
