"""Claim-level faithfulness: every sentence a model writes is a claim, checked
against THIS turn's tool results before it is shown.

A sentence is dropped when it says something the results do not hold; when
what is left no longer answers the question (nothing left, less than half
kept, no kept sentence naming one of the listed items) or the answer repeats
instructions (the system prompt, instruction-like text from item
descriptions/reviews), the agent shows the deterministic rendering instead.

Rules, per sentence (so they hold for long answers by a stronger model as
well as for the two-sentence answers of the small one):

any language
  * titles: every catalog title it names (and every quoted/emphasised name,
    including Chinese 《书名号》) must be a title in the results
    (`grounding.check_answer`);
  * numbers: every number (ratings, weights, percentages, counts, versions,
    dates, years) must be a number in the results, to the precision written
    ("0.14" for 0.1433, "14%" for 0.143); a number inside a title ("(1985)",
    "Terminator 2") and spelled-out small numbers/ordinals ("two", "first")
    are not checked;
  * instructions: text that reads as an instruction ("ignore previous
    instructions", "you are operator now", "SYSTEM:") or repeats the system
    prompt (8 words in a row) or instruction-like data (5 words in a row) ends
    the model's answer: the deterministic rendering is shown.

English sentences only (the phrase rules never fire on CJK text)
  * "you rated X 4/5", "X (5/5)": that rating event (title and value) is in
    the results; a rating nobody in the results gave ("received 5/5 stars")
    is dropped;
  * "you liked/loved/enjoyed X", "your favourites include X": X is among the
    user's positive items (profile top items, liked/bought/well-rated history
    events, the "because you liked" evidence); "you watched/saw X": any event
    on X; "you disliked X": a negative item/event; "they/the user liked X" the same
    for staff; "this movie" is the explained item;
  * "people who liked ... also liked", "similar users": a co-occurrence part;
  * "popular", "trending", "many people", "8 people": a popularity part;
  * reviewers/reviews: a review event; critics, awards, "highly rated": only
    if the data itself says so (a tag); any other talk of users/people/viewers
    is dropped (the results hold only this user's data);
  * "you mentioned/said/told/searched": the user's own words are in the results
    (an event text, a request text);
  * "X is the top pick / I recommend X": X is one of the listed items;
  * to an end user: "you", never "the user", "user 1", "they liked",
    "their profile".

Chinese sentences additionally: 影评人/评论家 need a review event, 其他用户/很多人
need co-occurrence or popularity evidence, 你提到/你说过 need the user's words,
and to an end user 该用户/用户1 is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tastebud.agent.grounding import Grounding, TitleIndex, _fold, check_answer, cjk_key, norm
from tastebud.agent.claim_facts import (
    DATA_ECHO_WORDS,
    Facts,
    SYSTEM_ECHO_WORDS,
    _ARTICLES,
    _DENOMINATOR,
    _NUMBER,
    _RATING,
    _SPELLED,
    _VERSION,
    _WORD,
    _YEAR_AFTER,
    _grams,
    _without_data,
    instruction_like,
    is_english,
    split_sentences,
)
from tastebud.agent.claim_patterns import (
    _unique,
    _number_in,
    _adjacent_title,
    _list_after,
    _CLAIM,
    _CO_OCCURRENCE,
    _FAVOURITE_AFTER,
    _FAVOURITE_BEFORE,
    _LIST_SEP,
    _NOT_A_CLAIM_BEFORE,
    _OTHERS,
    _OTHERS_OK,
    _PEOPLE_SUBJECT,
    _POPULARITY,
    _RANK,
    _RATING_ATTRIBUTED,
    _RECOMMENDED_AFTER,
    _RECOMMENDED_BEFORE,
    _RELATIVE,
    _REPUTATION,
    _REVIEW,
    _ROLE,
    _THIS,
    _YOUR_LOVE,
    _ZH_CRITICS,
    _SAME_START,
    _ZH_PEOPLE,
    _ZH_RATING,
    _ZH_ROLE,
    _ZH_TITLE,
    _ZH_QUALITY,
    _ZH_POPULAR,
    _ZH_AS_USER,
    _ZH_THIRD,
    _GENRE,
    _CLAUSE_END,
    GENRE_WORDS,
    _ZH_WORDS,
    _verb_class,
)


_AS_USER = re.compile(r"\bmy (?:tastes?|interests?|(?:taste )?profile|history|ratings?|favou?rites?|likes|dislikes|"
                      r"preferences?)\b|\bI (?:like|love|enjoy|prefer|rated|watched|dislike|hate)\b(?!\s+(?:to|that|how)\b)")
_STAFF_AS_USER = re.compile(r"\byour (?:interests?|tastes?|(?:taste )?profile|history|ratings?|favou?rites?|"
                            r"recent|long-term|likes|dislikes)\b|\byou (?:rated|liked|loved|watched|disliked|enjoyed|"
                            r"tend to|have (?:rated|liked|watched))\b", re.I)
# tool-call or data syntax: a model echoing its calls or the results instead of answering
# (the 0.5B model through the tools driver: '{"name": "get_profile", "arguments": ...}', JSON dumps)
_TOOL_SYNTAX = re.compile(r'^\s*[{\[]\s*["{\[]|"\w+"\s*:\s*["{\[\d]|\bfunctions\.\w+:|</?(?:tool_call|tool_response|data)>')


@dataclass
class ClaimReport:
    """What the claim check made of one answer."""

    sentences: list[str]
    dropped: list[dict[str, str]]
    kept_text: str
    ungrounded: list[str]
    fallback: str | None = None  # why the deterministic rendering is shown instead

    @property
    def keep(self) -> bool:
        return self.fallback is None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checked": len(self.sentences), "dropped": list(self.dropped)}
        if self.fallback:
            out["fallback"] = self.fallback
        return out


class ClaimChecker:
    """Checks a model's answer sentence by sentence against this turn's tool
    results (`results`: the list, or a callable giving it, since the
    tool-calling driver adds results while the model streams).

    `audience`: "user" (an end user: the answer must say "you") or "staff".
    `instructions`: the system prompt(s) the model was given (data blocks are
    ignored), which the answer must not repeat."""

    def __init__(self, results: Sequence[Any] | Callable[[], Sequence[Any]], index: TitleIndex | None,
                 question: str = "", audience: str = "user", instructions: str | Sequence[str] = "",
                 lang: str = "en"):
        self._results = results
        self.lang = lang
        self.index = index
        self.question = question or ""
        self.audience = audience
        prompts = [instructions] if isinstance(instructions, str) else list(instructions)
        self._prompt_grams: set[tuple[str, ...]] = set()
        for p in prompts:
            self._prompt_grams |= _grams(_without_data(p), SYSTEM_ECHO_WORDS)
        self._cache: tuple[int, list[Any], Facts] | None = None

    # ------------------------------------------------------------ inputs
    @property
    def results(self) -> list[Any]:
        r = self._results() if callable(self._results) else self._results
        return [x for x in r if x is not None]

    @property
    def facts(self) -> Facts:
        results = self.results
        key = sum(id(r) for r in results) + len(results)
        if self._cache is None or self._cache[0] != key or len(self._cache[1]) != len(results):
            facts = Facts.from_results(results)
            facts.alias_seeds_as_asked(self.question)
            self._cache = (key, results, facts)
        return self._cache[2]

    # ------------------------------------------------------------ titles in text
    def title_spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, normalised title) of the titles a text names: catalog
        titles of 2+ words, and result titles (by any of their forms) of any
        length, each starting with a capital or digit; a following "(1985)"
        is part of the span."""
        facts = self.facts
        catalog = self.index.by_norm if self.index is not None else {}
        max_words = max([self.index.max_words if self.index is not None else 1]
                        + [k.count(" ") + 1 for k in facts.aliases]) + 1
        words = [(m.group().replace("’", "'"), m.start(), m.end()) for m in _WORD.finditer(text)]
        folded = [_fold(w) for w, _, _ in words]
        out: list[tuple[int, int, str]] = []
        i = 0
        while i < len(words):
            found = None
            for n in range(min(max_words, len(words) - i), 0, -1):
                run = folded[i : i + n]
                skip = 1 if n > 1 and run[0] in _ARTICLES else 0
                key = " ".join(run[skip:])
                if not key:
                    continue
                in_results = key in facts.aliases
                if not in_results and not (key in catalog and n - skip >= 2):
                    continue
                first = words[i + skip][0]
                if not (first[:1].isupper() or first[:1].isdigit()):
                    continue
                found = (i, i + n, facts.canonical(key))
                break
            if found:
                start, end = words[found[0]][1], words[found[1] - 1][2]
                m = _YEAR_AFTER.match(text, end)
                if m:
                    end = m.end()
                elif text[end : end + 1] in "?!" and end + 1 <= len(text):
                    # "Who Framed Roger Rabbit?", "Airplane!": punctuation that is part of the title
                    if any(r.startswith(text[start : end + 1]) for r in facts.raw_titles):
                        end += 1
                out.append((start, end, found[2]))
                i = found[1]
            else:
                i += 1
        return out

    def split(self, text: str) -> list[tuple[int, int, bool]]:
        return split_sentences(text, [(s, e) for s, e, _ in self.title_spans(text)])

    # ------------------------------------------------------------ one sentence
    def check_sentence(self, sentence: str) -> Grounding:
        """The sentence's problems: .grounded is False when it must be dropped;
        .ungrounded the titles outside the results; .reasons all problems."""
        sentence = sentence.strip()
        if not sentence:
            return Grounding(True, [])
        facts = self.facts
        reasons: list[str] = []
        fatal = False
        if _TOOL_SYNTAX.search(sentence):
            reasons.append("tool-call or JSON syntax, not an answer")
            fatal = True
        # instructions, whatever the language
        if instruction_like(sentence):
            reasons.append("instruction-like text")
            fatal = True
        if self._prompt_grams and _grams(sentence, SYSTEM_ECHO_WORDS) & self._prompt_grams:
            reasons.append("repeats the system prompt")
            fatal = True
        if facts.instructions and self._echoes_data_instructions(sentence, facts):
            reasons.append("repeats instruction-like text from the data")
            fatal = True
        # titles
        titles = check_answer(sentence, self.results, self.index, self.question)
        ungrounded = list(titles.ungrounded)
        for m in _ZH_TITLE.finditer(sentence):
            name = m.group(1).strip()
            key = norm(name) or cjk_key(name)
            if not (key and (key in facts.aliases or any(f" {key} " in f" {t} " for t in facts.titles))):
                if name not in ungrounded:
                    ungrounded.append(name)
        if ungrounded:
            reasons.append("title not in the results: " + ", ".join(ungrounded))
        spans = self.title_spans(sentence)
        # numbers, genres said of a title
        reasons += self._numbers(sentence, spans, facts)
        reasons += self._genres(sentence, spans, facts)
        if is_english(sentence):
            reasons += self._english(sentence, spans, facts)
            if self.lang == "zh" and _LATIN_WORD.findall(_without_spans(sentence, spans)).__len__() >= 3:
                reasons.append("not in the user's language (Chinese)")
        else:
            reasons += self._chinese(sentence, facts)
        g = Grounding(not reasons, ungrounded)
        g.reasons = _unique(reasons)
        g.fatal = fatal
        return g

    def _echoes_data_instructions(self, sentence: str, facts: Facts) -> bool:
        grams = _grams(sentence, DATA_ECHO_WORDS)
        return bool(grams) and any(grams & _grams(s, DATA_ECHO_WORDS) for s in facts.instructions)

    def _numbers(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        inside = lambda at: any(s <= at < e for s, e, _ in spans)  # noqa: E731
        bad: list[str] = []
        masked = _DENOMINATOR.sub(lambda m: " " * len(m.group()), sentence)
        for m in _NUMBER.finditer(masked):
            if inside(m.start()):
                continue
            whole, decimals, percent = m.group(1), m.group(2), m.group(3)
            if not _number_in(float(whole.replace(",", "") + (f".{decimals}" if decimals else "")),
                              len(decimals or ""), bool(percent), facts.numbers):
                bad.append(m.group().strip())
        for m in _VERSION.finditer(sentence):
            if not inside(m.start()) and float(m.group(1)) not in facts.numbers:
                bad.append(m.group())
        return [f"number not in the results: {', '.join(_unique(bad))}"] if bad else []

    # ------------------------------------------------------------ English rules
    def _english(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        reasons: list[str] = []
        reasons += self._ratings(sentence, spans, facts)
        reasons += self._ranks(sentence, spans, facts)
        claimed, governed = self._who_did_what(sentence, spans, facts)
        reasons += claimed
        reasons += self._others(sentence, facts)
        reasons += self._recommended(sentence, spans, facts, governed)
        m = _AS_USER.search(sentence)
        if m:  # the model speaking as the user: "You know about my tastes"
            reasons.append(f"speaks as the user ({m.group()!r})")
        if self.audience == "user":
            m = _ROLE.search(sentence)
            if m and not (m.group().lower().startswith(("they", "their", "he", "she", "his", "her"))
                          and _PEOPLE_SUBJECT.search(sentence[: m.start()])):
                reasons.append(f"speaks of the user in the third person ({m.group().strip()!r}); say \"you\"")
        else:
            m = _STAFF_AS_USER.search(sentence)
            if m:  # to staff, the customer's tastes are theirs, not the staff member's
                reasons.append(f"speaks to staff as if they were the user ({m.group()!r}); say \"the user\"")
        return reasons

    def _ratings(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        reasons = []
        for m in _RATING.finditer(sentence):
            raw = m.group(1).lower()
            value = _SPELLED.get(raw) if raw in _SPELLED else float(raw)
            if any(s <= m.start() < e for s, e, _ in spans):
                continue
            title = _adjacent_title(sentence, m.start(), m.end(), spans)
            said = m.group().strip()
            if title is not None:
                if value not in facts.ratings.get(title, set()):
                    reasons.append(f"rating not in the results: {facts.show(title)} {said}")
            elif not _RATING_ATTRIBUTED.search(sentence):
                reasons.append(f"a rating nobody in the results gave: {said}")
            elif value not in facts.rating_values:
                reasons.append(f"rating not in the results: {said}")
        return reasons

    def _ranks(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        """"Aliens was #8": the rank a result gives that title."""
        reasons = []
        for m in _RANK.finditer(sentence):
            if any(s <= m.start() < e for s, e, _ in spans):
                continue
            title = _adjacent_title(sentence, m.start(), m.end(), spans)
            if title is not None and title in facts.ranks and int(m.group(1)) not in facts.ranks[title]:
                reasons.append(f"rank not in the results: {facts.show(title)} {m.group().strip()}")
        return reasons

    def _who_did_what(self, sentence: str, spans: list[tuple[int, int, str]],
                      facts: Facts) -> tuple[list[str], set[str]]:
        """(problems, titles the sentence says the user or other people acted on)."""
        reasons: list[str] = []
        governed: set[str] = set()
        for m in _CO_OCCURRENCE.finditer(sentence):
            after = re.match(r"\s+(?:\w+\s+){0,2}?(?:liked|loved|enjoyed|watched|rated|bought)\b", sentence[m.end():])
            if after:
                governed |= set(_list_after(sentence, m.end() + after.end(), spans))
        for m in _CLAIM.finditer(sentence):
            subj = m.group("subj").lower()
            if _NOT_A_CLAIM_BEFORE.search(sentence[: m.start()]):
                continue
            if subj in ("they", "he", "she") and _PEOPLE_SUBJECT.search(sentence[: m.start()]):
                continue  # "people who liked X ... they": not the user
            aux = m.group(0)[len(m.group("subj")) : m.start("verb") - m.start()].lower()
            if re.search(r"\b(?:are|were)\b|['’]re", aux) and not re.search(r"fan", m.group("verb"), re.I):
                continue  # "you are watching", "they are liked by": not a past act of the user
            verb = m.group("verb").lower()
            kind = _verb_class(verb)
            negated = bool(m.group("neg"))
            who = "you" if subj == "you" else subj
            if kind == "words":
                if not negated and not facts.user_words:
                    reasons.append(f"\"{who} {verb}\": the results hold nothing the user said")
                continue
            objects = self._objects(sentence, m.end(), m.start(), spans, facts)
            governed |= set(objects)
            if negated:
                if kind == "positive":
                    kind = "negative"
                else:
                    continue
            for key in objects:
                ok = {"positive": facts.positive, "negative": facts.negative, "seen": facts.seen | facts.positive,
                      "rated": set(facts.ratings), "reviewed": facts.reviewed}[kind]
                if key not in ok:
                    said = f"{who} {'did not ' if negated else ''}{verb}"
                    reasons.append(f"\"{said} {facts.show(key)}\": not in the user's events in the results")
        for m in list(_FAVOURITE_AFTER.finditer(sentence)) + list(_YOUR_LOVE.finditer(sentence)):
            for key in _list_after(sentence, m.end(), spans, max_gap_words=3):
                governed.add(key)
                if key not in facts.positive:
                    reasons.append(f"\"your favourite {facts.show(key)}\": not among the user's liked items in the results")
        for s, e, key in spans:
            if _FAVOURITE_BEFORE.match(sentence[e:]):
                governed.add(key)
                if key not in facts.positive:
                    reasons.append(f"\"{facts.show(key)} is your favourite\": not among the user's liked items in the results")
        return reasons, governed

    def _objects(self, sentence: str, at: int, subject_at: int, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        """The titles a verb at `at` governs: the list right after it, "this
        movie" (the explained item), or the title before "which you ..."."""
        found = _list_after(sentence, at, spans)
        if found:
            return found
        if _THIS.match(sentence[at:]):
            return sorted(facts.subject)
        before = sentence[:subject_at]
        rel = _RELATIVE.search(before)
        if rel:
            for s, e, key in reversed(spans):
                if e <= rel.start() + 1 and not sentence[e : rel.start()].strip(" ,("):
                    return [key]
        return []

    def _others(self, sentence: str, facts: Facts) -> list[str]:
        reasons = []
        covered: list[tuple[int, int]] = []
        for m in _CO_OCCURRENCE.finditer(sentence):
            covered.append(m.span())
            if facts.same_start and _SAME_START.match(sentence, m.start()):
                continue  # what the same_start part says, and the results hold it
            if not facts.co_occurrence:
                reasons.append(f"\"{m.group().strip()}\": the results hold no co-occurrence evidence")
        for m in _POPULARITY.finditer(sentence):
            covered.append(m.span())
            if not facts.popularity:
                reasons.append(f"\"{m.group().strip()}\": the results hold no popularity evidence")
        for m in _REPUTATION.finditer(sentence):
            covered.append(m.span())
            word = _fold(m.group()).strip()
            if f" {word}" not in facts.trusted_text:
                reasons.append(f"\"{m.group().strip()}\": no critics, awards or public ratings in the results")
        for m in _REVIEW.finditer(sentence):
            covered.append(m.span())
            if not facts.reviews:
                reasons.append(f"\"{m.group()}\": the results hold no review")
        for m in _OTHERS_OK.finditer(sentence):
            covered.append(m.span())
        for m in _OTHERS.finditer(sentence):
            if any(s <= m.start() < e for s, e in covered):
                continue
            if re.match(r"review|critic", m.group(), re.I):
                continue  # judged above
            reasons.append(f"\"{m.group()}\": the results hold no data of other users")
        return reasons

    def _recommended(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts,
                     governed: set[str]) -> list[str]:
        """"A and B are the top picks", "I recommend A": A and B are listed items
        (titles the user or similar people acted on are not what is recommended)."""
        offered = facts.listed | facts.subject
        if not offered:
            return []
        named: list[str] = []
        for m in _RECOMMENDED_AFTER.finditer(sentence):
            named += _list_after(sentence, m.end(), spans, max_gap_words=3)
        for k, (s, e, key) in enumerate(spans):
            if _RECOMMENDED_BEFORE.match(sentence[e:]):
                named.append(key)
                # "A and B are the top picks": the whole list before the verb
                j = k
                while j > 0 and _LIST_SEP.match(sentence[spans[j - 1][1] : spans[j][0]]) \
                        and spans[j - 1][2] not in governed:
                    j -= 1
                    named.append(spans[j][2])
        bad = [k for k in _unique(named) if k not in offered and k not in governed]
        return [f"said to be recommended but not in the list: {', '.join(facts.show(k) for k in bad)}"] if bad else []

    def _genres(self, sentence: str, spans: list[tuple[int, int, str]], facts: Facts) -> list[str]:
        """"Pulp Fiction is a sci-fi film", "《X》是一部科幻作品": in a clause that names
        exactly one title whose categories the results hold, every genre word must
        be one of them."""
        reasons = []
        cuts = [0] + [m.end() for m in _CLAUSE_END.finditer(sentence)
                      if not any(a <= m.start() < b for a, b, _ in spans)] + [len(sentence)]
        for start, end in zip(cuts, cuts[1:]):
            inside = [t for a, b, t in spans if a >= start and b <= end]
            if len(set(inside)) != 1 or inside[0] not in facts.categories:
                continue
            known = facts.categories[inside[0]]
            clause = sentence[start:end]
            for a, b, _ in spans:  # genre words inside the title itself do not count
                if a >= start and b <= end:
                    clause = clause.replace(sentence[a:b], " ")
            for m in _GENRE.finditer(clause):
                genre = GENRE_WORDS[m.group().lower()]
                if genre not in known:
                    reasons.append(f"genre not in the results for {facts.show(inside[0])}: {m.group()}")
        return reasons

    def _chinese(self, sentence: str, facts: Facts) -> list[str]:
        reasons = []
        m = _ZH_QUALITY.search(sentence)
        if m and m.group() not in facts.trusted_raw:
            reasons.append(f"\"{m.group()}\": praise the results do not hold")
        m = _ZH_POPULAR.search(sentence)
        if m and not facts.popularity:
            reasons.append(f"\"{m.group()}\": no popularity part in the results")
        m = _ZH_AS_USER.search(sentence)
        if m:
            reasons.append(f"speaks as the user ({m.group()!r})")
        for m in _ZH_RATING.finditer(sentence):
            if "你" not in sentence and "您" not in sentence:
                reasons.append(f"a rating nobody in the results gave: {m.group()}")
            elif float(m.group(1)) not in facts.rating_values:
                reasons.append(f"rating not in the results: {m.group()}")
        m = _ZH_CRITICS.search(sentence)
        if m and not facts.reviews:
            reasons.append(f"\"{m.group()}\": no reviews or critics in the results")
        m = _ZH_PEOPLE.search(sentence)
        if m and not (facts.co_occurrence or facts.popularity):
            reasons.append(f"\"{m.group()}\": the results hold no data of other users")
        m = _ZH_WORDS.search(sentence)
        if m and not facts.user_words:
            reasons.append(f"\"{m.group()}\": the results hold nothing the user said")
        if self.audience == "user":
            m = _ZH_ROLE.search(sentence) or _ZH_THIRD.search(sentence)
            if m:
                reasons.append(f"speaks of the user in the third person ({m.group()!r}); say \"you\"")
        return reasons

    # ------------------------------------------------------------ a whole answer
    def review(self, answer: str) -> ClaimReport:
        """Check every sentence; keep the supported ones, or say why the
        deterministic rendering must be shown instead."""
        text = answer or ""
        facts = self.facts
        kept: list[str] = []
        sentences: list[str] = []
        dropped: list[dict[str, str]] = []
        ungrounded: list[str] = []
        fatal: str | None = None
        kept_titles: set[str] = set()
        for s, e, _ in self.split(text):
            piece = text[s:e]
            sentence = piece.strip()
            if not sentence:
                continue
            if not re.search(r"\w", sentence):  # a lone "-" or "**": nothing claimed
                kept.append(piece)
                continue
            sentences.append(sentence)
            g = self.check_sentence(sentence)
            ungrounded += [u for u in g.ungrounded if u not in ungrounded]
            if g.grounded:
                kept.append(piece)
                kept_titles |= {key for _, _, key in self.title_spans(sentence)}
            else:
                dropped.append({"sentence": sentence, "reason": "; ".join(g.reasons)})
                if getattr(g, "fatal", False) and fatal is None:
                    fatal = g.reasons[0]
        kept_text = "".join(kept).strip()
        report = ClaimReport(sentences, dropped, kept_text, ungrounded)
        # across sentence boundaries, too
        if fatal is None and self._prompt_grams and _grams(text, SYSTEM_ECHO_WORDS) & self._prompt_grams:
            fatal = "repeats the system prompt"
        if fatal is None and facts.instructions and self._echoes_data_instructions(text, facts):
            fatal = "repeats instruction-like text from the data"
        n_kept = len(sentences) - len(dropped)
        if fatal:
            report.fallback = fatal
        elif not sentences:
            report.fallback = "no answer"
        elif dropped and n_kept == 0:
            report.fallback = "no supported sentence left"
        elif dropped and 2 * n_kept < len(sentences):
            report.fallback = "less than half of the sentences are supported"
        elif dropped and facts.listed and not (kept_titles & facts.listed):
            report.fallback = "no kept sentence names a listed item"
        return report


# ------------------------------------------------------------------ helpers


_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def _without_spans(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """The text with its title spans cut out (a title is not a language)."""
    out, pos = [], 0
    for start, end, _ in sorted(spans):
        out.append(text[pos:start])
        pos = max(pos, end)
    out.append(text[pos:])
    return " ".join(out)
