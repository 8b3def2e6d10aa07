"""Watching the corpus: the library loop with the fake embedder, and `qa index watch` for real."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchfiles import Change

from qa.config import Settings
from qa.indexing import BuildReport
from qa.live import corpus_change_filter, watch_corpus
from qa.store import IndexReader, read_manifest
from tests.conftest import REPO, FakeEmbedder
from tests.support.polling import wait_for

BODY = (
    "The council met on Tuesday to discuss the budget. Members argued for three hours.\n\n"
    "In the end the proposal passed by seven votes to two. The mayor welcomed the result."
)


def indexed(index: Path) -> dict[str, str]:
    """Article id → text of what the index holds now."""
    if read_manifest(index) is None:
        return {}
    reader = IndexReader.open(index)
    try:
        return {a.article_id: a.text for a in reader.articles()}
    finally:
        reader.close()


class Watcher:
    """`watch_corpus` in a thread, collecting what it reports."""

    def __init__(self, settings: Settings, embedder: FakeEmbedder):
        self.reports: list[BuildReport] = []
        self.errors: list[Exception] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=watch_corpus,
            args=(settings, embedder, self.reports.append, self.stop),
            kwargs={"on_error": self.errors.append, "debounce_ms": 200},
            daemon=True,
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text(f"Council passes the budget\n\n{BODY}\n", encoding="utf-8")
    return Settings(
        index_dir=tmp_path / "index", corpus_dir=corpus, chunk_tokens=24, overlap_tokens=4
    )


@pytest.fixture
def watcher(settings: Settings) -> Iterator[Watcher]:
    running = Watcher(settings, FakeEmbedder())
    running.thread.start()
    wait_for(lambda: running.reports, "the initial build")
    yield running
    running.stop.set()
    running.thread.join(timeout=30)
    assert not running.thread.is_alive(), "the watch did not stop"


def test_the_index_follows_files_created_changed_and_deleted(settings, watcher):
    index, corpus = settings.index_dir, settings.corpus_dir
    assert watcher.reports[0].added == ["one.txt"]

    (corpus / "harbour.txt").write_text(f"Harbour reopens\n\n{BODY}\n", encoding="utf-8")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "deep.md").write_text(f"# Deep story\n\n{BODY}\n", encoding="utf-8")
    wait_for(lambda: {"harbour.txt", "sub/deep.md"} <= set(indexed(index)), "new files indexed")

    (corpus / "harbour.txt").write_text(f"Harbour reopens\n\n{BODY} A recount.\n", "utf-8")
    wait_for(lambda: "recount" in indexed(index).get("harbour.txt", ""), "the change indexed")

    (corpus / "harbour.txt").unlink()
    wait_for(lambda: "harbour.txt" not in indexed(index), "the deletion indexed")
    assert set(indexed(index)) == {"one.txt", "sub/deep.md"}
    assert watcher.errors == []
    assert any(r.updated == ["harbour.txt"] for r in watcher.reports)
    # The index changes when a build commits; the report arrives just after.
    wait_for(lambda: any(r.removed == ["harbour.txt"] for r in watcher.reports), "the report")


def test_hidden_and_temporary_files_are_ignored_and_skips_reported(settings, watcher):
    corpus, index = settings.corpus_dir, settings.index_dir
    (corpus / ".draft.txt").write_text(f"Draft\n\n{BODY}\n", encoding="utf-8")
    (corpus / "notes.txt~").write_text(f"Backup\n\n{BODY}\n", encoding="utf-8")
    (corpus / "scan.pdf").write_bytes(b"%PDF-1.4")
    (corpus / "good.txt").write_text(f"Good story\n\n{BODY}\n", encoding="utf-8")
    wait_for(lambda: "good.txt" in indexed(index), "good.txt indexed")
    wait_for(
        lambda: any(s.path == "scan.pdf" for r in watcher.reports for s in r.skipped),
        "the skipped file reported",
    )
    assert set(indexed(index)) == {"one.txt", "good.txt"}


def test_a_failing_build_is_reported_and_the_watch_goes_on(settings):
    class Exploding(FakeEmbedder):
        def embed_documents(self, texts, *, progress=False):
            if any("EXPLODE" in t for t in texts):
                raise RuntimeError("embedding failed")
            return super().embed_documents(texts, progress=progress)

    running = Watcher(settings, Exploding())
    running.thread.start()
    try:
        wait_for(lambda: running.reports, "the initial build")
        corpus = settings.corpus_dir
        (corpus / "bad.txt").write_text(f"Bad story\n\nEXPLODE {BODY}\n", encoding="utf-8")
        wait_for(lambda: running.errors, "the error reported")
        assert "embedding failed" in str(running.errors[0])
        (corpus / "bad.txt").unlink()
        (corpus / "good.txt").write_text(f"Good story\n\n{BODY}\n", encoding="utf-8")
        wait_for(lambda: "good.txt" in indexed(settings.index_dir), "good.txt indexed")
    finally:
        running.stop.set()
        running.thread.join(timeout=30)
    assert not running.thread.is_alive()


def test_the_change_filter(tmp_path):
    interesting = corpus_change_filter(tmp_path)
    for name in ("a.txt", "sub/b.md", "c.pdf", "x.json"):
        assert interesting(Change.added, str(tmp_path / name)), name
    for name in (
        ".hidden.txt",
        ".git/config",
        "sub/.cache/a.txt",
        "uploads/.bridge.md.abc.tmp",
        "a.txt~",
        "a.txt.swp",
        "#a.txt#",
        "download.part",
    ):
        assert not interesting(Change.added, str(tmp_path / name)), name
    inside = corpus_change_filter(tmp_path, ignore=tmp_path / "index")
    assert not inside(Change.modified, str(tmp_path / "index" / "manifest.json"))
    assert inside(Change.modified, str(tmp_path / "story.txt"))


def test_a_missing_corpus_is_refused(tmp_path):
    settings = Settings(index_dir=tmp_path / "index", corpus_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="does not exist"):
        watch_corpus(settings, FakeEmbedder(), lambda report: None, threading.Event())


@pytest.mark.integration
def _interruptible() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_qa_index_watch_indexes_a_new_file_and_stops_on_ctrl_c(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    for path in (REPO / "corpus").iterdir():
        (corpus / path.name).write_bytes(path.read_bytes())
    command = ["index", "watch", "--corpus", str(corpus), "--index", str(index)]
    process = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", *command],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        # As from a terminal: Ctrl-C neither ignored nor blocked, whatever the earlier tests
        # (threads, servers, libraries) left in this process's signal state.
        preexec_fn=_interruptible,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    seen: list[str] = []

    def line_with(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    try:
        wait_for(lambda: line_with("index holds 2 articles"), "the initial build", timeout=180)
        (corpus / "bridge.md").write_text(
            "# Bridge repair approved\n\n"
            "The Lumbridge council approved a 4.2 million pound bridge repair on Tuesday.\n",
            encoding="utf-8",
        )
        wait_for(lambda: line_with("added 1,"), "the new file built", timeout=180)
        assert "bridge.md" in indexed(index)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{process.pid}/status").read_text()
            seen += [line for line in status.splitlines(True) if line.startswith("Sig")]
            process.kill()
            process.wait()
            line_with("")
            message = "still running 60 s after Ctrl-C; it printed:\n" + "".join(seen)
            raise AssertionError(message) from None
    assert code == 0, "".join(seen)
