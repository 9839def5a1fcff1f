"""Deterministic Markdown for every tool result: the answer when no model is
used, and the replacement when a model's answer is not grounded. Built only
from the result itself, so it is grounded by construction. English here; the
Chinese renderings (`lang="zh"`) are in tastebud.agent.render_zh."""

from __future__ import annotations

from typing import Any, Callable

from tastebud.agent.render_zh import md as _md  # one escape for both languages (render_zh cannot import this module)
from tastebud.agent.render_zh import render_call_zh
from tastebud.agent.tools import ToolCall


def _items(items: list[dict[str, Any]], reasons: bool = True) -> list[str]:
    lines = []
    for it in items:
        line = f"{it.get('rank', len(lines) + 1)}. **{_md(it['title'])}**"
        if it.get("categories"):
            line += f" ({', '.join(it['categories'][:3])})"
        if reasons and it.get("why"):
            line += f" — {_md(it['why'][0])}"
        lines.append(line)
    return lines


def recommend(r: dict[str, Any]) -> str:
    if not r["items"]:
        return "Nothing left to recommend with these filters."
    head = "Here is what I'd recommend"
    if r["params"].get("intent"):
        head += f" for \u201c{_md(r['params']['intent'][:80])}\u201d"
    if r["params"].get("category"):
        head += f" in {r['params']['category']}"
    if r.get("seed_item"):
        head += f" like **{_md(r['seed_item']['title'])}**"
    return head + ":\n\n" + "\n".join(_items(r["items"])) + "\n\nAsk *why the first one?* for the full reasons."


def explain(r: dict[str, Any]) -> str:
    lines = [f"**{_md(r['title'])}** was #{r['rank']} in the list for user {r['user_id']} on {r['recommended_at']}:"]
    lines += [f"- {_md(s)}" for s in r["sentences"]]
    return "\n".join(lines)


def get_profile(r: dict[str, Any]) -> str:
    lines = [f"**Profile of user {r['user_id']}** (v{r['version']})"]
    if r.get("narrative_long_term"):
        lines.append(_md(r["narrative_long_term"]))
    if r.get("narrative_recent"):
        lines.append(f"Lately: {_md(r['narrative_recent'])}")
    if r["long_term_tags"]:
        lines.append("Top interests: " + ", ".join(f"{t['tag']} ({t['weight']:.2f})" for t in r["long_term_tags"][:6]))
    if r["disliked_tags"]:
        lines.append("Avoids: " + ", ".join(t["tag"] for t in r["disliked_tags"]))
    if r["liked_items"]:
        lines.append("Liked most: " + "; ".join(f"**{_md(i['title'])}**" for i in r["liked_items"][:4]))
    if r["emerging"] or r["fading"]:
        lines.append(f"Emerging: {', '.join(r['emerging']) or 'none'} · fading: {', '.join(r['fading']) or 'none'}")
    return "\n\n".join(lines)


def get_history(r: dict[str, Any]) -> str:
    if not r["events"]:
        return f"No matching events for user {r['user_id']}."
    lines = [f"Latest events of user {r['user_id']} ({r['total_events']} in all):", ""]
    for e in r["events"]:
        what = f"{e['type']}" + (f" {e['value']:g}" if e.get("value") is not None else "")
        line = f"- {e.get('when') or 'unknown time'} · {what} · **{_md(e['title'])}**"  # None: unrenderable
        if e.get("text"):
            line += f" · \u201c{_md(e['text'])}\u201d"
        lines.append(line)
    return "\n".join(lines)


def search_items(r: dict[str, Any]) -> str:
    if not r["items"]:
        return f"Nothing in the catalog matches \u201c{_md(r['query'])}\u201d."
    lines = [f"Closest matches for \u201c{_md(r['query'])}\u201d:", ""]
    lines += [f"{n}. **{_md(it['title'])}** ({', '.join(it['categories'][:3])}) · similarity {it['similarity']:.2f}"
              for n, it in enumerate(r["items"], 1)]
    return "\n".join(lines)


def record_feedback(r: dict[str, Any]) -> str:
    if r.get("category"):
        if r["kind"] == "dislike":
            return (f"Noted: no more {r['category']}. I'll leave it out of your recommendations from now on, "
                    f"until you tell me you like it again. Your profile is updated (v{r.get('profile_version')}).")
        return (f"Noted: you like {r['category']}. I'll lean that way, and anything you'd said against it is lifted. "
                f"Your profile is updated (v{r.get('profile_version')}).")
    verb = "didn't like" if r["kind"] == "dislike" else "liked"
    tail = (" It won't be recommended to you again, nor will near-duplicates of it."
            if r["kind"] == "dislike" else " I'll look for more like it.")
    return f"Noted: you {verb} **{_md(r['title'])}**.{tail} Your profile is updated (v{r.get('profile_version')})."


def opt_out(r: dict[str, Any]) -> str:
    if not r["opted_out"]:
        if not r.get("was_opted_out"):
            return "You weren't opted out: your profile is in use as usual."
        return ("Done: you're opted back in. Your profile is rebuilt from your history on the next refresh, "
                "and personal recommendations come back with it.")
    if r.get("already"):
        return ("You had already opted out of profiling, so no profile of you is kept. Your recommendations are "
                "by popularity only. Say *opt me back in* whenever you want personal ones again.")
    return (f"Done: I've stopped profiling you. Your profile, its narrative and interest tags are deleted "
            f"({r['profile_versions_removed']} profile versions, {r['profile_vectors_removed']} profile vectors); "
            "your history and account stay. From now on your recommendations are by popularity only, leaving out "
            "what you've already seen. Say *opt me back in* whenever you want personal recommendations again.")


def recommendation_log(r: dict[str, Any]) -> str:
    head = f"Recommendations logged for user {r['user_id']} on {r.get('created_at') or 'an unknown date'} (request {r['request_id']}, {r['source']}):"
    return head + "\n\n" + "\n".join(_items(r["items"], reasons=False))


def refresh_profiles(r: dict[str, Any]) -> str:
    if not r.get("users"):
        return r.get("message", "All profiles are up to date.")
    return (f"Refreshed {r['users']} profile(s): {r['new_versions']} new version(s), {r['unchanged']} unchanged "
            f"in {r['seconds']:.1f} s.")


def status(r: dict[str, Any]) -> str:
    lines = [f"- users: {r['users']:,}", f"- items: {r['items']:,}", f"- events: {r['events']:,}",
             f"- profiles: {r['profiles']:,} ({r['profiles_stale']:,} lagging their events)",
             f"- quarantined rows: {r['quarantined']:,}"]
    if isinstance(r.get("vectors"), dict) and "items" in r["vectors"]:
        lines.append(f"- vectors: {r['vectors']['items']:,} items, {r['vectors']['profiles']:,} profiles")
    if r.get("llm"):
        lines.append(f"- LLM: {r['llm'].get('backend')} {r['llm'].get('model') or ''}".rstrip())
    return "System status:\n\n" + "\n".join(lines)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "recommend": recommend, "explain": explain, "get_profile": get_profile, "get_history": get_history,
    "search_items": search_items, "record_feedback": record_feedback, "recommendation_log": recommendation_log,
    "refresh_profiles": refresh_profiles, "status": status, "opt_out": opt_out,
}


def render_call(call: ToolCall, lang: str = "en") -> str:
    """`lang`: "en" or "zh" (simplified Chinese, tastebud.agent.render_zh); anything else is English."""
    if str(lang or "").lower().startswith("zh"):
        return render_call_zh(call)
    if not call.ok:
        return call.error or "Sorry, that didn't work."
    return RENDERERS[call.name](call.result)  # type: ignore[arg-type]


def render_calls(calls: list[ToolCall], lang: str = "en") -> str:
    return "\n\n".join(render_call(c, lang) for c in calls) if calls else ""
