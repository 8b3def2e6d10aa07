"""Relative dates resolved against the publication date; "latest" questions."""

from __future__ import annotations

import pytest

from qa.news.dates import asks_for_latest, describe, relative_dates

FRIDAY = "2023-03-03"  # a Friday


@pytest.mark.parametrize(
    ("sentence", "text", "first", "last"),
    [
        ("They met on Thursday in New Delhi.", "Thursday", "2023-03-02", "2023-03-02"),
        ("The talks ended on Friday.", "Friday", "2023-03-03", "2023-03-03"),
        ("They spoke last Friday.", "last Friday", "2023-02-24", "2023-02-24"),
        ("They will meet again on Monday.", "Monday", "2023-03-06", "2023-03-06"),
        ("The vote is next Tuesday.", "next Tuesday", "2023-03-07", "2023-03-07"),
        ("The ministry said yesterday that it disagreed.", "yesterday", "2023-03-02", "2023-03-02"),
        ("Prices rose today.", "today", "2023-03-03", "2023-03-03"),
        ("The bank warned last week.", "last week", "2023-02-20", "2023-02-26"),
        ("Sales fell last month.", "last month", "2023-02-01", "2023-02-28"),
        ("The plant opened three days ago.", "three days ago", "2023-02-28", "2023-02-28"),
        ("The plant opened two weeks ago.", "two weeks ago", "2023-02-17", "2023-02-17"),
        ("Turnout fell sharply last year.", "last year", "2022-01-01", "2022-12-31"),
        # A day without its year is the one nearest the story, before or after it.
        (
            "The United States and Russia on March 2 held talks.",
            "March 2",
            "2023-03-02",
            "2023-03-02",
        ),
        (
            "The strike began on the 28th of December.",
            "28th of December",
            "2022-12-28",
            "2022-12-28",
        ),
        ("The summit opens on Mar. 14.", "Mar. 14", "2023-03-14", "2023-03-14"),
        ("Talks resume on 9 April.", "9 April", "2023-04-09", "2023-04-09"),
    ],
)
def test_relative_dates_resolve_against_the_publication_date(
    sentence: str, text: str, first: str, last: str
) -> None:
    (mention,) = relative_dates(sentence, FRIDAY, offset=100)
    assert (mention.text, mention.date, mention.until) == (text, first, last)
    assert sentence[mention.start - 100 : mention.end - 100] == text


def test_an_undated_article_is_not_guessed() -> None:
    (mention,) = relative_dates("They met on Thursday.", "")
    assert mention.date is None and mention.until is None
    assert "no date" in mention.note
    assert describe(mention).startswith("Thursday: the article has no date")


def test_descriptions() -> None:
    day, week = relative_dates("On Thursday, after last week's talks, they met.", FRIDAY)
    assert describe(day) == "Thursday = 2 March 2023"
    assert describe(week) == "last week = 20 February 2023 – 26 February 2023"


def test_sentences_without_relative_dates() -> None:
    assert relative_dates("The United States and Russia on March 2, 2023 held talks.", FRIDAY) == []
    assert relative_dates("They met in March 2022, and may 3 times more.", FRIDAY) == []


def test_an_undated_article_leaves_the_year_unknown() -> None:
    (mention,) = relative_dates("They met on March 2.", "")
    assert (mention.text, mention.date) == ("March 2", None)
    assert describe(mention) == "March 2: the article has no date, so its year is not known"


@pytest.mark.parametrize(
    ("question", "latest"),
    [
        ("What is the latest death toll?", True),
        ("How full is the reservoir now?", True),
        ("What is the most recent estimate?", True),
        ("How many homes did the wildfire destroy?", False),
        ("Where did Blinken and Lavrov meet?", False),
    ],
)
def test_questions_about_the_latest_state(question: str, latest: bool) -> None:
    assert asks_for_latest(question) is latest
