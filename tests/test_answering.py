"""The answerer: verbatim sentences, exact citations, corroboration, and honest "no answer"."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.answering import FEATURES, AnswerModel, Logistic, normalize_answer
from qa.chunking import Chunker
from qa.indexing import build_index
from qa.service import Assistant
from qa.store import IndexReader
from qa.types import Answer
from tests.conftest import FakeEmbedder


# Sentence overlap with the question decides; no dependence on real embeddings.
def overlap_only(features: tuple[str, ...]) -> Logistic:
    return Logistic(tuple(8.0 if name == "overlap" else 0.0 for name in features), -4.0)


OVERLAP_ONLY = AnswerModel(scorer=overlap_only(FEATURES), threshold=0.5)

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
        "sources_agreeing",
    }  # fmt: skip
    assert set(data["citations"][0]) == {
        "article_id", "title", "source", "url", "published", "sentence", "start", "end",
        "span_start", "span_end", "score",
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
    broken = default.to_dict()
    broken["scorer"]["features"] = ["overlap"]
    with pytest.raises(ValueError, match="features"):
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


def _candidate(article: str, text: str, score: float, span: tuple[int, int] | None, typed: bool):
    from qa.answering import FEATURES, Candidate
    from qa.reading import Span
    from qa.types import Hit

    hit = Hit(1, article, article, "", "", "", text, 0, len(text), 1.0)
    features = tuple(
        1.0 if name == "typed" and typed else 0.5 if name == "context_overlap" else 0.0
        for name in FEATURES
    )
    found = Span(span[0], span[1], 0.9) if span else None
    return Candidate(hit, 0, len(text), text, features, found, score)


def test_only_typed_questions_trade_score_for_an_answer_of_the_asked_kind(
    assistant: Assistant,
) -> None:
    answerer = assistant._answerer
    assert answerer.model.threshold < 0.6
    best = _candidate("a.txt", "The talks were brief and tense.", 0.95, None, False)
    placed = _candidate("b.txt", "They last met in Geneva in 2022.", 0.6, (17, 23), True)
    # "where" asks for a place: the sentence naming one wins despite its lower score.
    chosen, short, _ = answerer._best_supported("Where did they meet?", [best, placed])
    assert chosen is placed and short == "Geneva"
    # "what" asks for nothing in particular: the better-scored sentence stays.
    chosen, short, _ = answerer._best_supported("What were the talks like?", [best, placed])
    assert chosen is best and short == ""
