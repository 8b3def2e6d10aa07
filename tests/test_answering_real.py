"""Answers on the default corpus with the real model, through Python, the CLI and HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa.config import Settings
from qa.service import Assistant, build
from tests.conftest import DEFAULT_CORPUS, REPO, SQUAD
from tests.support.server import Server, running_server

pytestmark = pytest.mark.integration

BOTH = ["000_1bfc4a3eb4545184.txt", "004_9a287114b1b7ba7a.txt"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Settings:
    root = tmp_path_factory.mktemp("answers")
    settings = Settings(index_dir=root / "index", corpus_dir=DEFAULT_CORPUS)
    build(settings, real_embedder)
    return settings


@pytest.fixture(scope="module")
def assistant(built: Settings, real_embedder) -> Assistant:
    return Assistant.load(built.index_dir, embedder=real_embedder)


@pytest.mark.parametrize(
    ("question", "short", "articles"),
    [
        ("Where did Blinken and Lavrov meet?", "New Delhi", BOTH),
        # The answer sentence shares no word with the question, while "Blinken and Lavrov last
        # met in person in Switzerland in January 2022" shares both names and "last": the
        # rankers put that one first, and only the answer's kind (a date does not say how
        # long) lets "around 10 minutes" win (answers_of_the_asked_kind).
        ("How long did the meeting between Blinken and Lavrov last?", "10 minutes", BOTH[:1]),
        ("How long did Blinken and Lavrov talk?", "10 minutes", BOTH[:1]),
        ("How many nations agreed to the statement?", "18", BOTH),
        ("Which nuclear treaty did Russia suspend?", "New START", BOTH),
        (
            "Who did the United States release in exchange for Brittney Griner?",
            "Viktor Bout",
            BOTH[1:],
        ),
        ("What did Lavrov accuse the United States of?", "blackmail", BOTH[1:]),
    ],
)
def test_default_corpus_questions(assistant, question: str, short: str, articles) -> None:
    answer = assistant.ask(question)
    assert answer.reader == "trained"
    assert answer.found, answer
    assert short in answer.text
    # A head noun may come along ("New START nuclear treaty"), not the whole sentence.
    assert len(answer.text) <= len(short) + 16, "a short answer, not the whole sentence"
    assert short in answer.sentence
    assert sorted(c.article_id for c in answer.citations) == articles
    assert answer.sources_agreeing == len(articles)
    for citation in answer.citations:
        text = assistant.article(citation.article_id).text
        assert text[citation.start : citation.end] == citation.sentence
        assert short in text[citation.span_start : citation.span_end]


UNRELATED = ["Rhine", "Super_Bowl_50", "Nikola_Tesla", "Victoria_(Australia)"]


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Assistant:
    """The default corpus with unrelated articles beside it (one full of Switzerland)."""
    from benchmarks.squad_common import document_name, document_text, load_squad

    root = tmp_path_factory.mktemp("crowded")
    corpus = root / "corpus"
    shutil.copytree(DEFAULT_CORPUS, corpus)
    for entry in load_squad(SQUAD):
        if entry["title"] in UNRELATED:
            (corpus / document_name(entry)).write_text(document_text(entry), encoding="utf-8")
    settings = Settings(index_dir=root / "index", corpus_dir=corpus)
    build(settings, real_embedder)
    return Assistant.load(settings.index_dir, embedder=real_embedder)


@pytest.mark.parametrize(
    ("question", "short"),
    [
        ("Where did Blinken and Lavrov meet?", "New Delhi"),
        ("How long did Blinken and Lavrov talk?", "10 minutes"),
        ("Who did the United States release in exchange for Brittney Griner?", "Viktor Bout"),
    ],
)
def test_unrelated_articles_do_not_change_the_answer(crowded: Assistant, question, short) -> None:
    assert len(crowded.articles()) == 2 + len(UNRELATED)
    answer = crowded.ask(question)
    assert answer.found and short in answer.text, answer.text
    assert {c.article_id for c in answer.citations} <= set(BOTH)


def test_the_heuristic_reader_stays_available(built: Settings, real_embedder) -> None:
    from qa.reading import HeuristicReader

    assistant = Assistant.load(
        built.index_dir, embedder=real_embedder, short_reader=HeuristicReader()
    )
    answer = assistant.ask("How many nations agreed to the statement?")
    assert answer.reader == "heuristic" and answer.text == "18"


def test_without_the_trained_reader_files_the_heuristic_one_answers_and_says_so(
    built: Settings, real_embedder, tmp_path: Path
) -> None:
    from dataclasses import replace

    from qa.components import make_short_reader

    settings = replace(built, reader_model=str(tmp_path / "missing"))
    reader = make_short_reader(settings)
    assistant = Assistant.load(built.index_dir, embedder=real_embedder, short_reader=reader)
    answer = assistant.ask("How many nations agreed to the statement?")
    assert answer.text == "18"
    assert answer.reader.startswith("heuristic") and "missing" in answer.reader


def test_a_question_the_articles_cannot_answer(assistant: Assistant) -> None:
    answer = assistant.ask("What is the boiling point of mercury?")
    assert answer.found is False
    assert answer.text == "" and answer.related


def test_cli_ask_prints_the_marked_sentence_and_numbered_sources(built: Settings) -> None:
    qa = [sys.executable, "-m", "qa.cli", "ask", "--index", str(built.index_dir)]
    shown = subprocess.run(
        [*qa, "How many nations agreed to the statement?"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "18"
    assert "**18**" in shown.stdout and "[1][2]" in shown.stdout
    assert "2 sources agree." in shown.stdout and "\n[2] " in shown.stdout

    declined = subprocess.run(
        [*qa, "What is the boiling point of mercury?"], capture_output=True, text=True
    )
    assert "No answer in the articles." in declined.stdout


def test_cli_ask_file_writes_json_lines(built: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_text(
        "Where did Blinken and Lavrov meet?\n\nWhat is the boiling point of mercury?\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qa.cli",
            "ask",
            "--index",
            str(built.index_dir),
            "--file",
            str(questions),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["found"] for a in answers] == [True, False]
    assert answers[0]["text"] == "New Delhi"


@pytest.fixture(scope="module")
def server(built: Settings) -> Iterator[Server]:
    log = built.index_dir.parent / "server.log"
    corpus = ("--corpus", str(built.corpus_dir))
    with running_server(built.index_dir, log, extra_args=corpus) as running:
        yield running


def test_http_ask(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/api/ask",
        json={"question": "Which nuclear treaty did Russia suspend?", "k": 5},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["found"] and "New START" in answer["text"]
    assert answer["sources_agreeing"] == 2 and len(answer["citations"]) == 2

    declined = httpx.post(
        f"{server.url}/api/ask", json={"question": "What is the boiling point of mercury?"}
    ).json()
    assert declined["found"] is False and declined["related"]

    for body in ({"question": ""}, {"question": "x", "k": 0}, {"question": "x", "extra": 1}):
        assert httpx.post(f"{server.url}/api/ask", json=body).status_code == 422
