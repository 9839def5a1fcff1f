"""The plan-first router for small models: code picks the tool, the LLM only
fills free text.

1. Unambiguous rules first: slash commands; "why" with an ordinal, an item id
   or a shown title; user/item/request ids in the text.
2. Otherwise nearest-neighbour intent matching with the sentence embedder over
   a handful of example utterances per intent (measured: 10/12 right, where
   the 0.5B model picking the tool through a JSON schema got 4/9).
3. Arguments: numbers, ids, ordinals, categories and "like <title>" are parsed
   by code (a search query is the message's content words); only the
   free-text intent of a recommendation is filled by one constrained LLM
   call, whose output is accepted only if every word comes from the user's
   own message (else the content words are used).

The intent examples, the matcher and the argument parsers are in
tastebud.agent.parsing; the rules, the slash commands and the plans are here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from tastebud.agent.grounding import display_title, norm, tokens
from tastebud.agent.parsing import (INTENTS, MIN_SIMILARITY, IntentMatcher, categories_in, count, ordinal, residual,
                                    user_mentions)

if TYPE_CHECKING:
    from tastebud.agent.session import Session
    from tastebud.agent.tools import Toolbox

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_ITEM = re.compile(r"\b(?:item|movie|film|title)\s*(?:id\s*)?#?\s*(\d[A-Za-z0-9_-]*)\b", re.I)
_LIKE = re.compile(r"\b(?:like|similar to|such as|in the vein of|resembling|along the lines of)\s+"
                   r"[\"“']?(.+?)[\"”']?\s*(?:[?!,;]|\.(?:\s|$)|$|\s+but\s|\s+and\s|\s+for\s|\s+please\b|\s+tonight\b)", re.I)
_WHY = re.compile(r"^\s*(?:and\s+|so\s+|ok\s+|okay\s+)?(?:why|how come|explain|what made)\b", re.I)
_THIS = re.compile(r"\b(it|this|that|this one|that one)\b", re.I)
_NEGATIVE = re.compile(r"\b(tired of|sick of|fed up with|not interested|no longer|not into|hate[ds]?|hated|"
                       r"dislike[ds]?|didn'?t like|did not like|do not like|don'?t like|don'?t show|stop (?:showing|recommending)|"
                       r"no more|boring|awful|terrible|thumbs down)\b", re.I)
_RECOMMEND_VERB = re.compile(r"\b(recommend|suggest|suggestions?|recommendations?|what should i watch|something to watch|pick me)\b", re.I)
_SEARCH_VERB = re.compile(r"^\s*(?:please\s+)?(?:search|find|look\s+up|look\s+for|lookup)\b", re.I)
_RECOMMEND_START = re.compile(r"^\s*(?:please\s+|can you\s+|could you\s+)?(?:recommend|suggest)\b", re.I)
# A negative said after the category: "horror is not my thing anymore".
_TRAILING_NEGATIVE = re.compile(r"\b(not (?:my thing|for me)|no longer|any ?more)\b", re.I)
_REF_WORDS = {"why", "was", "were", "recommended", "suggested", "picked", "chosen", "shown", "explain", "how", "come",
              "made", "didn't", "didnt", "did", "liked", "loved", "hated", "disliked", "enjoyed", "really", "not",
              "no", "don't", "dont", "again", "thumbs", "down", "one", "number", "item", "list", "reason", "reasons",
              "person", "customer", "user", "week", "yesterday", "last", "first", "second", "third"}
_ALL = re.compile(r"\b(all|every|everyone|everybody)\b", re.I)


@dataclass
class Plan:
    tool: str | None  # None: answer without a tool (help, a question back)
    args: dict[str, Any] = field(default_factory=dict)
    intent: str = ""
    how: str = ""  # "slash", "rule", "embedding"
    score: float = 1.0
    reply: str | None = None  # a deterministic reply when no tool runs
    fill: str | None = None  # which free-text argument the LLM may fill ("intent", "query")
    residual: str = ""  # the content words of the message (fallback for fill)
    set_user: str | None = None  # staff: this turn's user becomes the session's current user

    def describe(self) -> str:
        return f"{self.intent}->{self.tool} via {self.how} ({self.score:.2f})"


class Router:
    def __init__(self, toolbox: "Toolbox", embedder: Any):
        self.toolbox = toolbox
        self.embedder = embedder
        self._matcher: IntentMatcher | None = None
        self._categories: list[str] | None = None

    @property
    def matcher(self) -> IntentMatcher:
        if self._matcher is None:
            self._matcher = IntentMatcher(self.embedder)
        return self._matcher

    @property
    def categories(self) -> list[str]:
        if self._categories is None:
            self._categories = self.toolbox.categories()
        return self._categories

    @property
    def session(self) -> "Session":
        return self.toolbox.session  # type: ignore[return-value]

    @property
    def principal(self):
        return self.toolbox.principal

    # ------------------------------------------------------------ entry
    def plan(self, text: str) -> Plan:
        text = text.strip()
        if text.startswith("/"):
            return self.slash(text)
        users = user_mentions(text)
        plan = self._rules(text) or self._by_embedding(text)
        if not self.principal.is_staff and users and users[0] != self.principal.user_id and plan.tool is None:
            # an end user asking about someone else: let the gate refuse it, on the record
            tool = INTENTS.get(plan.intent, (None, []))[0] or "get_profile"
            plan = Plan(tool, {"user_id": users[0], **({"item_id": "?"} if tool == "explain" else {})},
                        plan.intent, plan.how, plan.score)
        if plan.tool and plan.tool not in ("search_items", "status", "refresh_profiles") and users and "user_id" not in plan.args:
            plan.args["user_id"] = users[0]
            if self.principal.is_staff:
                plan.set_user = users[0]
        return plan

    # ------------------------------------------------------------ slash commands
    def slash(self, text: str) -> Plan:
        cmd, _, rest = text[1:].partition(" ")
        cmd, rest = cmd.lower(), rest.strip()
        p = lambda tool, name, **args: Plan(tool, {k: v for k, v in args.items() if v not in (None, "", [])}, name, "slash")  # noqa: E731
        if cmd in ("recs", "recommend"):
            n = int(rest) if rest.isdigit() else None
            if self.principal.is_staff:
                return p("recommendation_log", "log")
            return p("recommend", "recommend", k=n or 5, intent=None if rest.isdigit() else rest or None)
        if cmd == "why":
            return self._explain_plan(rest or "first", how="slash", bare_ref=rest)
        if cmd == "profile":
            return p("get_profile", "profile", user_id=rest or None)
        if cmd == "history":
            return p("get_history", "history", limit=int(rest) if rest.isdigit() else 10)
        if cmd == "log":
            return p("recommendation_log", "log", request_id=rest or None)
        if cmd in ("like", "dislike"):
            item = self._item_ref(rest, bare=True) if rest else self._focus()
            if item is None:
                return Plan(None, intent=cmd, how="slash", reply=f"Which one? Try /{cmd} 1 for the first item shown.")
            return p("record_feedback", cmd, kind=cmd, item_id=item)
        if cmd == "search":
            return p("search_items", "search", query=rest) if rest else Plan(None, intent="search", how="slash",
                                                                             reply="Search for what? /search space opera")
        if cmd == "status":
            return p("status", "status")
        if cmd == "refresh":
            if rest.lower() in ("all", "--all"):
                return p("refresh_profiles", "refresh", all_users=True)
            return p("refresh_profiles", "refresh", user_ids=rest.split() or None)
        if cmd == "user":
            return Plan(None, intent="user", how="slash", set_user=rest or None,
                        reply=None if rest else "Which user? /user 42")
        return Plan(None, intent="help", how="slash", reply=help_text(self.principal.role.value))

    # ------------------------------------------------------------ rules
    def _rules(self, text: str) -> Plan | None:
        if _WHY.search(text):
            return self._explain_plan(text, how="rule")
        if _SEARCH_VERB.search(text):
            return self._args_search(text, Plan("search_items", {}, "search", "rule"))
        if _RECOMMEND_START.search(text) and not _NEGATIVE.search(text):
            return self._args_recommend(text, Plan("recommend", {}, "recommend", "rule"))
        return None

    def _explain_plan(self, text: str, how: str, bare_ref: str | None = None) -> Plan:
        item = self._item_ref(text, bare=bool(bare_ref))
        args: dict[str, Any] = {}
        if item is None:
            if re.search(r"\b(recommend|list|shown?|pick)", text, re.I) and not self.session.shown and not _ITEM.search(text):
                return Plan(None, intent="explain", how=how, reply="Which item? Ask for recommendations first, then "
                                                                    "*why the first one?* (or /why 1).")
            item = self._focus()
        if item is None:
            return Plan(None, intent="explain", how=how,
                        reply="Which item? Ask for recommendations first, then *why the first one?* (or /why 1).")
        rid = _UUID.search(text)
        if rid:
            args["request_id"] = rid.group(0)
        elif self.session.request_id and any(s["item_id"] == item for s in self.session.shown):
            args["request_id"] = self.session.request_id
            if self.session.shown_user:
                args["user_id"] = self.session.shown_user
        return Plan("explain", {"item_id": item, **args}, "explain", how)

    def _focus(self) -> str | None:
        if self.session.focus:
            return self.session.focus["item_id"]
        return self.session.shown[0]["item_id"] if self.session.shown else None

    def _item_ref(self, text: str, bare: bool = False) -> str | None:
        """An item the text points at: an ordinal of the shown list, an item
        id, a shown title, a catalog title, or "it/this" (the focus)."""
        if not self.session.shown and (ordinal(text) is not None or (bare and text.strip().isdigit())):
            self._recall_latest_list(text)
        if bare and text.strip().isdigit() and self.session.shown:
            n = int(text.strip())
            got = self.session.shown_item(n)
            if got:
                return got["item_id"]
        n = ordinal(text)
        if n is not None and self.session.shown:
            got = self.session.shown_item(n)
            if got:
                return got["item_id"]
        m = _ITEM.search(text)
        if m:
            return m.group(1)
        if bare and text.strip() and text.strip() in self.toolbox.titles.titles:
            return text.strip()
        low = f" {norm(text)} "
        best = None
        for s in self.session.shown:
            key = norm(s["title"])
            words = key.split()
            probes = [key] + ([" ".join(words[:k]) for k in range(len(words) - 1, 1, -1)] if len(words) > 2 else [])
            for probe in probes:
                if probe and f" {probe} " in low and (best is None or len(probe) > best[0]):
                    best = (len(probe), s["item_id"])
                    break
        if best:
            return best[1]
        hits = self.toolbox.titles.mentions(text, case_sensitive=False)
        if hits:
            start, end, key = max(hits, key=lambda h: h[1] - h[0])
            return self.toolbox.titles.by_norm[key][0]
        content = residual(text, _REF_WORDS)
        if content:  # a one-word title ("why Jumanji?"), never a common word
            hits = self.toolbox.titles.mentions(content, case_sensitive=False, min_words=1)
            if hits:
                return self.toolbox.titles.by_norm[max(hits, key=lambda h: h[1] - h[0])[2]][0]
        if _THIS.search(text):
            return self._focus()
        return None

    def _recall_latest_list(self, text: str) -> None:
        """A new session asked about "the second one": that means the latest
        list logged for the user (their own, or the staff's current user)."""
        users = user_mentions(text)
        try:
            user = self.principal.resolve_user(users[0] if users else None, self.session.target_user)
            self.toolbox.remember_latest_list(user)
        except Exception:  # no user, not allowed, nothing logged: the plan asks back
            return

    # ------------------------------------------------------------ embeddings
    def _by_embedding(self, text: str) -> Plan:
        allowed = {name for name, (tool, _) in INTENTS.items() if tool is None or True}
        intent, score = self.matcher.best(text, allowed)
        negative = bool(_NEGATIVE.search(text))
        recommend_verb = bool(_RECOMMEND_VERB.search(text))
        if negative and not recommend_verb and intent in ("recommend", "like", "search", "explain", "help"):
            intent = "dislike"
        if intent == "dislike" and recommend_verb:
            intent = "recommend"
        if score < MIN_SIMILARITY and not (negative and intent == "dislike"):
            return Plan(None, intent="help", how="embedding", score=score,
                        reply="Sorry, I didn't catch that. " + help_text(self.principal.role.value, short=True))
        build: Callable[[str, Plan], Plan] = getattr(self, f"_args_{intent}", lambda t, p: p)
        tool = INTENTS[intent][0]
        plan = Plan(tool, {}, intent, "embedding", score)
        if tool is None:
            plan.reply = help_text(self.principal.role.value)
            return plan
        return build(text, plan)

    # ------------------------------------------------------------ argument builders
    def _args_recommend(self, text: str, plan: Plan) -> Plan:
        wanted, unwanted = categories_in(text, self.categories)
        k = count(text)
        if k:
            plan.args["k"] = k
        if wanted:
            plan.args["category"] = wanted[0]
        exclude = list(unwanted)
        like = _LIKE.search(text)
        used: set[str] = {c.lower() for c in wanted + unwanted}
        if like:
            ref = like.group(1).strip()
            ids = self.toolbox.titles.lookup(ref)
            if not ids:
                hits = self.toolbox.titles.mentions(ref, case_sensitive=False, min_words=1)
                if hits:
                    ids = self.toolbox.titles.by_norm[max(hits, key=lambda h: h[1] - h[0])[2]]
            if ids:
                item_id = ids[0]
                item = self.toolbox.app.store.get_item(item_id)
                title = display_title(item.title or item_id)
                plan.args["intent"] = f"like {title}: " + ", ".join(list(item.categories) + list(item.tags[:5]))
                exclude.append(item_id)
                used |= {w.lower() for w in tokens(ref)}
        if exclude:
            plan.args["exclude"] = exclude
        if "intent" not in plan.args:
            rest = residual(text, used | {"not", "no", "without", "except", "avoid"})
            if rest:
                plan.fill, plan.residual = "intent", rest
        return plan

    def _args_search(self, text: str, plan: Plan) -> Plan:
        wanted, _ = categories_in(text, self.categories)
        if wanted:
            plan.args["category"] = wanted[0]
        k = count(text)
        if k:
            plan.args["k"] = k
        rest = residual(text, {"set", "called", "named", "film", "films", "there", "is", "are", "search", "find", "look", "lookup"})
        plan.args["query"] = rest or text  # the content words are the query: no LLM needed
        return plan

    def _args_explain(self, text: str, plan: Plan) -> Plan:
        return self._explain_plan(text, how="embedding")

    def _args_history(self, text: str, plan: Plan) -> Plan:
        types = [t for t, words in (("rating", "rating rated ratings"), ("tag", "tag tags tagged"),
                                    ("like", "like likes liked"), ("dislike", "dislike dislikes disliked"),
                                    ("review", "review reviews"), ("purchase", "purchase purchases bought"))
                 if any(w in {x.lower() for x in tokens(text)} for w in words.split())]
        if types:
            plan.args["types"] = types
        mentioned = user_mentions(text)  # a user id is not a limit
        n = count(text) or next((int(m) for m in re.findall(r"\b(\d{1,2})\b", text) if m not in mentioned), None)
        if n:
            plan.args["limit"] = max(1, min(100, n))
        return plan

    def _feedback(self, text: str, plan: Plan, kind: str) -> Plan:
        plan.args["kind"] = kind
        wanted, unwanted = categories_in(text, self.categories)
        item = self._item_ref(text)
        cats = unwanted + wanted
        if item is None and cats:
            # A stated preference: its direction comes from the words around the
            # category, not from which example the sentence sat nearest to.
            plan.args["category"] = cats[0]
            plan.args["kind"] = "dislike" if unwanted or _TRAILING_NEGATIVE.search(text) else "like"
            return plan
        if item is None:
            return Plan(None, intent=plan.intent, how=plan.how, score=plan.score,
                        reply="Which title do you mean? Name it, or say e.g. *I didn't like the second one*.")
        plan.args["item_id"] = item
        return plan

    def _args_like(self, text: str, plan: Plan) -> Plan:
        return self._feedback(text, plan, "like")

    def _args_dislike(self, text: str, plan: Plan) -> Plan:
        return self._feedback(text, plan, "dislike")

    def _args_log(self, text: str, plan: Plan) -> Plan:
        rid = _UUID.search(text)
        if rid:
            plan.args["request_id"] = rid.group(0)
        return plan

    def _args_refresh(self, text: str, plan: Plan) -> Plan:
        users = user_mentions(text)
        if users:
            plan.args["user_ids"] = users
        elif _ALL.search(text):
            plan.args["all_users"] = True
        elif re.search(r"\b(this|that|the)\s+user\b", text, re.I) and self.session.target_user:
            plan.args["user_ids"] = [self.session.target_user]
        return plan


def help_text(role: str, short: bool = False) -> str:
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
