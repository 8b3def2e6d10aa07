"""The reliability suite's sizes, corpus and server, and the figures it reports.

    pytest -m reliability            # the quick default sizes (a few minutes, what CI runs)
    pytest -m reliability --full     # the full sizes below (about 15 minutes on 2 cores)

Every test here uses the real `qa serve` (over 127.0.0.1) or the real `qa` CLI with the real
model. Random moments come from one seed, printed at the end and taken from
QA_RELIABILITY_SEED when set, so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.reliability_load import Rebuilds, answer_key, ask, write_results
from tests.conftest import DEFAULT_CORPUS, SQUAD
from tests.support.server import Server, start_server

TOKEN = "reliability-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Sizes:
    load_requests: int  # at least this many ask/search requests ...
    load_rebuilds: int  # ... while this many rebuilds run
    concurrency: int
    memory_rebuilds: int
    build_kills: int  # kill -9 of `qa index build`
    server_kills: int  # kill -9 of the server during an upload, and as many during a rebuild


DEFAULT_SIZES = Sizes(
    load_requests=400,
    load_rebuilds=3,
    concurrency=20,
    memory_rebuilds=6,
    build_kills=5,
    server_kills=1,
)
FULL_SIZES = Sizes(
    load_requests=2000,
    load_rebuilds=6,
    concurrency=20,
    memory_rebuilds=30,
    build_kills=20,
    server_kills=3,
)

# What the tests measured, printed at the end of the run (and written under benchmarks/results).
_FIGURES: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    return FULL_SIZES if request.config.getoption("--full") else DEFAULT_SIZES


@pytest.fixture(scope="session")
def seed() -> int:
    value = int(os.environ.get("QA_RELIABILITY_SEED") or random.SystemRandom().randrange(10**6))
    _FIGURES.append(("seed", {"QA_RELIABILITY_SEED": value}))
    return value


def record(name: str, figures: dict[str, Any]) -> None:
    """Keep `figures` for the end-of-run summary and write them to benchmarks/results/."""
    write_results(name, figures)
    _FIGURES.append((name, figures))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, figures in _FIGURES:
        terminalreporter.write_line(f"{name}: {json.dumps(figures)}")


def write_corpus(folder: Path, squad_articles: int) -> None:
    """The default corpus, plus the first paragraphs of some SQuAD articles (when present)."""
    shutil.copytree(DEFAULT_CORPUS, folder)
    if squad_articles and SQUAD.exists():
        data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][:squad_articles]
        for entry in data:
            paragraphs = [p["context"] for p in entry["paragraphs"][:8]]
            text = "\n\n".join([entry["title"].replace("_", " "), *paragraphs]) + "\n"
            (folder / f"squad-{entry['title']}.txt").write_text(text, encoding="utf-8")


@dataclass
class LiveServer:
    """`qa serve` with the admin token on its own corpus, and what a test needs around it."""

    root: Path
    corpus: Path
    index: Path
    server: Server
    client: httpx.Client
    rebuilds: Rebuilds
    expected: tuple[Any, ...]  # the fixed question's answer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.process.pid


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the load, memory and bad-input tests (they leave its articles as found,
    apart from those they add)."""
    root = tmp_path_factory.mktemp("reliability")
    corpus, index = root / "corpus", root / "index"
    write_corpus(corpus, squad_articles=6)
    server = start_server(index, root / "server.log", corpus=corpus, admin_token=TOKEN)
    client = httpx.Client(base_url=server.url, timeout=300)
    rebuilds = Rebuilds(server.url, TOKEN, corpus, index)
    try:
        server.wait_until_healthy()
        expected = answer_key(ask(client))
        assert expected[0], f"the fixed question has no answer: {expected}"
        yield LiveServer(root, corpus, index, server, client, rebuilds, expected)
    finally:
        rebuilds.close()
        client.close()
        server.stop()
