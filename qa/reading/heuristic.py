"""The heuristic reader: a short answer picked by the question's type and the passage's words.

No model: who → a name, when → a date, how many → a number, where → a place. It is the fallback
when the trained reader's files are absent, and its question typing is evidence for the
answer ranker either way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.reading.base import Span
from qa.terms import STOPWORDS, stem, words

_MONTH = (
    r"(?:Jan(?:uary|\.)?|Feb(?:ruary|\.)?|Mar(?:ch|\.)?|Apr(?:il|\.)?|May|June?|July?|"
    r"Aug(?:ust|\.)?|Sep(?:t(?:ember|\.)?|\.)?|Oct(?:ober|\.)?|Nov(?:ember|\.)?|Dec(?:ember|\.)?)"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundred|thousand|million|billion|dozen|dozens|hundreds|thousands|millions|"
    r"half|a (?:hundred|thousand|million|billion|dozen|few)|several)"
)
_APPROX = r"(?:(?:about|around|nearly|almost|over|under|more than|less than|fewer than|some|"
_APPROX += r"roughly|approximately|at least|up to|just over|just under)\s+)?"
_NUMERAL = (
    rf"(?:[$£€¥]\s?)?(?:\d[\d,]*(?:\.\d+)?|{_NUMBER_WORD}(?:[- ]{_NUMBER_WORD})*)"
    r"(?:\s?(?:%|(?:percent|per cent|million|billion|trillion|thousand|hundred|bn|m)\b))?"
)
_UNIT = (
    r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centuries|century|"
    r"nights?|innings|laps|rounds)"
)
_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(
        rf"\b(?:(?:{_WEEKDAY},?\s+)?{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
        rf"|\d{{1,2}}\s+{_MONTH}(?:\s+\d{{4}})?|{_MONTH},?\s+\d{{4}}|{_WEEKDAY}"
        r"|(?:the\s+)?\d{1,2}(?:st|nd|rd|th)\s+century|\d{4}s|(?:1\d|20)\d\d)\b"
    ),
    "duration": re.compile(rf"\b{_APPROX}{_NUMERAL}[\s-]+{_UNIT}\b", re.IGNORECASE),
    "number": re.compile(rf"(?<![\w.]){_APPROX}{_NUMERAL}(?![\w])", re.IGNORECASE),
    # Capitalised runs, allowing short connectors inside: "Bank of America", "G-20", "U.S."
    "name": re.compile(
        r"\b[A-Z][\w.'’-]*(?:\s+(?:(?:of|the|de|la|von|van|del|du|for)\s+)?[A-Z0-9][\w.'’-]*)*"
    ),
    # A name after a place preposition: "in New Delhi", "at the United Nations".
    "place": re.compile(
        r"\b(?:in|at|near|from|into|outside|inside|across)\s+((?:the\s+)?[A-Z][\w.'’-]*"
        r"(?:\s+(?:(?:of|the|de|del|and)\s+)?[A-Z0-9][\w.'’-]*)*)"
    ),
    "quote": re.compile(r"[“\"‘]([^”\"‘’]{2,80})[”\"’](?!\w)"),
}

# Question type → the span kinds that can answer it, best first.
_QUESTION_TYPES: list[tuple[str, str, tuple[str, ...]]] = [
    ("duration", r"\bhow (?:long|much time)\b", ("duration", "number")),
    (
        "number",
        r"\bhow (?:many|much|often|far|old|big|large|tall|high)\b"
        r"|\bwhat (?:percent|percentage|number|amount|proportion)\b",
        ("number", "duration"),
    ),
    (
        "date",
        r"\bwhen\b|\bwhat (?:year|date|day|month|time|decade|century)\b"
        r"|\bin which (?:year|month)\b",
        ("date", "number"),
    ),
    (
        "place",
        r"\bwhere\b|\b(?:what|which) (?:city|country|place|state|region|town|location|venue"
        r"|continent|nation)\b",
        ("place",),
    ),
    (
        "person",
        r"\bwho(?:m|se)?\b|\b(?:what|which) (?:person|man|woman|official|leader|player|team"
        r"|company|organi[sz]ation|group|minister|president)\b",
        ("name",),
    ),
]
_PLACE_PREPOSITIONS = {"in", "at", "near", "from", "to", "outside", "inside", "across"}
# Capitalised only because they open a sentence: never the start of a name ("However, ...").
_SENTENCE_OPENERS = frozenset(
    """about according after against all also although among another any because before
    besides between both despite during each either even every few following furthermore
    hence however instead later like meanwhile moreover most neither no none not nor now
    one only other others over several since some still such though thus today under unlike
    until upon while within without yet""".split()
)
_NOT_A_NAME_START = STOPWORDS | _SENTENCE_OPENERS


def question_type(question: str) -> tuple[str, tuple[str, ...]]:
    """The kind of answer a question asks for, and the span kinds that can give it."""
    for name, pattern, kinds in _QUESTION_TYPES:
        if re.search(pattern, question, re.IGNORECASE):
            return name, kinds
    if re.search(r"\b(?:say|said|says|call|called|describe[ds]?|quote[ds]?)\b", question, re.I):
        return "statement", ("quote", "name")
    return "other", ("name", "quote", "number", "date")


def is_kind(text: str, span: Span, kind: str) -> bool:
    """Whether `text[span.start:span.end]` lies inside a span of `kind` ("date", "number", ...)."""
    return any(
        m.start() <= span.start and span.end <= m.end() for m in _PATTERNS[kind].finditer(text)
    )


def kind_intervals(text: str, kinds: Sequence[str]) -> list[tuple[int, int]]:
    """Where `text` holds a span of one of `kinds`, as (start, end) character offsets."""
    return [m.span() for kind in kinds for m in _PATTERNS[kind].finditer(text)]


def _head_nouns(question: str) -> set[str]:
    """Stems of the words after what/which: "Which treaty ..." → {"treati"}."""
    found = re.search(r"\b(?:what|which)\s+((?:\w+\s+){0,2}\w+)", question, re.I)
    if not found:
        return set()
    heads = []
    for word in found.group(1).split():
        if word.lower() in _AUXILIARIES:
            break  # "Which treaty did Russia ..." : the head is "treaty", not "Russia"
        if word.lower() not in STOPWORDS:
            heads.append(stem(word))
    return set(heads)


_AUXILIARIES = frozenset(
    "did does do is was were are has have had can could will would should may might".split()
)


_INTERROGATIVE = re.compile(
    r"\bhow (?:long|many|much|often|far|old|big|large)\b|\bwhat (?:year|date|time|day)\b",
    re.IGNORECASE,
)


def question_terms(question: str) -> str:
    """The question without its interrogative phrase: "how long" asks, it is not evidence."""
    return _INTERROGATIVE.sub(" ", question)


class HeuristicReader:
    """Picks the span by question type and by the words the question does not already contain.

    Who → a name, when → a date, how many → a number, how long → a duration, where → a place
    name (preferably after "in", "at", ...). Among spans of the right kind it prefers the one
    nearest to the question's words in the passage, and never one made of question words.
    """

    def __init__(self, *, name: str = "heuristic"):
        self.name = name

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]:
        return [self._best(question, passage) for passage in passages]

    def _best(self, question: str, passage: str) -> Span | None:
        _, kinds = question_type(question)
        question_stems = {stem(w.group()) for w in words(question_terms(question))}
        heads = _head_nouns(question)
        tokens = words(passage)
        anchors = [
            t.start()
            for t in tokens
            if t.group().lower() not in STOPWORDS and stem(t.group()) in question_stems
        ]
        # "How many": the 2 of "March 2", the 2014 of "in 2014" count nothing.
        dates = (
            [m.span() for m in _PATTERNS["date"].finditer(passage)] if kinds[0] == "number" else []
        )
        best: Span | None = None
        for rank, kind in enumerate(kinds):
            for match in _PATTERNS[kind].finditer(passage):
                group = 1 if match.re.groups else 0  # the answer part of the pattern
                start, end = match.start(group), match.end(group)
                leading = _NOT_A_NAME_START if kind in ("name", "place") else STOPWORDS
                start, end = self._trim(passage, start, end, question_stems, leading)
                if end <= start:
                    continue
                if kind in ("name", "place") and _PATTERNS["date"].fullmatch(passage[start:end]):
                    continue  # "March 2" is a date, not a place or a person
                if any(s <= start and end <= e for s, e in dates):
                    continue
                score = self._score(passage, start, end, kind, rank, anchors, heads, question)
                if best is None or score > best.score:
                    best = Span(start, end, score)
        return best

    @staticmethod
    def _trim(
        passage: str,
        start: int,
        end: int,
        question_stems: set[str],
        leading: frozenset[str] = STOPWORDS,
    ) -> tuple[int, int]:
        """Drop question words and the `leading` words (sentence-initial stopwords) before a
        span's first word, and question words after its last."""
        inner = [
            w
            for w in words(passage[start:end])
            # The "s" of a possessive ("Tesla's") is not a word of its own.
            if not (
                w.group() == "s"
                and start + w.start() > 0
                and passage[start + w.start() - 1] in "'’"
            )
        ]
        kept = [w for w in inner if stem(w.group()) not in question_stems]
        if not kept:
            return start, start
        first = next(
            (w for w in inner if w.start() >= kept[0].start() and w.group().lower() not in leading),
            None,
        )
        if first is None:  # only stopwords are left: "It", "The"
            return start, start
        new_start = start + first.start()
        if new_start > start and passage[new_start - 1] in "$£€¥":
            new_start -= 1  # the currency belongs to the amount
        # A span that continues past its last kept word keeps only what is not the question.
        last = kept[-1]
        new_end = start + last.end() if stem(inner[-1].group()) in question_stems else end
        # Sentence punctuation after the last word is not part of the answer.
        while new_end > new_start and passage[new_end - 1] in ".,;:!?":
            if passage[new_start:new_end].count(".") > 1 and passage[new_end - 2].isupper():
                break  # keep the final stop of an abbreviation such as "U.S."
            new_end -= 1
        return new_start, max(new_start, new_end)

    @staticmethod
    def _score(
        passage: str,
        start: int,
        end: int,
        kind: str,
        rank: int,
        anchors: list[int],
        heads: set[str],
        question: str,
    ) -> float:
        score = 1.0 - 0.3 * rank
        if anchors:
            distance = min(abs(a - start) for a in anchors) / 40
            score += 0.5 / (1.0 + distance)
        before = passage[max(0, start - 30) : start].lower().split()
        previous = before[-1] if before else ""
        if kind == "name" and previous in _PLACE_PREPOSITIONS:
            score += 0.4 if question_type(question)[0] == "place" else 0.1
        if kind == "number" and before[-2:] in (["out", "of"], ["of", "the"]):
            score -= 0.3  # "18 out of 20": the count is the first number
        after = {stem(w) for w in re.findall(r"\w+", passage[end : end + 40])[:3]}
        if heads & after:
            score += 0.3  # "New START nuclear treaty" for "Which treaty ..."
        return max(0.0, min(1.0, score / 2.2))
