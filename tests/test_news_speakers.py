"""Speakers of reported speech, found by the real spaCy pipeline (en_core_web_sm)."""

from __future__ import annotations

import pytest

from qa.news.speakers import SpeakerFinder, asks_who_said, may_report_speech


@pytest.fixture(scope="module")
def finder() -> SpeakerFinder:
    found = SpeakerFinder()
    found.warm_up()
    return found


@pytest.mark.parametrize(
    ("sentence", "name", "verb"),
    [
        ("Blinken said the talks were brief.", "Blinken", "said"),
        (
            "“Inflation remains too high,” Governor Elena Marsh told reporters.",
            "Elena Marsh",
            "told",
        ),
        (
            "According to U.S. officials, both parties conversed for around 10 minutes.",
            "U.S. officials",
            "according to",
        ),
        (
            "Russian Foreign Ministry spokesperson Maria Zakharova confirmed that Blinken had "
            "requested the meeting.",
            "Maria Zakharova",
            "confirmed",
        ),
        (
            "Blinken later spoke of the discussion, saying that he had asked Lavrov to end it.",
            "Blinken",
            "saying",
        ),
    ],
)
def test_speaker_named_in_the_sentence(
    finder: SpeakerFinder, sentence: str, name: str, verb: str
) -> None:
    speaker = finder.find(sentence, offset=10)
    assert speaker is not None
    assert (speaker.name, speaker.verb) == (name, verb)
    assert sentence[speaker.start - 10 : speaker.end - 10] == name
    assert (speaker.mention_start, speaker.mention_end) == (speaker.start, speaker.end)


def test_a_pronoun_is_resolved_to_the_person_named_before(finder: SpeakerFinder) -> None:
    text = (
        "Fire chief Dana Whitfield led the crews. "
        "“We have never seen a fire move this fast,” she said."
    )
    start = text.index("“")
    speaker = finder.find(text[start:], offset=start, before=text[:start])
    assert speaker is not None
    assert (
        speaker.name == "Dana Whitfield" and text[speaker.start : speaker.end] == "Dana Whitfield"
    )
    assert speaker.mention == "she"
    assert text[speaker.mention_start : speaker.mention_end] == "she"


def test_a_quotation_alone_continues_the_speech_before_it(finder: SpeakerFinder) -> None:
    text = (
        "Blinken said he reiterated U.S. support for Ukraine. "
        "“President Putin has demonstrated zero interest in engaging, saying there is nothing "
        "to talk about.”"
    )
    start = text.index("“")
    speaker = finder.find(text[start:], offset=start, before=text[:start])
    assert speaker is not None and speaker.name == "Blinken"  # not Putin, who is quoted
    assert text[speaker.start : speaker.end] == "Blinken"


@pytest.mark.parametrize(
    "sentence",
    [
        "The wildfire destroyed 120 homes on Thursday.",
        "Russian officials did not comment on the talks.",
        "Reporting by AP News pointed out that lines of communication are open.",
    ],
)
def test_no_speaker(finder: SpeakerFinder, sentence: str) -> None:
    assert finder.find(sentence) is None


def test_sentences_without_a_cue_are_not_parsed() -> None:
    finder = SpeakerFinder(model="no-such-model")  # would fail if it were loaded
    assert not may_report_speech("The wildfire destroyed 120 homes.")
    assert finder.find_all([("The wildfire destroyed 120 homes.", 0, "")]) == [None]


@pytest.mark.parametrize(
    ("question", "who_said"),
    [
        ("Who said inflation remains too high?", True),
        ("Who warned that the fire was spreading?", True),
        ("According to whom did the parties talk?", True),
        ("Who met Lavrov?", False),
        ("What did Blinken say?", False),
    ],
)
def test_who_said_questions(question: str, who_said: bool) -> None:
    assert asks_who_said(question) is who_said
