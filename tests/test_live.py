"""LiveAssistant and IndexUpdater with the fake embedder: reloads, concurrency, saving uploads."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import re
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import pytest

from qa.config import Settings
from qa.live import (
    IndexUpdater,
    LiveAssistant,
    Upload,
    UploadRefused,
    safe_upload_name,
)
from qa.service import build
from qa.store import build_lock, read_manifest
from tests.conftest import REPO, FakeEmbedder
from tests.support.polling import wait_for

BODY = (
    "The council met on Tuesday to discuss the budget. Members argued for three hours.\n\n"
    "In the end the proposal passed by seven votes to two. The mayor welcomed the result."
)
LUMBRIDGE = "The Lumbridge council approved a 4.2 million pound bridge repair on Tuesday."


def write_article(folder: Path, name: str, title: str, body: str = BODY) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    corpus = tmp_path / "corpus"
    write_article(corpus, "one.txt", "Council passes the budget")
    write_article(
        corpus, "two.txt", "Harbour reopens after storm", BODY.replace("budget", "harbour")
    )
    return Settings(
        index_dir=tmp_path / "index", corpus_dir=corpus, chunk_tokens=24, overlap_tokens=4
    )


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def live(settings: Settings, embedder: FakeEmbedder) -> LiveAssistant:
    build(settings, embedder)
    return LiveAssistant(settings.index_dir, embedder, check_interval=0)


def article_ids(live: LiveAssistant) -> set[str]:
    return {hit.article_id for hit in live.get().search("council harbour budget", k=50)}


# --- LiveAssistant -------------------------------------------------------------------------------


def test_a_build_in_another_thread_is_picked_up_without_restart(settings, embedder, live):
    before = live.get()
    assert before.article("three.txt") is None
    write_article(settings.corpus_dir, "three.txt", "Bridge repair approved", LUMBRIDGE)
    builder = threading.Thread(target=build, args=(settings, FakeEmbedder()))
    builder.start()
    builder.join()

    after = live.get()
    assert after is not before
    assert after.article("three.txt") is not None
    assert after.search("Lumbridge bridge repair")[0].article_id == "three.txt"
    assert live.generation == read_manifest(settings.index_dir).generation
    assert before.search("budget")  # the previous assistant still answers


def test_a_build_by_another_process_is_picked_up_without_restart(settings, embedder, live):
    live.get()
    write_article(settings.corpus_dir, "three.txt", "Bridge repair approved", LUMBRIDGE)
    code = (
        "import sys; from pathlib import Path; from qa.config import Settings; "
        "from qa.service import build; from tests.conftest import FakeEmbedder; "
        "build(Settings(corpus_dir=Path(sys.argv[1]), index_dir=Path(sys.argv[2]), "
        "chunk_tokens=24, overlap_tokens=4), FakeEmbedder())"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(settings.corpus_dir), str(settings.index_dir)],
        cwd=REPO,
        check=True,
        timeout=300,
    )
    assert live.get().search("Lumbridge bridge repair")[0].article_id == "three.txt"


def test_checks_at_most_every_interval_and_refresh_checks_now(settings, embedder):
    build(settings, embedder)
    live = LiveAssistant(settings.index_dir, embedder, check_interval=3600)
    first = live.get()
    write_article(settings.corpus_dir, "three.txt", "Bridge repair approved", LUMBRIDGE)
    build(settings, embedder)

    assert live.get() is first  # the next check is an hour away
    assert live.refresh() is True
    assert live.get() is not first and live.get().article("three.txt") is not None
    assert live.refresh() is False  # nothing new


def test_queries_never_fail_while_the_index_is_rebuilt(settings, embedder, live):
    errors: list[BaseException] = []
    seen: list[str] = []
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                assistant = live.get()
                generation = live.revision
                for hit in assistant.search("council budget harbour votes", k=5):
                    article = assistant.article(hit.article_id)
                    assert article is not None
                    assert article.text[hit.start : hit.end] == hit.text
                seen.append(generation or "")
            except BaseException as error:  # anything at all is a failure
                errors.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(8):
            if round_ % 3 == 2:
                (settings.corpus_dir / f"extra{round_ - 1}.txt").unlink()
            else:
                write_article(
                    settings.corpus_dir, f"extra{round_}.txt", f"Extra council story {round_}"
                )
            build(settings, embedder)
            generation = read_manifest(settings.index_dir).revision
            # Each new revision is served (and queried) before the next build starts.
            wait_for(lambda g=generation: g in seen[-20:], f"queries on {generation}")
    finally:
        done.set()
        for thread in threads:
            thread.join()

    assert errors == []
    assert len(set(seen)) >= 9
    assert live.get().article("extra7.txt") is not None
    assert live.get().article("extra1.txt") is None


def test_an_assistant_keeps_reading_its_state_while_builds_change_the_index_in_place(
    settings, embedder, live
):
    old = live.get()
    before = live.revision
    write_article(settings.corpus_dir, "extra0.txt", "Extra story about the harbour")
    (settings.corpus_dir / "one.txt").unlink()
    build(settings, embedder)
    assert live.get() is not old and live.revision != before
    assert live.generation == before.split(".")[0]  # the same generation, changed in place

    assert old.article("extra0.txt") is None and old.article("one.txt") is not None
    hits = old.search("budget council", k=10)
    assert "one.txt" in {hit.article_id for hit in hits}
    assert "extra0.txt" not in {hit.article_id for hit in old.search("harbour", k=10)}
    new = live.get()
    assert new.article("one.txt") is None and new.article("extra0.txt") is not None
    assert "one.txt" not in {hit.article_id for hit in new.search("budget council", k=10)}


def test_a_served_index_keeps_its_write_ahead_log_small_over_many_builds(settings, embedder, live):
    """Each reader holds a read transaction; the server lets SQLite restart the log once the
    replaced reader is gone, or the log would grow with every build."""
    live.get()
    body = " ".join(f"Sentence {j} on the council and harbour number {j}." for j in range(150))
    sizes = []
    for i in range(24):
        write_article(settings.corpus_dir, f"long{i}.txt", f"Long story {i}", body)
        build(settings, embedder)
        live.get().search("council")  # the new state is loaded...
        live.get().search("council")  # ...and, the old one gone, the log is released
        log = settings.index_dir / live.generation / "qa.sqlite3-wal"
        sizes.append(log.stat().st_size if log.exists() else 0)
    # Kept, the log would hold every build: 24 times the first one. Released, it is reused.
    assert max(sizes) < 6 * sizes[0], sizes
    assert not live.get()._reader.stale


def test_an_assistant_keeps_working_after_its_generation_is_deleted(settings, embedder, live):
    old = live.get()
    old_generation = settings.index_dir / live.generation
    for i in range(3):
        write_article(settings.corpus_dir, f"extra{i}.txt", f"Extra story {i}")
        build(settings, embedder, full=True)
        live.get()
    assert not old_generation.exists()

    hits = old.search("harbour reopens")
    assert hits and hits[0].article_id == "two.txt"
    assert old.article("two.txt").text[hits[0].start : hits[0].end] == hits[0].text
    assert old.article("extra0.txt") is None  # it still reads its own generation


def test_a_failed_reload_keeps_the_previous_assistant(settings, embedder, live):
    current = live.get()
    manifest_path = settings.index_dir / "manifest.json"
    good = manifest_path.read_text()
    manifest = json.loads(good)
    manifest["generation"] = "gen-1"  # names a generation that is not there
    manifest_path.write_text(json.dumps(manifest))

    assert live.get() is current
    assert "gen-1" in live.last_error
    with pytest.raises(Exception, match=r"gen-1|damaged"):
        live.refresh()
    assert live.get() is current

    manifest_path.write_text(good)
    write_article(settings.corpus_dir, "three.txt", "Bridge repair approved", LUMBRIDGE)
    build(settings, embedder)
    assert live.get().article("three.txt") is not None
    assert live.last_error is None


def test_no_index_fails_on_first_use_with_the_fix(tmp_path, embedder):
    live = LiveAssistant(tmp_path / "nothing", embedder)
    with pytest.raises(Exception, match="qa index build"):
        live.get()


# --- IndexUpdater: rebuilds ----------------------------------------------------------------------


def test_a_second_rebuild_is_refused_while_one_runs(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    assert updater.status()["state"] == "idle"
    write_article(settings.corpus_dir, "three.txt", "Bridge repair approved", LUMBRIDGE)
    with build_lock(settings.index_dir):  # as if another process were building: it must wait
        assert updater.start_rebuild() is True
        assert updater.status()["state"] == "running"
        assert updater.status()["operation"] == "rebuild"
        assert updater.start_rebuild() is False
        assert updater.start_rebuild(full=True) is False
    assert updater.wait(timeout=60)

    status = updater.status()
    assert status["state"] == "idle" and status["last_error"] is None
    assert status["started_at"] and status["finished_at"]
    assert status["last_report"]["added"] == ["three.txt"]
    assert status["generation"] == read_manifest(settings.index_dir).generation
    assert status["revision"] == read_manifest(settings.index_dir).revision
    assert live.get().article("three.txt") is not None
    assert updater.start_rebuild() is True  # free again
    assert updater.wait(timeout=60)


def test_a_failed_rebuild_is_reported(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    corpus = settings.corpus_dir
    corpus.rename(corpus.with_name("moved"))
    assert updater.start_rebuild() is True
    assert updater.wait(timeout=60)
    status = updater.status()
    assert status["state"] == "failed"
    assert "corpus folder" in status["last_error"] and status["finished_at"]
    assert live.get().article("one.txt") is not None  # nothing was removed


# --- IndexUpdater: saving articles ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.txt",
        "a/b\\c.md",
        "..\\..\\windows\\win.ini.txt",
        "/absolute/path/story.txt",
        "nul\x00byte.txt",
        "．．／．．／fullwidth.md",  # fullwidth dots and slash
        "café au lait.md",
        "-rf.json",
        "..hidden-ish.jsonl",
        "UPPER.HTML",
        "x" * 500 + ".txt",
    ],
)
def test_hostile_names_become_plain_safe_names(name):
    safe = safe_upload_name(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(txt|md|html|htm|json|jsonl)", safe)
    assert "/" not in safe and ".." not in safe and len(safe) <= 120
    assert safe_upload_name(name) == safe  # the same name always lands on the same file


@pytest.mark.parametrize(
    "name",
    [
        "x.exe",
        ".bashrc",
        "evil.txt\x00.exe",
        "report\u202etxt.exe",  # right-to-left override: displays as "reportexe.txt"
        "notes.pdf",
        "archive.tar.gz",
        "",
        "...",
        ".txt",
        "../",
        "noextension",
    ],
)
def test_names_without_an_allowed_extension_are_refused(name):
    with pytest.raises(UploadRefused):
        safe_upload_name(name)


def test_plain_names_are_kept_and_distinct_names_never_collide():
    assert safe_upload_name("story-1.md") == "story-1.md"
    names = {safe_upload_name(n) for n in ("a b.md", "a_b.md", "a?b.md", "a/b.md", "A B.md")}
    assert len(names) == 5


def test_add_articles_writes_only_inside_uploads(tmp_path, settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    before = {p for p in tmp_path.rglob("*")}
    hostile = [
        "../../etc/passwd.txt",
        "a/b\\c.md",
        "nul\x00byte.txt",
        "．．／．．／fullwidth.md",
        ".bashrc",
        "x.exe",
        "evil.txt\x00.exe",
    ]
    uploads = [
        Upload(name, f"Story {i}\n\n{BODY.replace('budget', f'topic{i}')}\n".encode())
        for i, name in enumerate(hostile)
    ]
    result = updater.add_articles(uploads)

    created = {p for p in tmp_path.rglob("*")} - before
    new_files = {p for p in created if p.is_file() and not p.is_relative_to(settings.index_dir)}
    uploads_dir = (settings.corpus_dir / "uploads").resolve()
    assert len(new_files) == 4 == len(result.saved) == len(result.articles)
    for path in new_files:
        assert path.resolve().parent == uploads_dir
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", path.name)
    assert sorted(s.path for s in result.skipped) == sorted(
        [".bashrc", "x.exe", "evil.txt\x00.exe"]
    )
    assert not (tmp_path.parent / "etc").exists() and not (tmp_path / "etc").exists()
    assert all(live.get().article(article_id) for article_id in result.articles)
    assert result.report is not None and len(result.report.added) == 4


def test_an_upload_is_searchable_as_soon_as_add_returns(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    result = updater.add_articles([Upload("bridge.md", f"# Bridge\n\n{LUMBRIDGE}\n".encode())])
    assert result.saved == ["uploads/bridge.md"] and result.articles == ["uploads/bridge.md"]
    assert live.get().search("Lumbridge bridge repair")[0].article_id == "uploads/bridge.md"
    assert updater.status()["operation"] == "add articles"


def test_the_same_name_again_is_an_update(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    updater.add_articles([Upload("bridge.md", f"# Bridge\n\n{LUMBRIDGE}\n".encode())])
    second = updater.add_articles(
        [Upload("bridge.md", f"# Bridge\n\n{LUMBRIDGE} It will reopen in May.\n".encode())]
    )
    assert second.report.updated == ["uploads/bridge.md"]
    assert "reopen in May" in live.get().article("uploads/bridge.md").text
    assert [p.name for p in (settings.corpus_dir / "uploads").iterdir()] == ["bridge.md"]


def test_records_are_saved_as_json_and_an_id_makes_a_repost_an_update(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    record = {"title": "Bridge repair", "text": LUMBRIDGE, "source": "Lumbridge Post"}
    first = updater.add_articles(records=[record, {"id": "story-7", "text": BODY}])
    assert len(first.saved) == 2 and all(
        re.fullmatch(r"uploads/[a-z0-9-]+\.json", p) for p in first.saved
    )
    assert first.articles[1] == "story-7"
    hit = live.get().search("Lumbridge bridge repair")[0]
    assert hit.source == "Lumbridge Post" and hit.title == "Bridge repair"

    again = updater.add_articles(records=[record])  # same content: same file, nothing to do
    assert again.saved == first.saved[:1] and not again.report.changed
    update = updater.add_articles(records=[{"id": "story-7", "text": BODY + " A recount."}])
    assert update.saved == first.saved[1:] and update.report.updated == ["story-7"]
    assert "recount" in live.get().article("story-7").text
    assert len(list((settings.corpus_dir / "uploads").iterdir())) == 2


def test_unreadable_uploads_are_refused_with_the_reason_and_not_written(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    result = updater.add_articles(
        [
            Upload("binary.txt", b"abc\x00def"),
            Upload("empty.md", b""),
            Upload("latin1.txt", "Caf\xe9 news".encode("latin-1")),
            Upload("bad.json", b'{"title": "no text"}'),
        ],
        records=[{"id": "one.txt", "text": "I would replace another file's article."}],
    )
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons["binary.txt"] == "binary file (contains NUL bytes)"
    assert reasons["empty.md"] == "empty file"
    assert reasons["latin1.txt"] == "not UTF-8 text"
    assert 'missing "text" field' in reasons["bad.json"]
    assert "already in use" in reasons["articles[0]"]
    assert result.saved == [] and result.articles == [] and result.report is None
    assert not (settings.corpus_dir / "uploads").exists()


def test_a_partly_readable_jsonl_is_saved_and_its_bad_lines_reported(settings, embedder, live):
    updater = IndexUpdater(settings, embedder, live)
    data = json.dumps({"text": LUMBRIDGE}) + "\nnot json\n" + json.dumps({"title": "x"}) + "\n"
    result = updater.add_articles([Upload("batch.jsonl", data.encode())])
    assert result.saved == ["uploads/batch.jsonl"] and result.articles == ["uploads/batch.jsonl#1"]
    assert sorted(s.path for s in result.skipped) == [
        "uploads/batch.jsonl:2",
        "uploads/batch.jsonl:3",
    ]


def test_oversized_uploads_are_refused(settings, embedder, live):
    small = dataclasses.replace(settings, max_file_bytes=1_000)
    updater = IndexUpdater(small, embedder, live)
    result = updater.add_articles([Upload("big.txt", b"word " * 1_000)])
    assert result.saved == [] and "limit" in result.skipped[0].reason


def _open_files(folder: Path) -> list[str]:
    """The files under `folder` this process holds open, deleted ones included."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder.resolve())):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_replaced_generation_is_closed_when_its_last_user_lets_go(settings, embedder, live):
    """Without the cycle collector: its SQLite file is closed at once, even once deleted."""
    gc.disable()
    try:
        in_use = live.get()  # a query still running on the first generation
        first = settings.index_dir / live.generation
        reader = weakref.ref(in_use._reader)
        for i in range(3):  # the first generation is deleted from disk on the way
            write_article(settings.corpus_dir, f"extra{i}.txt", f"Extra story {i}")
            build(settings, embedder, full=True)
            live.get().search("budget")
        assert not first.exists()
        assert any(path.startswith(str(first.resolve())) for path in _open_files(first.parent))
        assert in_use.search("harbour reopens")  # it still answers meanwhile

        del in_use  # the query finishes
        assert reader() is None
        assert _open_files(first.parent) == [
            path for path in _open_files(first.parent) if live.generation in path
        ]
    finally:
        gc.enable()
