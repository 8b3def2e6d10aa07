"""Whether two short answers are different values of the same kind: numbers, dates or names.

Two answers conflict only when both are of one kind and their values can be compared and
differ: "120" and "150 homes" do, "18" and "18 out of 20" do not, "Thursday" in an undated
article and "March 2" cannot be compared and so do not.
"""

from __future__ import annotations

import re
from typing import Literal

from qa.terms import normalize_answer

Kind = Literal["number", "date", "name"]

_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_MONTH = re.compile(
    r"\b(" + "|".join(m[:3] for m in _MONTHS) + r")[a-z]*\.?(?:\s+(\d{1,2})(?:st|nd|rd|th)?)?"
    r"(?:,?\s+(\d{4}))?\b",
    re.IGNORECASE,
)
_DAY_MONTH = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(" + "|".join(_MONTHS) + r")\b", re.I
)
_YEAR = re.compile(r"^\s*(?:in\s+)?((?:19|20)\d{2})\s*$")
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_WEEKDAY = re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NAME_WORD = re.compile(r"^[A-Z][\w'’.-]*$")
_NAME_JOINERS = {"of", "the", "de", "van", "von", "al", "bin", "and", "da", "la", "le"}


DateValue = tuple[int | None, int | None, int | None]  # year, month, day


def kind_of(answer: str) -> Kind | None:
    """The kind of a short answer, or None when it is none of those compared."""
    text = answer.strip()
    if not text:
        return None
    if date_value(text) is not None or _WEEKDAY.search(text):
        return "date"
    if number_value(text) is not None:
        return "number"
    tokens = text.split()
    if (
        tokens
        and _NAME_WORD.match(tokens[0])
        and all(_NAME_WORD.match(t) or t.lower() in _NAME_JOINERS for t in tokens)
    ):
        return "name"
    return None


def number_value(text: str) -> float | None:
    """The first number in `text` ("1,200" → 1200, "3.5 million" → 3.5e6, "twelve" → 12)."""
    found = _NUMBER.search(text)
    if found:
        raw = found.group()
        # "1,200" is a thousands separator; "3.5" a decimal point.
        value = float(raw.replace(",", "")) if "," in raw else float(raw)
        after = text[found.end() :].split()
        if after and after[0].lower().strip(".,") in _SCALE:
            value *= _SCALE[after[0].lower().strip(".,")]
        return value
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _NUMBER_WORDS:
            return float(_NUMBER_WORDS[word])
    return None


def date_value(text: str) -> DateValue | None:
    """(year, month, day) of a calendar date in `text`, parts it leaves out None."""
    found = _ISO.search(text)
    if found:
        return int(found.group(1)), int(found.group(2)), int(found.group(3))
    found = _DAY_MONTH.search(text)
    if found:
        after = re.search(r"\b((?:19|20)\d{2})\b", text[found.end() :])
        month = _MONTHS.index(found.group(2).lower()) + 1
        return (int(after.group(1)) if after else None), month, int(found.group(1))
    found = _MONTH.search(text)
    if found and (found.group(2) or found.group(3) or found.group(0).lower() in _MONTHS):
        month = [m[:3] for m in _MONTHS].index(found.group(1).lower()) + 1
        day = int(found.group(2)) if found.group(2) else None
        return (int(found.group(3)) if found.group(3) else None), month, day
    found = _YEAR.match(text)
    if found:
        return int(found.group(1)), None, None
    return None


def _dates_differ(first: DateValue, second: DateValue) -> bool:
    """Different where both say something, and both say something in common."""
    shared = [(a, b) for a, b in zip(first, second, strict=True) if a is not None and b is not None]
    return bool(shared) and any(a != b for a, b in shared)


def differ(first: str, second: str, *, first_date: str = "", second_date: str = "") -> bool:
    """Whether two short answers are different values of the same kind.

    `first_date`/`second_date`: ISO dates that relative answers ("Thursday") resolve to, when
    their articles are dated; a relative date that is not resolved is never a conflict.
    """
    kind = kind_of(first)
    if kind is None or kind != kind_of(second):
        return False
    if kind == "number":
        x, y = number_value(first), number_value(second)
        return x is not None and y is not None and x != y
    if kind == "date":
        a = date_value(first_date) if first_date else date_value(first)
        b = date_value(second_date) if second_date else date_value(second)
        return a is not None and b is not None and _dates_differ(a, b)
    a_words, b_words = normalize_answer(first).split(), normalize_answer(second).split()
    if not a_words or not b_words:
        return False
    # "Blinken" and "Antony Blinken" name the same person.
    return not (set(a_words) <= set(b_words) or set(b_words) <= set(a_words))


def values_in(sentence: str, kind: Kind) -> list[tuple[int, int]]:
    """Where values of `kind` stand in `sentence` (numbers and dates only), as offsets."""
    if kind == "number":
        spans = [(m.start(), m.end()) for m in _NUMBER.finditer(sentence)]
        dates = [(m.start(), m.end()) for m in _MONTH.finditer(sentence) if m.group(2)]
        return [s for s in spans if not any(d[0] <= s[0] < d[1] for d in dates)]
    if kind == "date":
        return [(m.start(), m.end()) for m in _MONTH.finditer(sentence) if m.group(2) or m.group(3)]
    return []
