"""Whether two short answers are different values of one kind."""

from __future__ import annotations

import pytest

from qa.news.conflicts import differ, kind_of, values_in


@pytest.mark.parametrize(
    ("first", "second", "differs"),
    [
        ("120", "150 homes", True),
        ("18", "18 out of 20", False),
        ("3.5 million", "3,500,000", False),
        ("twelve", "12", False),
        ("March 2", "January 2022", True),
        ("March 2", "March 2, 2023", False),
        ("Thursday", "March 2", False),  # a weekday alone cannot be compared
        ("Blinken", "Antony Blinken", False),
        ("Blinken", "Lavrov", True),
        ("120", "Lavrov", False),  # different kinds are not a disagreement
        ("the bridge", "the tunnel", False),  # not a number, date or name
    ],
)
def test_differ(first: str, second: str, differs: bool) -> None:
    assert differ(first, second) is differs


def test_resolved_relative_dates_are_compared() -> None:
    assert not differ("Thursday", "March 2", first_date="2023-03-02")
    assert differ("Thursday", "March 2", first_date="2023-03-09")


def test_kinds_and_values() -> None:
    assert (kind_of("150"), kind_of("March 2"), kind_of("Dana Whitfield")) == (
        "number",
        "date",
        "name",
    )
    sentence = "The fire destroyed 150 homes on March 3, 2023."
    assert [sentence[s:e] for s, e in values_in(sentence, "number")] == ["150"]
    assert [sentence[s:e] for s, e in values_in(sentence, "date")] == ["March 3, 2023"]
