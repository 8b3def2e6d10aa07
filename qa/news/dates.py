"""Relative dates in news sentences ("on Thursday", "last week", "yesterday", "on March 2"),
resolved against the article's publication date, and questions that ask for the latest state of
things.

News style names days relative to the day of publication: "on Thursday" in a story of Friday
3 March is the Thursday before it, "next Thursday" the one after, and "March 2" without a year
is the March 2 nearest the story. The resolution rules are that convention, written out; they
never guess a date for an undated article.
"""

from __future__ import annotations

import datetime as dt
import re

from qa.dates import iso_date
from qa.types import DateMention

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = ("day", "week", "month", "year")
_NUMBERS = {
    "a": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}

_WEEKDAY = "|".join(_WEEKDAYS)
_COUNT = r"\d{1,3}|" + "|".join(_NUMBERS)
_PATTERN = re.compile(
    rf"""\b(?:
        (?P<today>today|tonight|this\s+morning|this\s+afternoon|this\s+evening)
      | (?P<yesterday>yesterday)
      | (?P<tomorrow>tomorrow)
      | (?P<which>last|next|this|past|coming)\s+(?P<wday>{_WEEKDAY})
      | (?P<which_unit>last|next|this|past|coming)\s+(?P<unit>week|month|year|weekend)
      | (?P<count>{_COUNT})\s+(?P<count_unit>day|week|month|year)s?
        \s+(?P<direction>ago|later|from\s+now)
      | (?P<bare>{_WEEKDAY})(?:['’]s)?
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_MONTH_NAME = (
    "(?:" + "|".join(_MONTHS) + r"|(?:jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?)"
)
# A day of a month without its year: "March 2", "Mar. 2nd", "2 March", "the 2nd of March".
_YEARLESS = re.compile(
    rf"""(?:
        \b(?P<month>{_MONTH_NAME})\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b
      | \b(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month2>{_MONTH_NAME})(?![a-z])
    )(?!,?\s+\d{{4}}\b)""",
    re.IGNORECASE | re.VERBOSE,
)
# A weekday named in a sentence about what will happen is the next one, not the last one.
_FUTURE = re.compile(
    r"\b(?:will|shall|is\s+to|are\s+to|to\s+be|scheduled|expected|plans?\s+to|due\s+to|"
    r"set\s+to|going\s+to|upcoming)\b",
    re.IGNORECASE,
)
_LATEST = re.compile(
    r"\b(?:latest|most\s+recent(?:ly)?|newest|now|currently|current|today|so\s+far|"
    r"as\s+of|to\s+date|still)\b",
    re.IGNORECASE,
)


def asks_for_latest(question: str) -> bool:
    """Whether `question` asks for the latest state ("What is the latest death toll?")."""
    return bool(_LATEST.search(question))


def _parse(published: str) -> dt.date | None:
    found = iso_date(published)
    return dt.date.fromisoformat(found) if found else None


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return dt.date(day.year + month // 12, month % 12 + 1, 1)


def _unit_range(anchor: dt.date, unit: str, shift: int) -> tuple[dt.date, dt.date]:
    """The calendar `unit` (week from Monday, month, year) `shift` units from `anchor`'s."""
    if unit == "week":
        first = anchor - dt.timedelta(days=anchor.weekday()) + dt.timedelta(weeks=shift)
        return first, first + dt.timedelta(days=6)
    if unit == "weekend":
        saturday = anchor + dt.timedelta(days=5 - anchor.weekday()) + dt.timedelta(weeks=shift)
        return saturday, saturday + dt.timedelta(days=1)
    if unit == "month":
        first = _add_months(anchor.replace(day=1), shift)
        return first, _add_months(first, 1) - dt.timedelta(days=1)
    year = anchor.year + shift
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def _shift(anchor: dt.date, unit: str, count: int) -> dt.date:
    if unit == "day":
        return anchor + dt.timedelta(days=count)
    if unit == "week":
        return anchor + dt.timedelta(weeks=count)
    months = count if unit == "month" else 12 * count
    moved = _add_months(anchor.replace(day=1), months)
    following = _add_months(moved, 1)
    return moved.replace(day=min(anchor.day, (following - moved).days))


def _weekday(anchor: dt.date, name: str, which: str, future: bool) -> dt.date:
    """The weekday `name` relative to `anchor`: "last"/"past" and a bare name in a sentence
    about the past go back (a bare name may be the day itself), "next"/"coming" and a bare
    name in a sentence about the future go forward; "this" is the one in anchor's week."""
    target = _WEEKDAYS.index(name.lower())
    if which == "this":
        return anchor - dt.timedelta(days=anchor.weekday()) + dt.timedelta(days=target)
    if which in ("next", "coming") or (which == "" and future):
        ahead = (target - anchor.weekday()) % 7
        return anchor + dt.timedelta(days=ahead or 7)
    back = (anchor.weekday() - target) % 7
    if which in ("last", "past") and back == 0:
        back = 7
    return anchor - dt.timedelta(days=back)


def _resolve(found: re.Match[str], anchor: dt.date, future: bool) -> tuple[dt.date, dt.date]:
    groups = found.groupdict()
    if groups["today"]:
        return anchor, anchor
    if groups["yesterday"]:
        day = anchor - dt.timedelta(days=1)
        return day, day
    if groups["tomorrow"]:
        day = anchor + dt.timedelta(days=1)
        return day, day
    if groups["wday"] or groups["bare"]:
        which = (groups["which"] or "").lower()
        day = _weekday(anchor, groups["wday"] or groups["bare"], which, future)
        return day, day
    if groups["unit"]:
        which = groups["which_unit"].lower()
        shift = {"last": -1, "past": -1, "next": 1, "coming": 1}.get(which, 0)
        return _unit_range(anchor, groups["unit"].lower(), shift)
    count_text = groups["count"].lower()
    count = int(count_text) if count_text.isdigit() else _NUMBERS[count_text]
    sign = -1 if groups["direction"].lower() == "ago" else 1
    day = _shift(anchor, groups["count_unit"].lower(), sign * count)
    return day, day


def _nearest(anchor: dt.date, month: int, day: int) -> dt.date | None:
    """The `month`/`day` nearest `anchor` (the earlier one on a tie); None if no such day."""
    days = []
    for year in (anchor.year - 1, anchor.year, anchor.year + 1):
        try:
            days.append(dt.date(year, month, day))
        except ValueError:  # 30 February, or 29 February outside a leap year
            continue
    return min(days, key=lambda d: (abs((d - anchor).days), d), default=None)


def _yearless(sentence: str, anchor: dt.date | None, offset: int) -> list[DateMention]:
    mentions = []
    for found in _YEARLESS.finditer(sentence):
        written = found.group("month") or found.group("month2")
        if written == "may":  # the verb: "they may 3 times"
            continue
        name = written.lower().rstrip(".")
        month = next(n for n, m in enumerate(_MONTHS, start=1) if m.startswith(name[:3]))
        day = int(found.group("day") or found.group("day2"))
        start, end = offset + found.start(), offset + found.end()
        if anchor is None:
            note = "the article has no date, so its year is not known"
            mentions.append(DateMention(found.group(), start, end, None, None, note))
            continue
        resolved = _nearest(anchor, month, day)
        if resolved is not None:
            iso = resolved.isoformat()
            mentions.append(DateMention(found.group(), start, end, iso, iso))
    return mentions


def relative_dates(sentence: str, published: str, offset: int = 0) -> list[DateMention]:
    """The relative dates in `sentence`, resolved against the article's `published` date.

    Args:
        sentence: the quoted sentence.
        published: the article's ISO publication date, or "" when it has none.
        offset: where `sentence` starts in the article, so that the mentions' `start`/`end`
            are article offsets like every other offset of a citation.
    """
    anchor = _parse(published)
    future = bool(_FUTURE.search(sentence))
    mentions = []
    for found in _PATTERN.finditer(sentence):
        text = found.group()
        start, end = offset + found.start(), offset + found.end()
        if anchor is None:
            note = "the article has no date, so this is not resolved"
            mentions.append(DateMention(text, start, end, None, None, note))
            continue
        first, last = _resolve(found, anchor, future)
        mentions.append(DateMention(text, start, end, first.isoformat(), last.isoformat()))
    return sorted([*mentions, *_yearless(sentence, anchor, offset)], key=lambda m: m.start)


def format_day(value: str) -> str:
    """ "2023-03-02" → "2 March 2023" (anything else as it is)."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value
    return f"{day.day} {day:%B %Y}"


def describe(mention: DateMention) -> str:
    """ "Thursday = 2 March 2023", "last week = 20–26 February 2023", or the undated note."""
    if mention.date is None or mention.until is None:
        return f"{mention.text}: {mention.note}" if mention.note else mention.text
    if mention.date == mention.until:
        return f"{mention.text} = {format_day(mention.date)}"
    return f"{mention.text} = {format_day(mention.date)} – {format_day(mention.until)}"
