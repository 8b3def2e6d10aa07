"""The whole spine on the real model, real FAISS and real SQLite, over the default corpus."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qa import Assistant
from qa.config import Settings
from qa.service import build
from qa.store import IndexReader
from tests.conftest import REPO

pytestmark = pytest.mark.integration

CHROME = [
    "fbpx",
    "Support our non-profit journalism",
    "Submit a Comment",
    "Your email address will not be published",
    "Continue reading on the app",
    "Expand article",
    "Related Topics",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> tuple[Settings, Assistant]:
    root = tmp_path_factory.mktemp("real")
    corpus = root / "corpus"
    corpus.mkdir()
    for path in (REPO / "corpus").iterdir():
        (corpus / path.name).write_bytes(path.read_bytes())
    settings = Settings(index_dir=root / "index", corpus_dir=corpus)
    build(settings, real_embedder)
    return settings, Assistant.load(settings.index_dir, embedder=real_embedder)


def test_where_did_they_meet_finds_new_delhi_first(built) -> None:
    _, assistant = built
    hits = assistant.search("Where did Blinken and Lavrov meet?")
    assert "New Delhi" in hits[0].text


def test_hits_point_at_the_exact_characters(built) -> None:
    _, assistant = built
    for hit in assistant.search("New START nuclear treaty", k=10):
        assert assistant.article(hit.article_id).text[hit.start : hit.end] == hit.text


def test_no_chunk_contains_page_chrome(built) -> None:
    settings, _ = built
    reader = IndexReader.open(settings.index_dir)
    texts = [row["text"] for row in reader.query("SELECT text FROM chunks")]
    assert len(texts) == reader.manifest.chunks > 2
    for text in texts:
        for chrome in CHROME:
            assert chrome not in text
        assert not re.search(r"^(Blinken|Andrew Thornebrooke)$", text, re.MULTILINE)
    titles = [a.title for a in reader.articles()]
    assert sorted(titles) == [
        "Blinken Meets With Russian Counterpart",
        "US, Russia Hold Highest-Level Talks Since Ukraine War",
    ]


def test_adding_then_deleting_an_article(built, real_embedder, tmp_path: Path) -> None:
    settings, _ = built
    story = settings.corpus_dir / "ceasefire.md"
    story.write_text(
        "---\ntitle: Ceasefire talks resume in Geneva\nsource: Example Wire\n"
        "published: 2023-03-09\n---\n"
        "Negotiators returned to Geneva on Thursday for a third round of ceasefire talks.\n\n"
        "The delegations agreed to exchange prisoners before the end of the month.\n",
        encoding="utf-8",
    )
    before = IndexReader.open(settings.index_dir).manifest.chunks

    report = build(settings, real_embedder)
    reader = IndexReader.open(settings.index_dir)
    new_ids = reader.chunk_ids_of(["ceasefire.md"])
    assert report.added == ["ceasefire.md"] and report.unchanged == 2
    assert report.chunks_embedded == len(new_ids) == reader.manifest.chunks - before
    hit = Assistant.load(settings.index_dir, embedder=real_embedder).search("Geneva talks")[0]
    assert (hit.article_id, hit.source, hit.published) == (
        "ceasefire.md",
        "Example Wire",
        "2023-03-09",
    )

    story.unlink()
    report = build(settings, real_embedder)
    reader = IndexReader.open(settings.index_dir)
    assert report.removed == ["ceasefire.md"] and report.chunks_removed == len(new_ids)
    assert reader.manifest.chunks == before == reader.vector_set("chunks").count
    assert not reader.query(f"SELECT id FROM chunks WHERE id IN ({','.join(map(str, new_ids))})")


def test_cli_build_stats_and_search(tmp_path: Path, corpus_copy: Path) -> None:
    index = tmp_path / "cli-index"
    qa = [sys.executable, "-m", "qa.cli"]
    built = subprocess.run(
        [*qa, "index", "build", "--corpus", str(corpus_copy), "--index", str(index), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert len(report["added"]) == 2 and report["chunks_embedded"] > 0

    stats = subprocess.run(
        [*qa, "index", "stats", "--index", str(index), "--json"], capture_output=True, text=True
    )
    shown = json.loads(stats.stdout)
    assert shown["articles"] == 2
    parts = shown["parts"]
    assert parts["vectors"]["rows"] == shown["chunks"] == report["chunks_embedded"]
    assert parts["sentence_vectors"]["rows"] == shown["sentence_vectors"]
    assert parts["lexical"]["rows"] == shown["chunks"] and parts["lexical"]["segments"] == 1
    for name in ("vectors", "sentence_vectors"):
        assert "fp16 rows" in parts[name]["kind"]
        # fp16 codes: 2 bytes a dimension, plus the ids and their maps
        rows = parts[name]["rows"]
        assert rows * 2 * 384 < parts[name]["memory_bytes"] <= rows * (2 * 384 + 64)
        assert parts[name]["segments"] == 1 and parts[name]["deleted_rows"] == 0
    assert sum(part["disk_bytes"] for part in parts.values()) <= shown["size_bytes"]

    found = subprocess.run(
        [*qa, "search", "New START treaty", "-k", "2", "--index", str(index), "--json"],
        capture_output=True,
        text=True,
    )
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 2 and any("New START" in h["text"] for h in hits)

    missing = subprocess.run(
        [*qa, "search", "anything", "--index", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "qa index build" in missing.stderr
    assert "Traceback" not in missing.stderr
