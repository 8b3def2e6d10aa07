"""kill -9 at random moments: of `qa index build`, and of the server during an upload and during
a rebuild. The index always loads, holding the articles from before or those from after, a
restarted server recovers, and the next build removes what a killed one left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from benchmarks.reliability_load import answer_key, ask
from qa.ingest import load_corpus, load_file
from qa.store import IndexReader
from tests.conftest import REPO, SQUAD
from tests.reliability.conftest import AUTH, TOKEN, Sizes, record, write_corpus
from tests.support.server import Server, start_server

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def indexed_ids(index: Path) -> set[str]:
    """The article ids of the live generation; fails if the index does not load."""
    reader = IndexReader.open(index)
    try:
        return {article.article_id for article in reader.articles()}
    finally:
        reader.close()


def corpus_ids(corpus: Path) -> set[str]:
    return {article.article_id for article in load_corpus(corpus).articles}


def leftovers(index: Path) -> list[str]:
    """What a killed build may leave: staging folders, temporary manifests, and segment files
    no committed state names (removed by the next build that writes)."""
    reader = IndexReader.open(index)
    named = {
        row[0]
        for row in reader.query("SELECT name FROM segments UNION SELECT name FROM retired_segments")
    }
    reader.close()
    unnamed = [
        path
        for path in index.glob("gen-*/segments/*")
        if path.name.split(".")[0] not in named and reader.manifest.generation in str(path)
    ]
    found = [*index.glob(".staging-*"), *index.glob(".manifest.json.*"), *unnamed]
    return sorted(p.name for p in found)


def writing_marks(index: Path) -> set[Path]:
    """What appears once a build has embedded and starts writing: a full build's staging
    folder, an incremental build's new segment files."""
    return {*index.glob(".staging-*"), *index.glob("gen-*/segments/*")}


def build_command(corpus: Path, index: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "qa.cli", "index", "build"),
        *("--corpus", str(corpus), "--index", str(index)),
    ]


def squad_texts() -> list[tuple[str, str]]:
    """(file name, text) of SQuAD articles the default corpus lacks: material for changes."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][10:40]
    return [
        (
            f"more-{entry['title']}.txt",
            "\n\n".join([entry["title"], *(p["context"] for p in entry["paragraphs"][:6])]),
        )
        for entry in data
    ]


@pytest.mark.skipif(not SQUAD.exists(), reason=f"needs {SQUAD}")
def test_a_build_killed_at_random_moments_leaves_the_old_or_the_new_index(
    tmp_path: Path, sizes: Sizes, seed: int
) -> None:
    rng = random.Random(seed)
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, squad_articles=4)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(build_command(corpus, index), cwd=REPO, env=env, check=True, timeout=900)
    texts = squad_texts()

    def change() -> None:
        """Add an article, and every third time remove one: each build has work to do."""
        name, text = texts.pop()
        (corpus / name).write_text(text, encoding="utf-8")
        added = sorted(corpus.glob("more-*.txt"))
        if len(added) % 3 == 0:
            added[0].unlink()

    def start() -> subprocess.Popen:
        command = build_command(corpus, index)
        return subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.DEVNULL)

    def wait_for_writing(process: subprocess.Popen, before: set[Path]) -> None:
        """Until the build has embedded and starts writing (`writing_marks`)."""
        while not writing_marks(index) - before and process.poll() is None:
            time.sleep(0.001)

    # One whole build with work, timed: from process start to exit, and its writing phase.
    change()
    began = time.monotonic()
    process = start()
    wait_for_writing(process, writing_marks(index))
    writing_began = time.monotonic()
    assert process.wait(timeout=900) == 0
    duration, writing = time.monotonic() - began, time.monotonic() - writing_began

    outcomes = {"old": 0, "new": 0, "finished first": 0, "left staging": 0}
    for round_ in range(sizes.build_kills):
        old = indexed_ids(index)
        change()
        wanted = corpus_ids(corpus)
        marks_before = writing_marks(index)
        began = time.monotonic()
        process = start()
        if round_ % 2:  # every other kill lands while the build is writing
            wait_for_writing(process, marks_before)
            time.sleep(rng.uniform(0, writing))
        else:
            time.sleep(rng.uniform(0, duration * 1.1))
        moment = time.monotonic() - began
        process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=60)
        found = indexed_ids(index)  # loads: never half-way
        assert found in (old, wanted), f"round {round_}, killed after {moment:.2f} s (seed {seed})"
        if code == 0:
            outcomes["finished first"] += 1
        else:
            outcomes["old" if found == old and old != wanted else "new"] += 1
        outcomes["left staging"] += bool(leftovers(index))

    done = subprocess.run(
        build_command(corpus, index), cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert indexed_ids(index) == corpus_ids(corpus)
    assert leftovers(index) == []
    assert len(list(index.glob("gen-*"))) <= 2
    record(
        "reliability-build-kills",
        {
            "kills": sizes.build_kills,
            "build_seconds": round(duration, 2),
            "writing_seconds": round(writing, 3),
            **outcomes,
        },
    )


def kill(server: Server) -> None:
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=60)


def restart(root: Path, corpus: Path, index: Path, name: str) -> Server:
    again = start_server(index, root / f"{name}.log", corpus=corpus, admin_token=TOKEN)
    again.wait_until_healthy()
    return again


def assert_uploads_are_whole(corpus: Path) -> None:
    """Every visible file in corpus/uploads is a complete article (temporary files are hidden
    and never read)."""
    for path in (corpus / "uploads").glob("*"):
        if not path.name.startswith("."):
            assert load_file(path, corpus).articles, f"{path.name} is not a whole article"


def test_the_server_killed_during_uploads_and_rebuilds_recovers(
    tmp_path: Path, sizes: Sizes, seed: int
) -> None:
    rng = random.Random(seed + 1)
    root = tmp_path
    corpus, index = root / "corpus", root / "index"
    write_corpus(corpus, squad_articles=3)
    server = start_server(index, root / "server.log", corpus=corpus, admin_token=TOKEN)
    server.wait_until_healthy()
    with httpx.Client(base_url=server.url, timeout=300) as client:
        expected = answer_key(ask(client))

    def upload(url: str, article_id: str, results: list[int]) -> None:
        article = {
            "id": article_id,
            "text": f"The Falador mayor opened the public library {article_id} on Monday.",
        }
        try:
            response = httpx.post(f"{url}/api/articles", json=article, headers=AUTH, timeout=300)
            results.append(response.status_code)
        except httpx.HTTPError:
            results.append(-1)  # the server died under it

    def timed(action: Callable[[], object]) -> float:
        began = time.monotonic()
        action()
        return time.monotonic() - began

    upload_seconds = timed(lambda: upload(server.url, "kill/first", []))

    def rebuild_and_wait() -> None:
        assert httpx.post(f"{server.url}/api/index/rebuild?full=true", headers=AUTH).is_success
        while httpx.get(f"{server.url}/api/index/status").json()["state"] == "running":
            time.sleep(0.05)

    rebuild_seconds = timed(rebuild_and_wait)
    outcomes: list[str] = []
    try:
        for round_ in range(sizes.server_kills):
            # During an upload: afterwards the article is indexed, or only saved (the restart
            # indexes it), or not saved at all.
            old, article_id, results = indexed_ids(index), f"kill/{seed}-{round_}", []
            sender = threading.Thread(target=upload, args=(server.url, article_id, results))
            sender.start()
            moment = rng.uniform(0, upload_seconds * 1.1)
            time.sleep(moment)
            kill(server)
            sender.join()
            where = f"upload round {round_}, killed after {moment:.2f} s (seed {seed})"
            assert indexed_ids(index) in (old, old | {article_id}), where
            assert_uploads_are_whole(corpus)
            server = restart(root, corpus, index, f"upload-{round_}")
            assert indexed_ids(index) == corpus_ids(corpus), where
            outcomes.append(f"upload: {results or ['killed']}")

            # During a full rebuild: the same articles either way.
            old = indexed_ids(index)
            started = httpx.post(f"{server.url}/api/index/rebuild?full=true", headers=AUTH)
            assert started.status_code == 202, started.text
            moment = rng.uniform(0, rebuild_seconds * 1.1)
            time.sleep(moment)
            kill(server)
            where = f"rebuild round {round_}, killed after {moment:.2f} s (seed {seed})"
            assert indexed_ids(index) == old, where
            killed_left = leftovers(index)
            server = restart(root, corpus, index, f"rebuild-{round_}")
            assert indexed_ids(index) == corpus_ids(corpus), where
            assert leftovers(index) == [], (where, killed_left)  # the startup build's doing
            outcomes.append(f"rebuild: left {killed_left}")

            with httpx.Client(base_url=server.url, timeout=300) as client:
                assert answer_key(ask(client)) == expected, where
                assert client.get("/api/health").json() == {"status": "ok"}
    finally:
        server.stop()
    record(
        "reliability-server-kills",
        {
            "rounds": sizes.server_kills,
            "upload_seconds": round(upload_seconds, 1),
            "rebuild_seconds": round(rebuild_seconds, 1),
            "outcomes": outcomes,
        },
    )
