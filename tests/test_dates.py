"""The one ISO date parser, used by the search filters, the chat's settings and ingestion."""

from __future__ import annotations

import datetime as dt

import pytest

from qa.dates import iso_date, parse_date


def test_parse_date_accepts_dates_datetimes_and_nothing() -> None:
    assert parse_date("2023-03-02", "x") == "2023-03-02"
    assert parse_date(" 2023-03-02 ", "x") == "2023-03-02"
    assert parse_date("2023-03-02T10:30:00", "x") == "2023-03-02"
    assert parse_date(dt.date(2023, 3, 2), "x") == "2023-03-02"
    assert parse_date(dt.datetime(2023, 3, 2, 23, 59), "x") == "2023-03-02"
    assert parse_date(None, "x") is None
    assert parse_date("", "x") is None


@pytest.mark.parametrize("value", ["2023-03-021", "2023-03-02 and more", "2023-03-02xyz", " "])
def test_parse_date_rejects_trailing_garbage(value: str) -> None:
    with pytest.raises(ValueError, match="published_after"):
        parse_date(value, "published_after")


def test_iso_date_keeps_the_written_calendar_date() -> None:
    assert iso_date("2023-03-02T23:30:00-05:00") == "2023-03-02"
    assert iso_date("2023-03-02 10:30") == "2023-03-02"
    assert iso_date(dt.datetime(2023, 3, 2, tzinfo=dt.UTC)) == "2023-03-02"


@pytest.mark.parametrize("value", ["March 2, 2023", "2023-02-30", "", None, 20230302, ["x"]])
def test_iso_date_is_none_for_anything_else(value: object) -> None:
    assert iso_date(value) is None
