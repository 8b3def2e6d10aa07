"""Answers on the default corpus with the real model, through Python, the CLI and HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa.config import Settings
from qa.service import Assistant, build
from tests.conftest import DEFAULT_CORPUS, REPO
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
        pytest.param(
            "How long did the meeting between Blinken and Lavrov last?",
            "10 minutes",
            BOTH[:1],
            marks=pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="known limit of the feature ranker: the answer sentence ('both parties "
                "conversed for around 10 minutes') shares no word with the question, while "
                "'Blinken and Lavrov last met in person ... in January 2022' shares both names "
                "and 'last', so the answer ranks 7th (share 0.002); telling the two senses of "
                "'last' apart needs a trained reader (issue 6)",
            ),
        ),
        ("How many nations agreed to the statement?", "18", BOTH),
        ("Which nuclear treaty did Russia suspend?", "New START", BOTH),
    ],
)
def test_default_corpus_questions(assistant, question: str, short: str, articles) -> None:
    answer = assistant.ask(question)
    assert answer.found, answer
    assert short in answer.text
    assert len(answer.text) <= len(short) + 12, "a short answer, not the whole sentence"
    assert short in answer.sentence
    assert sorted(c.article_id for c in answer.citations) == articles
    assert answer.sources_agreeing == len(articles)
    for citation in answer.citations:
        text = assistant.article(citation.article_id).text
        assert text[citation.start : citation.end] == citation.sentence
        assert short in text[citation.span_start : citation.span_end]


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
