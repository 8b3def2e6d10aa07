"""The answerer: verbatim sentences, exact citations, corroboration, and honest "no answer"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.answering import (
    ANSWERABILITY_FEATURES,
    FEATURES,
    AnswerModel,
    Candidate,
    Linear,
    answerability_features,
    answers_of_the_asked_kind,
    ranked,
    reader_features,
)
from qa.chunking import Chunker
from qa.indexing import build_index
from qa.service import Assistant
from qa.store import IndexReader
from qa.terms import normalize_answer
from qa.types import Answer
from tests.conftest import FakeEmbedder


# Sentence overlap with the question decides; no dependence on real embeddings.
def only(feature: str, features: tuple[str, ...], bias: float = 0.0) -> Linear:
    return Linear(tuple(8.0 if name == feature else 0.0 for name in features), bias)


OVERLAP_ONLY = AnswerModel(
    ranker=only("overlap", FEATURES),
    answerable=only("best_overlap", ANSWERABILITY_FEATURES, -4.0),
    threshold=0.5,
)

ARTICLES = {
    "wire.md": (
        "---\ntitle: Bridge reopens in Lumbridge\nsource: Example Wire\n"
        "published: 2023-03-09\nurl: https://example.com/bridge\n---\n"
        "The Lumbridge bridge reopened on Tuesday after repairs costing 4.2 million pounds.\n\n"
        "Engineers from Varrock worked on the bridge for eleven weeks."
    ),
    "post.md": (
        "---\ntitle: Lumbridge celebrates its bridge\nsource: Daily Post\n"
        "published: 2023-03-10\n---\n"
        "Residents gathered as the bridge reopened. The repairs were carried out by engineers "
        "from Varrock.\n\nThe mayor thanked the council."
    ),
    "other.txt": "Harbour news\n\nFishing boats returned early because of the storm.",
}


def assert_citations_are_exact(answer: Answer, reader: IndexReader) -> None:
    for citation in answer.citations:
        text = reader.article(citation.article_id).text
        assert text[citation.start : citation.end] == citation.sentence
        assert citation.start <= citation.span_start <= citation.span_end <= citation.end
    if answer.found:
        first = answer.citations[0]
        text = reader.article(first.article_id).text
        assert first.sentence == answer.sentence
        assert text[first.span_start : first.span_end] == answer.text


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("answering")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    embedder = FakeEmbedder()
    chunker = Chunker(embedder.count_tokens, chunk_tokens=40, overlap_tokens=0)
    build_index(corpus, root / "index", embedder, chunker)
    return Assistant(IndexReader.open(root / "index"), embedder, answer_model=OVERLAP_ONLY)


def test_the_answer_is_a_verbatim_sentence_with_a_short_span(assistant: Assistant) -> None:
    answer = assistant.ask("How long did the engineers from Varrock work on the bridge?")
    assert answer.found
    assert answer.sentence == "Engineers from Varrock worked on the bridge for eleven weeks."
    assert answer.text == "eleven weeks"
    assert 0 <= answer.score <= 1
    assert_citations_are_exact(answer, assistant._reader)


def test_articles_reporting_the_same_answer_are_all_cited(assistant: Assistant) -> None:
    answer = assistant.ask("Where were the engineers who repaired the bridge from?")
    assert answer.found and answer.text == "Varrock"
    assert sorted(c.article_id for c in answer.citations) == ["post.md", "wire.md"]
    assert answer.sources_agreeing == 2
    by_id = {c.article_id: c for c in answer.citations}
    assert (by_id["wire.md"].source, by_id["wire.md"].url) == (
        "Example Wire",
        "https://example.com/bridge",
    )
    post = by_id["post.md"]
    assert post.sentence[post.span_start - post.start : post.span_end - post.start] == "Varrock"
    assert_citations_are_exact(answer, assistant._reader)


def test_a_question_the_articles_cannot_answer_is_declined(assistant: Assistant) -> None:
    answer = assistant.ask("What is the boiling point of mercury?")
    assert not answer.found
    assert (answer.text, answer.sentence, answer.citations) == ("", "", [])
    assert answer.related, "the closest passages are still returned"
    assert answer.score < OVERLAP_ONLY.threshold


def test_filters_reach_the_answerer(assistant: Assistant) -> None:
    answer = assistant.ask("Who carried out the repairs?", source="daily post")
    assert {c.article_id for c in answer.citations} <= {"post.md"}
    assert all(h.source == "Daily Post" for h in answer.related)


def test_to_dict_carries_everything(assistant: Assistant) -> None:
    data = assistant.ask("How much did the repairs cost?").to_dict()
    assert set(data) == {
        "question", "found", "text", "sentence", "score", "citations", "related",
        "sources_agreeing", "reader", "as_of", "disagreements", "independent_reports",
        "corroboration",
    }  # fmt: skip
    assert set(data["citations"][0]) == {
        "article_id", "title", "source", "url", "published", "sentence", "start", "end",
        "span_start", "span_end", "score", "dates", "speaker", "report",
    }  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(question=st.text(max_size=80))
def test_any_question_gives_exact_citations_and_never_raises(
    assistant: Assistant, question: str
) -> None:
    answer = assistant.ask(question)
    assert isinstance(answer.found, bool)
    assert_citations_are_exact(answer, assistant._reader)


def test_answer_model_round_trips_and_checks_its_features() -> None:
    default = AnswerModel.default()
    assert 0 < default.threshold < 1
    assert AnswerModel.from_dict(default.to_dict()) == default
    for part in ("ranker", "answerable"):
        broken = default.to_dict()
        broken[part]["features"] = ["overlap"]
        with pytest.raises(ValueError, match=f"{part} features"):
            AnswerModel.from_dict(broken)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [("The New START treaty.", "new start treaty"), ("“18”", "18"), ("an  Apple", "apple")],
)
def test_squad_normalization(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_index_without_sentences_still_answers_nothing_wrong(tmp_path: Path) -> None:
    """An empty corpus: no candidates, an honest no-answer."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Title only line", encoding="utf-8")
    embedder = FakeEmbedder()
    build_index(corpus, tmp_path / "index", embedder, Chunker(embedder.count_tokens))
    assistant = Assistant(IndexReader.open(tmp_path / "index"), embedder)
    answer = assistant.ask("Who won the cup?")
    assert isinstance(answer.found, bool)
    assert_citations_are_exact(answer, assistant._reader)


def _candidate(
    article: str,
    text: str,
    evidence: float,
    span: tuple[int, int] | None,
    coverage: float = 0.5,  # context_overlap: the share of the question its context covers
):
    from qa.reading import Span
    from qa.types import Hit

    chunk_id = ord(article[0])  # one passage per article
    hit = Hit(chunk_id, article, article, "", "", "", text, 0, len(text), 1.0, {"lexical": 1})
    features = tuple(coverage if name == "context_overlap" else evidence for name in FEATURES)
    found = Span(span[0], span[1], 0.9) if span else None
    return Candidate(hit, 0, len(text), text, features, found)


def test_ranked_orders_by_evidence_and_shares_it() -> None:
    weak = _candidate("a.txt", "The talks were brief.", 0.1, None)
    strong = _candidate("b.txt", "They met in Geneva.", 0.3, (12, 18))
    ranker = only("overlap", FEATURES)
    best, other = ranked([weak, strong], ranker)
    assert best.text == strong.text and best.evidence > other.evidence
    assert best.score + other.score == pytest.approx(1.0)
    assert best.score / other.score == pytest.approx(math.exp(8 * 0.2))
    features = answerability_features([best, other], [other.hit, best.hit])
    assert len(features) == len(ANSWERABILITY_FEATURES)
    named = dict(zip(ANSWERABILITY_FEATURES, features, strict=True))
    assert named["evidence_gap"] == pytest.approx(8 * 0.2)
    assert named["best_overlap"] == 0.3 and named["article_share"] == 0.5
    assert named["best_in_top_hit"] == 0.0  # the first hit is a.txt's


def _read(text: str, answer: str, evidence: float, margin: float = 5.0) -> Candidate:
    """A candidate the trained reader read, its short answer `answer` (in `text`)."""
    from dataclasses import replace

    from qa.reading import Reading, Span

    start = text.index(answer)
    reading = Reading(Span(start, start + len(answer), 0.9), margin, 0.0)
    return replace(_candidate("a.txt", text, 0.0, None), evidence=evidence, reading=reading)


def _as_read(read: list[Candidate], question: str) -> list[Candidate]:
    """The candidates with the `reader_features` that `Answerer.read` gives them."""
    from dataclasses import replace

    features = reader_features(read, question)
    return [replace(c, reader_features=f) for c, f in zip(read, features, strict=True)]


def test_a_measure_of_another_kind_gives_way_to_the_asked_one() -> None:
    aside = _read("They last met in January 2022.", "January 2022", 10.0)
    other = _read("It was their first talk since a call.", "since a call", 9.0)
    answer = _read("Both conversed for around 10 minutes.", "around 10 minutes", 7.0)
    how_long = "How long did they talk?"
    read = _as_read([aside, other, answer], how_long)
    assert [c.text for c in answers_of_the_asked_kind(read, how_long)] == [answer.text]
    # Not when the reader finds the asked measure unanswerable, nor too far below, nor when the
    # best answer is of the asked kind or no measure at all, nor for a question of another kind.
    declined = _read(answer.text, "around 10 minutes", 7.0, margin=-1.0)
    far = _read(answer.text, "around 10 minutes", 4.0)
    for candidates, question in (
        ([aside, other, declined], how_long),
        ([aside, other, far], how_long),
        ([other, aside, answer], how_long),
        ([aside, answer], "When did they last meet?"),
        ([aside, answer], "Who did they meet?"),
    ):
        read = _as_read(candidates, question)
        assert answers_of_the_asked_kind(read, question) == read


def test_a_close_runner_up_that_more_articles_report_wins(assistant: Assistant) -> None:
    answerer = assistant._answerer
    ranker = only("overlap", FEATURES)
    best = _candidate("a.txt", "They met in Geneva.", 0.30, (12, 18))
    rival = _candidate("b.txt", "The talks took place in Vienna.", 0.28, (24, 30))
    echo = _candidate("c.txt", "Vienna hosted the talks.", 0.01, (0, 6))
    chosen, short, agreeing = answerer._best_supported(ranked([best, rival, echo], ranker))
    assert (chosen.text, short) == (rival.text, "Vienna")
    assert [a.hit.article_id for a in agreeing] == ["c.txt"]
    # Far behind the best sentence, agreement does not overturn the ranking.
    distant = _candidate("b.txt", "The talks took place in Vienna.", 0.0, (24, 30))
    chosen, short, _ = answerer._best_supported(ranked([best, distant, echo], ranker))
    assert (chosen.text, short) == (best.text, "Geneva")
    # A sentence that merely contains the same word, about something else, does not agree.
    stray = _candidate("c.txt", "Vienna is a city.", 0.01, (0, 6), coverage=0.2)
    chosen, short, agreeing = answerer._best_supported(ranked([best, rival, stray], ranker))
    assert (chosen.text, short, agreeing) == (best.text, "Geneva", [])


# --- reading windows -----------------------------------------------------------------------

ARTICLE = (
    "Talks opened in Geneva. The envoys met for an hour. "
    "Nothing was signed. A second round follows in May. The end."
)


def _sentences(text: str) -> list[tuple[int, int]]:
    import re

    return [m.span() for m in re.finditer(r"[^.]+\.", text)]


def test_a_reading_window_grows_around_its_sentence_within_the_limit(monkeypatch) -> None:
    from qa.answering import features

    sentences = [(s + (1 if ARTICLE[s] == " " else 0), e) for s, e in _sentences(ARTICLE)]
    monkeypatch.setattr(features, "_WINDOW_CHARS", 80)
    start, end = features._window(sentences, 2)  # "Nothing was signed."
    assert start <= sentences[2][0] and sentences[2][1] <= end
    assert end - start <= 80
    assert (start, end) == (sentences[1][0], sentences[3][1])  # one neighbour each side
    # A sentence longer than the limit is its own window.
    monkeypatch.setattr(features, "_WINDOW_CHARS", 5)
    assert features._window(sentences, 2) == sentences[2]


def test_overlapping_windows_of_one_article_are_read_once() -> None:
    from dataclasses import replace

    from qa.answering.answerer import _shared_contexts

    def at(article: str, start: int, end: int, window: tuple[int, int]) -> Candidate:
        base = _candidate(article, ARTICLE[start:end], 0.1, None)
        return replace(
            base,
            start=start,
            end=end,
            context=ARTICLE[window[0] : window[1]],
            context_start=window[0],
        )

    first = at("a.txt", 24, 51, (0, 71))
    second = at("a.txt", 52, 71, (24, 102))
    apart = at("a.txt", 103, 111, (103, 111))
    other = at("b.txt", 24, 51, (0, 71))
    merged = _shared_contexts([second, other, first, apart])
    assert [c.start for c in merged] == [52, 24, 24, 103]  # same order, same sentences
    for candidate in merged:
        assert candidate.context == ARTICLE[candidate.context_start :][: len(candidate.context)]
        assert candidate.context_start <= candidate.start
        assert candidate.end <= candidate.context_start + len(candidate.context)
    second_, other_, first_, apart_ = merged
    assert first_.context == second_.context == ARTICLE[0:102]
    assert other_.context == ARTICLE[0:71]  # another article's text is never merged in
    assert apart_.context == ARTICLE[103:111]
