"""Follow-up resolution: short questions that lean on the previous one get its subject."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.conversation import content_words, is_follow_up, resolve_follow_up

MEETING = "Where did Blinken and Lavrov meet?"


@pytest.mark.parametrize(
    ("follow_up", "resolved"),
    [
        ("and when was that?", "and when was that? Blinken Lavrov meet"),
        ("And when was that?", "And when was that? Blinken Lavrov meet"),
        ("who said it?", "who said it? Blinken Lavrov meet"),
        ("where?", "where? Blinken Lavrov meet"),
        ("When?", "When? Blinken Lavrov meet"),
        ("why did they do that?", "why did they do that? Blinken Lavrov meet"),
        ("what about Modi?", "what about Modi? Blinken Lavrov meet"),
        ("How long did it last?", "How long did it last? Blinken Lavrov meet"),
        ("  and when was that?  ", "and when was that? Blinken Lavrov meet"),
    ],
)
def test_follow_up_gets_the_previous_subject(follow_up: str, resolved: str) -> None:
    assert resolve_follow_up(follow_up, [MEETING]) == resolved


@pytest.mark.parametrize(
    "question",
    [
        "When did Blinken and Lavrov meet?",
        "How much did the Lumbridge bridge repair cost?",
        "What is the boiling point of mercury?",
        "Who is Sergey Lavrov?",
        "Where is New Delhi?",
        "What did Modi tell the G-20 attendees about global divisions?",
    ],
)
def test_self_contained_question_is_unchanged(question: str) -> None:
    assert not is_follow_up(question)
    assert resolve_follow_up(question, [MEETING]) == question


def test_without_a_previous_question_nothing_changes() -> None:
    assert resolve_follow_up("and when was that?", []) == "and when was that?"
    assert resolve_follow_up("and when was that?", ["", "   "]) == "and when was that?"


def test_the_most_recent_full_question_is_the_subject() -> None:
    previous = [MEETING, "How much did the Lumbridge bridge repair cost?"]
    assert resolve_follow_up("and when was that?", previous) == (
        "and when was that? Lumbridge bridge repair cost"
    )


def test_follow_ups_in_the_history_are_passed_over() -> None:
    # As asked: the earlier follow-up has no subject of its own.
    asked = [MEETING, "and when was that?"]
    assert resolve_follow_up("who said it?", asked) == "who said it? Blinken Lavrov meet"
    # As resolved: the resolved follow-up is a full question and carries the same subject.
    resolved = [MEETING, resolve_follow_up("and when was that?", [MEETING])]
    assert resolve_follow_up("who said it?", resolved) == "who said it? Blinken Lavrov meet"


def test_words_already_in_the_follow_up_are_not_repeated() -> None:
    assert resolve_follow_up("what about Lavrov?", [MEETING]) == "what about Lavrov? Blinken meet"
    assert resolve_follow_up("when did they meet?", ["Did Blinken meet Lavrov?"]) == (
        "when did they meet? Blinken Lavrov"
    )


def test_a_follow_up_whose_subject_is_all_there_is_unchanged() -> None:
    assert resolve_follow_up("what about it?", ["What about it?"]) == "what about it?"


def test_content_words_keep_case_and_order_without_repeats() -> None:
    assert content_words("Where did Blinken and Lavrov meet? Blinken!") == [
        "Blinken",
        "Lavrov",
        "meet",
    ]
    assert content_words("U.S. officials’ G-20 talks in 2023") == [
        "officials",
        "G-20",
        "talks",
        "2023",
    ]
    assert content_words("") == []


def test_is_follow_up_edges() -> None:
    assert not is_follow_up("")
    assert not is_follow_up("?!")
    assert is_follow_up("and then?")
    assert is_follow_up("Is that so?")
    # Long questions stand alone even with an anaphor.
    assert not is_follow_up("Did it rain in New Delhi during the G-20 foreign ministers meeting?")


@given(st.text(max_size=200), st.lists(st.text(max_size=200), max_size=5))
def test_resolution_only_ever_appends(question: str, previous: list[str]) -> None:
    resolved = resolve_follow_up(question, previous)
    assert resolved == question or resolved.startswith(question.strip())
    # Resolving is stable: a resolved question is not resolved again.
    assert resolve_follow_up(resolved, previous) == resolved or resolved == question
