"""The deterministic renderings of tastebud.agent.render, in simplified Chinese:
the same facts from the same result dict (titles, tags and ids as stored,
numbers formatted identically), for answers to a question asked in Chinese.

Failed calls: refusals get a Chinese reason per tool; the tools' common
English error texts are mapped by pattern, anything else is shown as
"抱歉，没能完成：<the English text>"."""

from __future__ import annotations

import re
from typing import Any, Callable

from tastebud.agent.tools import ToolCall

__all__ = ["RENDERERS_ZH", "error_zh", "md", "render_call_zh"]


def md(text: Any) -> str:
    """Untrusted text shown as text: no Markdown links, emphasis or headings.
    Shared by both renderings (tastebud.agent.render imports it as `_md`)."""
    s = " ".join(str(text).split())
    for ch in "\\`*_[]<>#|":
        s = s.replace(ch, "\\" + ch)
    return s


_md = md
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

ROLE_ZH = {"user": "普通用户", "support": "客服", "operator": "运维"}
TOOL_ZH = {
    "recommend": "推荐", "explain": "解释推荐", "get_profile": "查看画像", "get_history": "查看历史",
    "search_items": "搜索目录", "record_feedback": "记录反馈", "recommendation_log": "查看推荐记录",
    "refresh_profiles": "刷新画像", "status": "查看系统状态", "opt_out": "停止画像分析",
}
SOURCE_ZH = {"agent": "聊天助手", "cli": "命令行", "api": "API", "bench": "基准测试"}
PART_ZH = {
    "seed": "与所问作品相似", "co_occurrence": "共同喜好", "tag_match": "标签匹配", "semantic_long": "长期口味",
    "semantic_short": "近期口味", "intent": "符合请求", "same_start": "起点相同的人后来喜欢", "popularity": "热度", "dislike_similarity": "与不喜欢的作品相似",
    # the learned ranker's parts (retrieval/ranker.py)
    "co_occurrence_short": "近期共同喜好", "popularity_recent": "近期热度", "ease": "相似历史用户的评分",
    "user_events": "你的活跃程度", "user_mean_rating": "你的评分习惯", "ranker_bias": "模型基线",
    "item_age_days": "作品新旧", "popularity_share_year": "你活跃时期的热度",
}


# The Chinese names of categories and event types live next to render_why_zh in
# tastebud.retrieval.service; imported on first use, so that importing the agent
# does not load the recommender (numpy, scipy) before a Chinese answer needs it.
def _cat(name: Any) -> str:
    from tastebud.retrieval.why import CATEGORY_ZH

    return CATEGORY_ZH.get(str(name), _md(name))


def _tag(tag: Any) -> str:
    from tastebud.retrieval.why import tag_zh

    return _md(tag_zh(tag))


def _event(kind: Any) -> str:
    from tastebud.retrieval.why import EVENT_TYPE_ZH

    return EVENT_TYPE_ZH.get(str(kind), _md(kind))


def _cats(cats: list[str] | None) -> str:
    return f"（{'、'.join(_cat(c) for c in cats[:3])}）" if cats else ""


def _is_zh(text: Any) -> bool:
    return bool(text) and len(_CJK.findall(str(text))) >= 2


def _items(items: list[dict[str, Any]], reasons: bool = True) -> list[str]:
    lines = []
    for it in items:
        line = f"{it.get('rank', len(lines) + 1)}. **{_md(it['title'])}**" + _cats(it.get("categories"))
        if reasons and it.get("why_zh"):
            line += ("" if line.endswith("）") else " ") + f"— {_md(it['why_zh'][0])}"
        lines.append(line)
    return lines


def recommend(r: dict[str, Any]) -> str:
    if not r["items"]:
        return "按这些条件，已经没有可以推荐的了。"
    scope = []
    if r["params"].get("intent"):
        scope.append(f"针对\u201c{_md(r['params']['intent'][:80])}\u201d")
    if r["params"].get("category"):
        scope.append(f"在{_cat(r['params']['category'])}类别中")
    head = "以下是我" + "、".join(scope) + "的推荐"
    if r.get("seed_item"):
        head = "以下是" + "、".join(scope + [f"与《{_md(r['seed_item']['title'])}》相似"]) + "的推荐"
    return head + "：\n\n" + "\n".join(_items(r["items"])) + "\n\n想看完整的理由，可以问 *为什么推荐第一部？*"


def _explain_fallback(r: dict[str, Any]) -> list[str]:
    """A result without sentences_zh (an older one): its parts and evidence, plainly."""
    lines = []
    liked = (r.get("evidence") or {}).get("because_you_liked") or []
    if liked:
        lines.append("喜欢过" + "、".join(f"《{e['title']}》" for e in liked) + "的人也喜欢这部。")
    parts = [(k, v) for k, v in (r.get("parts") or {}).items() if not k.startswith("_")]
    if parts:
        lines.append("得分构成：" + "、".join(f"{PART_ZH.get(k, k)} {v:g}" for k, v in parts) + "。")
    return lines or ["没有记录到可用的理由。"]


def explain(r: dict[str, Any]) -> str:
    when = f"在 {r['recommended_at']} " if r.get("recommended_at") else "在未知时间"
    lines = [f"**{_md(r['title'])}** {when}给用户 {r['user_id']} 的推荐列表中排第 {r['rank']} 位："]
    sentences = r.get("sentences_zh") if r.get("sentences_zh") is not None else _explain_fallback(r)
    lines += [f"- {_md(s)}" for s in sentences]
    return "\n".join(lines)


def get_profile(r: dict[str, Any]) -> str:
    lines = [f"**用户 {r['user_id']} 的画像**（v{r['version']}）"]
    # Narratives are prose in the language they were written in (usually English):
    # shown when Chinese; otherwise the tags and titles below carry their facts.
    if _is_zh(r.get("narrative_long_term")):
        lines.append(_md(r["narrative_long_term"]))
    if _is_zh(r.get("narrative_recent")):
        lines.append(f"最近：{_md(r['narrative_recent'])}")
    elif r.get("narrative_recent") and r.get("recent_tags"):
        lines.append("最近关注：" + "、".join(_tag(t["tag"]) for t in r["recent_tags"]))
    if r["long_term_tags"]:
        lines.append("主要兴趣：" + "、".join(f"{_tag(t['tag'])}（{t['weight']:.2f}）" for t in r["long_term_tags"][:6]))
    if r["disliked_tags"]:
        lines.append("通常避开：" + "、".join(_tag(t["tag"]) for t in r["disliked_tags"]))
    if r["liked_items"]:
        lines.append("最喜欢：" + "；".join(f"**{_md(i['title'])}**" for i in r["liked_items"][:4]))
    if r["emerging"] or r["fading"]:
        lines.append(f"正在兴起：{'、'.join(map(_tag, r['emerging'])) or '无'} · 逐渐减弱：{'、'.join(map(_tag, r['fading'])) or '无'}")
    return "\n\n".join(lines)


def get_history(r: dict[str, Any]) -> str:
    if not r["events"]:
        return f"用户 {r['user_id']} 没有符合条件的事件。"
    lines = [f"用户 {r['user_id']} 的最近事件（共 {r['total_events']} 条）：", ""]
    for e in r["events"]:
        what = _event(e["type"]) + (f" {e['value']:g}" if e.get("value") is not None else "")
        line = f"- {e.get('when') or '时间未知'} · {what} · **{_md(e['title'])}**"
        if e.get("text"):
            line += f" · \u201c{_md(e['text'])}\u201d"
        lines.append(line)
    return "\n".join(lines)


def search_items(r: dict[str, Any]) -> str:
    if not r["items"]:
        return f"目录里没有与\u201c{_md(r['query'])}\u201d匹配的作品。"
    lines = [f"与\u201c{_md(r['query'])}\u201d最接近的结果：", ""]
    lines += [f"{n}. **{_md(it['title'])}**{_cats(it.get('categories')) or ' '}· 相似度 {it['similarity']:.2f}"
              for n, it in enumerate(r["items"], 1)]
    return "\n".join(lines)


def record_feedback(r: dict[str, Any]) -> str:
    version = r.get("profile_version")
    updated = f"你的画像已更新（v{version}）。" if version is not None else "你的画像已更新。"
    if r.get("category"):
        cat = _cat(r["category"])
        if r["kind"] == "dislike":
            return f"好的，以后不再推荐{cat}类作品。从现在起我会把它们排除在你的推荐之外，直到你告诉我你又喜欢它们了。{updated}"
        return f"好的，你喜欢{cat}类作品。我会多往这个方向推荐，你之前对它们的排斥也已取消。{updated}"
    if r["kind"] == "dislike":
        return f"好的，你不喜欢 **{_md(r['title'])}**。以后不会再向你推荐它，也不会推荐和它几乎一样的作品。{updated}"
    return f"好的，你喜欢 **{_md(r['title'])}**。我会为你找更多类似的作品。{updated}"


def opt_out(r: dict[str, Any]) -> str:
    if not r["opted_out"]:
        if not r.get("was_opted_out"):
            return "你并没有退出画像分析：你的画像照常使用。"
        return "好的，已恢复画像分析。下次刷新时会根据你的历史记录重建画像，个性化推荐也会随之恢复。"
    if r.get("already"):
        return "你之前已经退出了画像分析，所以不会保留你的画像。你的推荐只按热度排序。想恢复个性化推荐时，说 *恢复画像分析* 即可。"
    return (f"好的，已停止对你做画像分析。你的画像、画像描述和兴趣标签已删除（{r['profile_versions_removed']} 个画像版本、"
            f"{r['profile_vectors_removed']} 个画像向量）；你的历史记录和账号保留。从现在起，你的推荐只按热度排序，"
            "并去掉你已经看过的作品。想恢复个性化推荐时，说 *恢复画像分析* 即可。")


def recommendation_log(r: dict[str, Any]) -> str:
    source = SOURCE_ZH.get(r["source"], _md(r["source"]))
    when = f"于 {r['created_at']} " if r.get("created_at") else "于未知日期"
    head = (f"用户 {r['user_id']} {when}记录的推荐"
            f"（请求 {r['request_id']}，来源：{source}）：")
    return head + "\n\n" + "\n".join(_items(r["items"], reasons=False))


def refresh_profiles(r: dict[str, Any]) -> str:
    if not r.get("users"):
        return "所有画像都已是最新的。"
    return (f"已刷新 {r['users']} 个画像：{r['new_versions']} 个生成了新版本，{r['unchanged']} 个没有变化，"
            f"用时 {r['seconds']:.1f} 秒。")


def status(r: dict[str, Any]) -> str:
    lines = [f"- 用户：{r['users']:,}", f"- 物品：{r['items']:,}", f"- 事件：{r['events']:,}",
             f"- 画像：{r['profiles']:,}（其中 {r['profiles_stale']:,} 个落后于其事件）",
             f"- 隔离的数据行：{r['quarantined']:,}"]
    if isinstance(r.get("vectors"), dict) and "items" in r["vectors"]:
        lines.append(f"- 向量：{r['vectors']['items']:,} 个物品，{r['vectors']['profiles']:,} 个画像")
    if r.get("llm"):
        lines.append(f"- LLM：{r['llm'].get('backend')} {r['llm'].get('model') or ''}".rstrip())
    return "系统状态：\n\n" + "\n".join(lines)


RENDERERS_ZH: dict[str, Callable[[dict[str, Any]], str]] = {
    "recommend": recommend, "explain": explain, "get_profile": get_profile, "get_history": get_history,
    "search_items": search_items, "record_feedback": record_feedback, "recommendation_log": recommendation_log,
    "refresh_profiles": refresh_profiles, "status": status, "opt_out": opt_out,
}


# ---------------------------------------------------------------- failed calls

OWN_DATA = "抱歉，我只能显示你自己的数据。"

# why a role may not use a tool (agent/roles.py _WHY_NOT, in Chinese)
WHY_NOT_ZH = {
    "recommend": "工作人员会话不提供推荐（新的列表会被记录为已推荐给该用户）；推荐记录里可以看到用户看到过什么",
    "record_feedback": "只有用户本人才能记录自己的反馈",
    "opt_out": "只有用户本人才能退出画像分析（运维人员请用命令行操作）",
    "refresh_profiles": "刷新画像需要运维角色",
    "status": "查看系统状态需要运维角色",
}


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return _md(text)


def _q(text: str) -> str:
    return f"\u201c{_unquote(text)}\u201d"


def _refused(call: ToolCall) -> str:
    text = call.error or ""
    if "your own data" in text:
        return OWN_DATA
    m = re.search(r"the (\w+) role cannot use (\w+)", text)
    if m:
        role, tool = m.group(1), m.group(2)
        return f"抱歉，这里不能这样做：{ROLE_ZH.get(role, role)}角色不能使用“{TOOL_ZH.get(tool, tool)}”。"
    if call.name in WHY_NOT_ZH:
        return f"抱歉，这里不能这样做：{WHY_NOT_ZH[call.name]}。"
    return f"抱歉，这里不能这样做：{_md(text)}" if text else "抱歉，这里不能这样做。"


# (pattern over the English text without its "Sorry, " and final full stop) -> Chinese
_ERRORS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [(re.compile(p, re.I | re.S), f) for p, f in [
    (r"I can only show you your own data", lambda m: OWN_DATA),
    (r"I couldn't find an item called (.+)", lambda m: f"抱歉，我找不到名为{_q(m[1])}的作品。"),
    (r"I don't know user (.+)", lambda m: f"抱歉，找不到用户 {_unquote(m[1])}。"),
    (r"nothing has been recommended to user (.+) yet", lambda m: f"还没有给用户 {_unquote(m[1])} 推荐过任何内容。"),
    (r"there is no category (.+)", lambda m: f"抱歉，没有{_q(m[1])}这个类别。"),
    (r"there is no tool called (.+)", lambda m: f"抱歉，没有叫{_q(m[1])}的工具。"),
    (r"I couldn't use those arguments for (\w+) \((.*)\)", lambda m: f"抱歉，调用{TOOL_ZH.get(m[1], m[1])}的参数无法使用（{_md(m[2])}）。"),
    (r"(\w+) failed unexpectedly \((\w+)\)", lambda m: f"抱歉，{TOOL_ZH.get(m[1], m[1])}意外失败（{m[2]}）。"),
    (r"no recommendation request (\S+) for user (\S+)", lambda m: f"抱歉，用户 {_unquote(m[2])} 没有请求 {_unquote(m[1])} 的推荐记录。"),
    (r"no recommendation request (\S+)", lambda m: f"抱歉，没有请求 {_unquote(m[1])} 的推荐记录。"),
    (r"item (\S+) was never recommended to user (\S+?)(?: in request (\S+))?",
     lambda m: f"抱歉，物品 {_unquote(m[1])} 从未推荐给用户 {_unquote(m[2])}" + (f"（请求 {m[3]}）" if m[3] else "") + "。"),
    (r"user (\S+) has no profile yet(?: \(run: (.+)\))?",
     lambda m: f"抱歉，用户 {_unquote(m[1])} 还没有画像" + (f"（请运行：{m[2]}）" if m[2] else "") + "。"),
    (r"user (\S+) has no profile version (\d+)", lambda m: f"抱歉，用户 {_unquote(m[1])} 没有第 {m[2]} 版画像。"),
    (r"no user (\S+)", lambda m: f"抱歉，没有用户 {_unquote(m[1])}。"),
    (r"no item (\S+) in the catalog", lambda m: f"抱歉，目录里没有物品 {_unquote(m[1])}。"),
    (r"no events for user\(s\) (.+)", lambda m: f"抱歉，这些用户没有事件：{_md(m[1])}。"),
    (r"Which user\?.*", lambda m: "哪个用户？请说出一个（例如“用户 42”），或者用 /user 42 选定。"),
    (r"Which item \(or category\) is the feedback about\?", lambda m: "这条反馈是关于哪部作品（或哪个类别）的？"),
    (r"k must be between 1 and 100", lambda m: "抱歉，数量必须在 1 到 100 之间。"),
]]


def error_zh(text: str | None) -> str:
    """A tool's English error text in Chinese: by pattern, else quoted after a Chinese lead."""
    if not text:
        return "抱歉，没能完成。"
    text = re.sub(r"^\s*sorry,\s*", "", text.strip(), flags=re.I)
    core = text.rstrip(".").strip()
    for pattern, make in _ERRORS:
        m = pattern.fullmatch(core)
        if m:
            return make(m)
    return f"抱歉，没能完成：{text}"


def render_call_zh(call: ToolCall) -> str:
    if call.refused:
        return _refused(call)
    if not call.ok:
        return error_zh(call.error)
    return RENDERERS_ZH[call.name](call.result)  # type: ignore[arg-type]
