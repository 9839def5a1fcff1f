"""The agent's fixed replies (the ones no tool result backs), in English and
simplified Chinese: `say(key, lang, **kw)` and `help_text(role, lang, short)`.

The Chinese example questions are ones the Chinese rules of
tastebud.agent.parsing_zh route to the same tool as their English twins."""

from __future__ import annotations

from typing import Any

LANGS = ("en", "zh")


def _lang(lang: str | None) -> str:
    return "zh" if str(lang or "").lower().startswith("zh") else "en"


def help_text(role: str, lang: str = "en", short: bool = False) -> str:
    if _lang(lang) == "zh":
        return _help_zh(role, short)
    if short:
        return "Try *recommend me something funny*, *why the first one?* or /help."
    common = ["/why N — why the N-th item shown", "/profile — the living profile", "/history [N] — recent events",
              "/help, /quit"]
    if role == "user":
        lines = ["Ask me things like *recommend something like Toy Story*, *why the second one?*, "
                 "*I didn't like the first one*, *what do you know about my tastes?*", "",
                 "- /recs [N] — recommendations", *[f"- {c}" for c in common], "- /like N, /dislike N — feedback"]
    else:
        lines = ["Ask me things like *why was item 318 recommended to user 7?*, *show user 7's profile*, "
                 "*what was recommended to user 7?*", "",
                 "- /user U — look at user U", "- /recs — the user's latest logged recommendations",
                 *[f"- {c}" for c in common], "- /log [REQUEST] — a logged list"]
        if role == "operator":
            lines += ["- /status — system status", "- /refresh [U ...|all] — recompute profiles"]
    return "\n".join(lines)


def _help_zh(role: str, short: bool = False) -> str:
    if short:
        return "试试 *给我推荐点搞笑的*、*为什么推荐第一部？* 或 /help。"
    common = ["/why N — 为什么推荐列表中的第 N 部", "/profile — 持续更新的口味画像", "/history [N] — 最近的事件",
              "/help, /quit"]
    if role == "user":
        lines = ["你可以这样问我：*推荐几部像《Toy Story》那样的电影*、*为什么推荐第二部？*、"
                 "*我不喜欢第一部*、*你对我的口味了解多少？*", "",
                 "- /recs [N] — 推荐", *[f"- {c}" for c in common], "- /like N, /dislike N — 反馈（喜欢、不喜欢）"]
    else:
        lines = ["你可以这样问我：*为什么给用户 7 推荐了物品 318？*、*看看用户 7 的画像*、"
                 "*给用户 7 推荐过什么？*", "",
                 "- /user U — 查看用户 U", "- /recs — 该用户最近一次记录的推荐",
                 *[f"- {c}" for c in common], "- /log [REQUEST] — 某次记录的推荐列表"]
        if role == "operator":
            lines += ["- /status — 系统状态", "- /refresh [U ...|all] — 重新计算画像"]
    return "\n".join(lines)


def _out_of_scope(role: str, lang: str) -> str:
    if lang == "zh":
        head = "这个我帮不上忙：我只负责电影推荐、推荐理由、口味画像和历史记录。"
        if role == "user":
            return head + "试试 *给我推荐几部喜剧* 或 *为什么推荐第一部？*"
        if role == "operator":
            return head + "试试 *看看用户 7 的画像*、*看看用户 7 的历史记录* 或 *看看系统状态*。"
        return head + "试试 *看看用户 7 的画像* 或 *看看用户 7 的历史记录*。"
    head = "I can't help with that: tastebud only does movie recommendations, explanations, profiles and history."
    if role == "user":
        return head + " Try *recommend me a comedy* or *why the first one?*"
    if role == "operator":
        return head + " Try *show user 7's profile*, *show user 7's history* or *system status*."
    return head + " Try *show user 7's profile* or *show user 7's history*."


_MESSAGES: dict[str, dict[str, str]] = {
    "own_data": {"en": "Sorry, I can only show you your own data.",
                 "zh": "抱歉，我只能显示你自己的数据。"},
    "which_item": {"en": "Which item? Ask for recommendations first, then *why the first one?* (or /why 1).",
                   "zh": "哪一部？先让我推荐几部，然后问 *为什么推荐第一部？*（或者 /why 1）。"},
    "which_title": {"en": "Which title do you mean? Name it, or say e.g. *I didn't like the second one*.",
                    "zh": "你指的是哪一部？说出片名，或者说比如 *我不喜欢第二部*。"},
    "which_one": {"en": "Which one? Try /{cmd} 1 for the first item shown.",
                  "zh": "哪一部？试试 /{cmd} 1，表示列表中的第一部。"},
    "which_user": {"en": "Which user? /user 42",
                   "zh": "哪个用户？/user 42"},
    "search_what": {"en": "Search for what? /search space opera",
                    "zh": "搜索什么？例如 /search space opera"},
    "now_looking_at": {"en": "Now looking at user {user}.",
                       "zh": "现在查看的是用户 {user}。"},
    "cancelled": {"en": "(cancelled)",
                  "zh": "（已取消）"},
    "no_answer": {"en": "Sorry, I have no answer from the data for that.",
                  "zh": "抱歉，数据里没有能回答这个问题的内容。"},
}


def say(key: str, lang: str = "en", **kw: Any) -> str:
    """A fixed reply in `lang` ("en" or "zh"). Keys: didnt_catch, out_of_scope (role=),
    own_data, which_item, which_title, which_one (cmd=), which_user, search_what,
    now_looking_at (user=), cancelled, no_answer. Raises KeyError for an unknown key."""
    lang = _lang(lang)
    role = str(getattr(kw.get("role"), "value", kw.get("role")) or "user")
    if key == "didnt_catch":
        lead = "抱歉，我没听明白。" if lang == "zh" else "Sorry, I didn't catch that. "
        return lead + help_text(role, lang, short=True)
    if key == "out_of_scope":
        return _out_of_scope(role, lang)
    return _MESSAGES[key][lang].format(**kw)
