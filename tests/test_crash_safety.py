"""A build killed with SIGKILL at any moment leaves the previous index loadable and identical."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qa.chunking import Chunker
from qa.config import Settings
from qa.indexing import build_index
from qa.service import build
from qa.store import IndexReader
from tests.conftest import REPO, SQUAD, FakeEmbedder


def snapshot(index: Path) -> dict:
    """Everything a reader can observe: manifest, rows, and every vector."""
    reader = IndexReader.open(index)
    rows = [tuple(r) for r in reader.query("SELECT * FROM chunks ORDER BY id")]
    articles = [tuple(r) for r in reader.query("SELECT * FROM articles ORDER BY id")]
    ids = [r[0] for r in rows]
    vectors = reader.vectors_for(ids) if ids else np.zeros((0, 0))
    sentences = reader.query(
        """SELECT v.*, a.article_id FROM sentence_vectors v JOIN articles a ON a.id = v.article
           ORDER BY v.id"""
    )
    sentence_vectors = reader.sentence_vectors_for(
        [(r["article_id"], r["start"]) for r in sentences]
    )
    manifest = reader.manifest.to_dict()
    reader.close()
    return {
        "manifest": manifest,
        "chunks": rows,
        "articles": articles,
        "vectors": vectors.round(6).tolist(),
        "sentences": [tuple(r) for r in sentences],
        "sentence_vectors": sentence_vectors.round(6).tolist(),
    }


def add_articles(corpus: Path, count: int) -> None:
    for i in range(count):
        body = " ".join(f"Paragraph {i} sentence {j} about topic {i * j}." for j in range(40))
        (corpus / f"new-{i}.txt").write_text(f"New story {i}\n\n{body}\n", encoding="utf-8")


def crashing_build(corpus: Path, index: Path, stage: str, *, full: bool = False):
    return subprocess.run(
        [
            *(sys.executable, "-m", "tests.support.crashing_build"),
            *(str(corpus), str(index), stage, *(["full"] if full else [])),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )


BEFORE_THE_COMMIT = [
    ("embedding", False),
    ("database", False),
    ("vectors", False),
    ("merge", False),
    ("merge-files", False),
    ("commit", False),
    ("embedding", True),
    ("vectors", True),
    ("manifest", True),
]


@pytest.mark.parametrize(("stage", "full"), BEFORE_THE_COMMIT)
def test_killed_build_leaves_the_previous_index(
    stage: str, full: bool, corpus_copy: Path, tmp_path: Path
):
    index = tmp_path / "index"
    embedder = FakeEmbedder()
    build_index(
        corpus_copy,
        index,
        embedder,
        Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4),
    )
    before = snapshot(index)
    add_articles(corpus_copy, 3)
    (corpus_copy / "000_1bfc4a3eb4545184.txt").unlink()

    result = crashing_build(corpus_copy, index, stage, full=full)

    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert snapshot(index) == before
    report = build_index(
        corpus_copy,
        index,
        embedder,
        Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4),
    )
    assert len(report.added) == 3 and len(report.removed) == 1
    assert not list(index.glob(".staging-*"))
    assert_segment_files_are_the_named_ones(index)


def assert_segment_files_are_the_named_ones(index: Path) -> None:
    """No file of a killed build's segments, nor of segments a merge replaced, stays."""
    reader = IndexReader.open(index)
    named = {row["name"] for row in reader.query("SELECT name FROM segments")}
    reader.close()
    folder = index / reader.manifest.generation / "segments"
    assert {path.name.split(".")[0] for path in folder.iterdir()} == named


@pytest.mark.parametrize(("stage", "full"), [("committed", False), ("cleanup", True)])
def test_kill_after_the_commit_leaves_the_new_index(
    stage: str, full: bool, corpus_copy: Path, tmp_path: Path
):
    index = tmp_path / "index"
    embedder = FakeEmbedder()
    chunker = Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4)
    build_index(corpus_copy, index, embedder, chunker)
    add_articles(corpus_copy, 2)
    result = crashing_build(corpus_copy, index, stage, full=full)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    reader = IndexReader.open(index)
    assert reader.manifest.articles == 4
    reader.close()
    assert build_index(corpus_copy, index, embedder, chunker).changed is False


def wait_for_staging(index: Path, process: subprocess.Popen, limit: float = 300) -> None:
    """Wait until this build starts writing its generation (a staging folder not seen before)."""
    seen = set(index.glob(".staging-*"))
    deadline = time.monotonic() + limit
    while not set(index.glob(".staging-*")) - seen and process.poll() is None:
        assert time.monotonic() < deadline, "build never started writing"
        time.sleep(0.001)


@pytest.mark.integration
def test_real_build_killed_mid_way_with_sigkill(corpus_copy: Path, tmp_path: Path, real_embedder):
    """The real CLI and model, killed while loading, while embedding and while writing."""
    index = tmp_path / "index"
    build(Settings(index_dir=index, corpus_dir=corpus_copy), real_embedder)
    before = snapshot(index)
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][:3]
    for entry in data:
        text = "\n\n".join([entry["title"]] + [p["context"] for p in entry["paragraphs"][:15]])
        (corpus_copy / f"{entry['title']}.txt").write_text(text, encoding="utf-8")
    command = [
        *(sys.executable, "-m", "qa.cli", "index", "build"),
        *("--corpus", str(corpus_copy), "--index", str(index)),
    ]

    for moment in ("1.0", "8.0", "writing", "writing"):
        process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
        if moment == "writing":
            wait_for_staging(index, process)
        else:
            time.sleep(float(moment))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) in (-signal.SIGKILL, 0)
        after = snapshot(index)  # loads: never half-way
        if after != before:  # only possible when the kill came after the manifest moved
            assert after["manifest"]["counts"]["articles"] == 5, f"half-built after {moment}"
            return

    completed = subprocess.run(command, cwd=REPO, capture_output=True, timeout=600)
    assert completed.returncode == 0, completed.stderr.decode()
    assert IndexReader.open(index).manifest.articles == 5
    assert not list(index.glob(".staging-*"))


def test_the_next_build_removes_a_killed_builds_leftovers_even_with_nothing_to_do(
    corpus_copy: Path, tmp_path: Path
):
    index = tmp_path / "index"
    embedder = FakeEmbedder()
    chunker = Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4)
    build_index(corpus_copy, index, embedder, chunker)
    staging = index / ".staging-gen-1"
    staging.mkdir()
    (staging / "qa.sqlite3").write_bytes(b"half")
    (index / ".manifest.json.abc123.tmp").write_text('{"format_version": 1, "gen')

    assert build_index(corpus_copy, index, embedder, chunker).changed is False
    assert not staging.exists() and not list(index.glob(".manifest.json.*.tmp"))
