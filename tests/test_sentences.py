"""Sentence boundaries: exact offsets, no lost text, and the abbreviation/quotation rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.cleaning import clean_text
from qa.ingest import load_corpus
from qa.sentences import split_sentences

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

# Every property below holds for any text; no deadline, since the machine may be busy.
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_PIECES = st.sampled_from(
    [
        "word",
        "Blinken",
        "Lavrov",
        "U.S.",
        "Jan.",
        "p.m.",
        "3.5",
        "18",
        "Mr.",
        "café",
        "naïve",
        "São",
        "Zürich",
        "e\u0301",  # e + combining acute accent
        "😀",
        "🇺🇦",
        "👩‍👩‍👧",
        "Ωμέγα",
        "中文",
        ".",
        "!",
        "?",
        "…",
        ",",
        ";",
        ":",
        "-",
        "—",
        "“",
        "”",
        "‘",
        "’",
        "(",
        ")",
        "[",
        "]",
        '"',
        "'",
        " ",
        " ",
        "  ",
        "\n",
        "\n\n",
        " \n ",
        "\t",
        "\xa0",
    ]
)
# Printable characters (and whitespace) of any script; control characters are left out, since
# cleaned article text never contains them.
_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), whitelist_characters="\n\t ")
TEXTS = st.lists(st.one_of(_PIECES, _PIECES, st.text(_CHARS, max_size=6)), max_size=80).map("".join)


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def check_spans(text: str, spans: list[tuple[int, int]]) -> None:
    """The invariants every result of `split_sentences` must satisfy."""
    covered = [False] * len(text)
    previous_end = 0
    for start, end in spans:
        assert isinstance(start, int) and isinstance(end, int)
        assert 0 <= start < end <= len(text), (start, end, len(text))
        piece = text[start:end]
        assert piece == piece.strip(), f"untrimmed sentence {piece!r}"
        assert "\n" not in piece, f"sentence crosses a line break: {piece!r}"
        assert start >= previous_end, f"sentences out of order or overlapping: {spans}"
        previous_end = end
        covered[start:end] = [True] * (end - start)
    lost = [(i, c) for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not lost, f"characters outside every sentence: {lost}"


# --- properties ----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(TEXTS)
def test_spans_are_trimmed_ordered_slices_that_cover_all_text(text: str) -> None:
    check_spans(text, split_sentences(text))


@PROPERTY_SETTINGS
@given(st.lists(TEXTS, min_size=1, max_size=4))
def test_every_line_break_ends_a_sentence(lines: list[str]) -> None:
    text = "\n".join(lines)
    spans = split_sentences(text)
    check_spans(text, spans)
    # Splitting line by line gives the same sentences, shifted by each line's offset.
    expected = []
    offset = 0
    for line in text.split("\n"):
        expected.extend((offset + s, offset + e) for s, e in split_sentences(line))
        offset += len(line) + 1
    assert spans == expected


@PROPERTY_SETTINGS
@given(TEXTS)
def test_properties_hold_on_cleaned_text(text: str) -> None:
    cleaned = clean_text(text)
    check_spans(cleaned, split_sentences(cleaned))


@pytest.mark.parametrize("text", ["", " ", "\n", "\n\n \n", "\t \xa0 "])
def test_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


def test_offsets_are_in_characters_after_emoji_and_accents() -> None:
    text = "Café 😀🇺🇦 opened in Zürich. Señora Núñez left 👩‍👩‍👧. Then he spoke."
    assert sentences(text) == [
        "Café 😀🇺🇦 opened in Zürich.",
        "Señora Núñez left 👩‍👩‍👧.",
        "Then he spoke.",
    ]
    check_spans(text, split_sentences(text))


# --- examples ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "U.S. Secretary of State Antony Blinken met Lavrov.",
            ["U.S. Secretary of State Antony Blinken met Lavrov."],
        ),
        (
            "The talks on Jan. 5 were short. They ended.",
            ["The talks on Jan. 5 were short.", "They ended."],
        ),
        (
            "The meeting began at 3 p.m. on Thursday. It ended soon.",
            ["The meeting began at 3 p.m. on Thursday.", "It ended soon."],
        ),
        (
            "They met in Washington, D.C. and in Paris.",
            ["They met in Washington, D.C. and in Paris."],
        ),
        (
            "Growth was 3.5 percent last year. It fell to 2.1 percent.",
            ["Growth was 3.5 percent last year.", "It fell to 2.1 percent."],
        ),
        (
            "Did they agree? No! They left.",
            ["Did they agree?", "No!", "They left."],
        ),
    ],
)
def test_abbreviations_numbers_and_sentence_ends(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "He said: “End this war. Engage in diplomacy.” Lavrov disagreed.",
            ["He said: “End this war. Engage in diplomacy.”", "Lavrov disagreed."],
        ),
        (
            "“End this war. Engage in diplomacy,” he said. Then he left.",
            ["“End this war. Engage in diplomacy,” he said.", "Then he left."],
        ),
        (
            'He said "Stop. Now." Then he left.',
            ['He said "Stop. Now."', "Then he left."],
        ),
        (
            "(It was brief. Very.) Then he left.",
            ["(It was brief. Very.)", "Then he left."],
        ),
        (
            "The talk (brief. Very brief.) ended. Then he left.",
            ["The talk (brief. Very brief.) ended.", "Then he left."],
        ),
        (
            "He told ABC News, “[The artillery] is nonstop. All day and night.” Then he left.",
            ["He told ABC News, “[The artillery] is nonstop. All day and night.”", "Then he left."],
        ),
    ],
)
def test_a_quotation_or_parenthesis_stays_in_one_sentence(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_an_unclosed_quotation_does_not_swallow_the_next_line() -> None:
    text = "He said “this. And that.\nNext line. Another."
    assert sentences(text) == ["He said “this. And that.", "Next line.", "Another."]


def test_caption_without_full_stop_is_its_own_sentence() -> None:
    text = (
        "U.S. Secretary of State Antony Blinken speaks in New Delhi | Image by Reuters\n\n"
        "The talks were short. They ended without a deal."
    )
    assert sentences(text) == [
        "U.S. Secretary of State Antony Blinken speaks in New Delhi | Image by Reuters",
        "The talks were short.",
        "They ended without a deal.",
    ]


def test_heading_and_list_items_end_at_line_breaks() -> None:
    text = "Blinken Meets With Russian Counterpart\n- first point\n- second point\nBody text."
    assert sentences(text) == [
        "Blinken Meets With Russian Counterpart",
        "- first point",
        "- second point",
        "Body text.",
    ]


def test_single_quotation_with_an_apostrophe_stays_in_one_sentence() -> None:
    text = "He said ‘Don’t go. Stay here.’ Then he left."
    assert sentences(text) == ["He said ‘Don’t go. Stay here.’", "Then he left."]


@pytest.mark.parametrize("title", ["Mr.", "Dr.", "Sen.", "Gov."])
def test_title_at_the_start_of_a_later_sentence_is_not_a_sentence(title: str) -> None:
    text = f"He arrived. {title} Jones left the room."
    assert sentences(text) == ["He arrived.", f"{title} Jones left the room."]


# --- the real articles -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def articles():
    result = load_corpus(CORPUS)
    assert len(result.articles) == len(list(CORPUS.glob("*.txt"))) == 2
    return result.articles


def test_corpus_sentences_are_exact_slices(articles) -> None:
    for article in articles:
        spans = split_sentences(article.text)
        assert len(spans) > 10
        check_spans(article.text, spans)


def test_corpus_articles_cleaned_from_the_raw_files_split_the_same() -> None:
    for path in sorted(CORPUS.glob("*.txt")):
        cleaned = clean_text(path.read_text(encoding="utf-8"))
        check_spans(cleaned, split_sentences(cleaned))


def _span_of(text: str, first: str, last: str) -> tuple[int, int]:
    start = text.index(first)
    return start, text.index(last, start) + len(last)


def test_corpus_sentence_with_abbreviation_and_nbsp_is_one_sentence(articles) -> None:
    wanted = (
        "According to U.S. officials, both parties conversed for around 10 minutes on the "
        "sidelines of the G-20 conference held in New Delhi."
    )
    article = next(a for a in articles if "According to U.S. officials" in a.text)
    start, end = _span_of(article.text, "According to U.S. officials", "held in New Delhi.")
    # The article has a non-breaking space inside the sentence: compare with its own text.
    assert "\xa0" in article.text[start:end]
    assert article.text[start:end].replace("\xa0", " ") == wanted
    assert (start, end) in split_sentences(article.text)


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("U.S. Secretary of State Antony Blinken met with", "summit in New Delhi."),
        ("Yet Blinken noted, per AP News", "the new territorial reality.’”"),
        ("A former U.S. Marine fighting in Bakhmut", "All day and night.”"),
        ("Blinken and Lavrov last met in person", "in January 2022."),
        ("He emphasized that 18 out of 20 nations", "adversely impacted by the conflict."),
    ],
)
def test_corpus_sentences_with_abbreviations_and_quotations(articles, first, last) -> None:
    article = next(a for a in articles if first in a.text)
    assert _span_of(article.text, first, last) in split_sentences(article.text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["He left.", "Dr. Jones", "U.S.", "Café", "naïve", "日本語。", "🇺🇦", "“Quote.”", "3%"]
        )
        | st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
        max_size=25,
    ).map(" ".join)
)
def test_sentence_offsets_are_those_of_blingfires_own_wrapper(line: str) -> None:
    import blingfire

    from qa.sentences import _sentence_offsets

    if line.strip():
        assert _sentence_offsets(line) == blingfire.text_to_sentences_and_offsets(line)[1]
