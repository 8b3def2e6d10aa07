"""Dates as the index stores them: ISO "YYYY-MM-DD" strings."""

from __future__ import annotations

import datetime as dt


def iso_date(value: object) -> str | None:
    """`value` (a date, a datetime or an ISO 8601 string) as "YYYY-MM-DD"; None if it is not one.

    A datetime keeps the calendar date it was written with, whatever its time zone.
    """
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        return None


def parse_date(value: str | dt.date | None, name: str) -> str | None:
    """An ISO date string for a filter bound ("" and None: no bound), or a ValueError naming
    the bad argument."""
    if value is None or value == "":
        return None
    found = iso_date(value)
    if found is None:
        raise ValueError(f"{name} must be a date like 2023-03-02, not {value!r}")
    return found


def utc_timestamp() -> str:
    """Now, in UTC, to the second: "2026-11-23T16:26:51+00:00"."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
