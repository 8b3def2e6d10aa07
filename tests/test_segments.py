"""The index grows in place: segments, deletions, merges, compaction, unchanged files not read,
and approximate vector search above a size threshold (against exact search)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qa.ingest
import qa.store.writer
from qa.indexing import compact_index
from qa.store import AnnSettings, ChunkFilter, IndexReader
from qa.store.postings import SegmentPostings
from qa.store.vectors import VectorSet, train_quantizer, write_segment
from tests.conftest import REPO, FakeEmbedder
from tests.test_indexing import build as build_with

LONG_AGO = 1_600_000_000  # a modification time that is settled, not racily recent


def write_article(folder: Path, name: str, number: int) -> Path:
    body = " ".join(f"Report {number} line {j} on subject {number * 7 + j}." for j in range(12))
    path = folder / name
    path.write_text(f"Story {number}\n\n{body}\n", encoding="utf-8")
    os.utime(path, (LONG_AGO, LONG_AGO + number))
    return path


def build(corpus: Path, index: Path, **kwargs):
    return build_with(corpus, index, FakeEmbedder(), **kwargs)


def qa_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for number in range(6):
        write_article(folder, f"story{number}.txt", number)
    return folder


def segment_files(index: Path) -> dict[str, tuple[int, int]]:
    reader = IndexReader.open(index)
    folder = index / reader.manifest.generation / "segments"
    reader.close()
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def segments(index: Path) -> list[tuple[str, int, int]]:
    reader = IndexReader.open(index)
    rows = reader.query("SELECT kind, count, coded FROM segments ORDER BY rowid")
    reader.close()
    return [(row[0], row[1], row[2]) for row in rows]


def test_an_incremental_build_writes_only_its_change_and_reads_only_changed_files(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    index = tmp_path / "index"
    build(corpus, index)
    before = segment_files(index)
    assert [kind for kind, _, _ in segments(index)] == ["chunks", "sentences"]

    write_article(corpus, "story9.txt", 9)
    read: list[str] = []
    original = qa.ingest.load_file
    monkeypatch.setattr(
        qa.ingest,
        "load_file",
        lambda path, *a, **k: read.append(path.name) or original(path, *a, **k),
    )
    report = build(corpus, index)

    assert report.added == ["story9.txt"] and report.unchanged == 6
    assert read == ["story9.txt"]  # the six unchanged files were not even opened
    after = segment_files(index)
    assert {name: after[name] for name in before} == before  # nothing rewritten
    new = [(kind, count) for kind, count, _ in segments(index)][2:]
    assert [kind for kind, _ in new] == ["chunks", "sentences"]
    assert new[0][1] == report.chunks_embedded  # the new segment holds only the new chunks


def test_a_file_changed_in_place_is_read_again(corpus: Path, tmp_path: Path):
    index = tmp_path / "index"
    build(corpus, index)
    path = corpus / "story2.txt"
    path.write_text(path.read_text().replace("Report 2", "Update 2"), encoding="utf-8")
    os.utime(path, (LONG_AGO, LONG_AGO + 1000))  # same size, another time
    assert build(corpus, index).updated == ["story2.txt"]
    path.unlink()
    assert build(corpus, index).removed == ["story2.txt"]


def test_an_id_taken_from_an_unchanged_file_is_found_by_reading_everything(tmp_path: Path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    first = corpus / "a.jsonl"
    first.write_text('{"id": "x", "title": "First", "text": "The first story text."}\n')
    os.utime(first, (LONG_AGO, LONG_AGO))
    build(corpus, index)
    second = corpus / "b.jsonl"
    second.write_text('{"id": "x", "title": "Second", "text": "Another story, same id."}\n')
    report = build(corpus, index)
    assert not report.changed
    assert [s.path for s in report.skipped] == ["b.jsonl:1"]
    assert "duplicate id" in report.skipped[0].reason
    assert IndexReader.open(index).article("x").title == "First"


def test_deleted_vectors_are_never_found_and_compaction_drops_them(corpus: Path, tmp_path: Path):
    index = tmp_path / "index"
    build(corpus, index)
    embedder = FakeEmbedder()
    gone = IndexReader.open(index).article("story3.txt")
    (corpus / "story3.txt").unlink()
    build(corpus, index)

    reader = IndexReader.open(index)
    query = embedder.embed_query(gone.text[:200])
    found = reader.search_vectors(query, 50)
    assert found and not set(reader.chunk_ids_of(["story3.txt"]))
    gone_ids = {row[0] for row in reader.query("SELECT id FROM deleted_vectors")}
    assert gone_ids and not gone_ids & {chunk_id for chunk_id, _ in found}
    assert reader.parts()["vectors"]["deleted_rows"] > 0

    compact_index(index)
    compacted = IndexReader.open(index)
    again = compacted.search_vectors(query, 50)
    assert [i for i, _ in again] == [i for i, _ in found]
    assert [score for _, score in again] == pytest.approx([score for _, score in found])
    assert compacted.query("SELECT count(*) FROM deleted_vectors")[0][0] == 0
    assert [kind for kind, _, _ in segments(index)] == ["chunks", "sentences"]
    assert compacted.parts()["vectors"]["deleted_rows"] == 0
    # The replaced segments' files go at the next write, once no reader is opening them.
    write_article(corpus, "story10.txt", 10)
    build(corpus, index)
    names = {row[0] for row in IndexReader.open(index).query("SELECT name FROM segments")}
    assert {name.split(".")[0] for name in segment_files(index)} == names


def test_many_small_builds_keep_few_segments_and_the_same_answers(corpus: Path, tmp_path: Path):
    index, fresh = tmp_path / "index", tmp_path / "fresh"
    build(corpus, index)
    for number in range(10, 22):
        write_article(corpus, f"story{number}.txt", number)
        if number % 4 == 0:
            (corpus / f"story{number - 1}.txt").unlink()
        build(corpus, index)
    kinds = [kind for kind, _, _ in segments(index)]
    assert len(kinds) > 2 and kinds.count("chunks") <= qa.store.writer.MAX_SEGMENTS
    build(corpus, fresh)

    embedder = FakeEmbedder()
    grown, rebuilt = IndexReader.open(index), IndexReader.open(fresh)
    assert grown.manifest.chunks == rebuilt.manifest.chunks
    everything = grown.manifest.chunks
    for question in ("Report 13 line 4", "subject 100", "Story 21"):
        query = embedder.embed_query(question)
        hits, again = (
            sorted(
                (h.article_id, h.start, round(h.score, 3))
                for h in reader.hits(reader.search_vectors(query, everything))
            )
            for reader in (grown, rebuilt)
        )
        assert len(hits) == everything and hits == again


def test_a_build_of_many_batches_ends_with_one_segment_a_kind(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("qa.indexing.BATCH_CHUNKS", 3)
    index = tmp_path / "index"
    report = build(corpus, index)
    assert next((kind, count) for kind, count, _ in segments(index)) == ("chunks", report.chunks)
    assert len(segments(index)) == 2


# --- approximate search ------------------------------------------------------------------------


def clustered_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    """Unit vectors around 200 centres: neighbourhoods like real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dimension))
    vectors = centres[rng.integers(0, 200, count)] + 0.6 * rng.normal(size=(count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def approximate_set(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("segments")
    vectors = clustered_vectors(30_000, 64, seed=1)
    ids = np.arange(1, 30_001, dtype=np.int64) * 3  # ids are not positions
    settings = AnnSettings(threshold=10_000)
    quantizer = train_quantizer(vectors[::3], settings, len(vectors))
    big = write_segment(folder, "big", "chunks", ids[:25_000], vectors[:25_000], quantizer)
    small = write_segment(folder, "small", "chunks", ids[25_000:], vectors[25_000:])
    deleted = ids[::50]
    vector_set = VectorSet(folder, [big, small], deleted, 64, settings)
    live = ~np.isin(ids, deleted)
    return vector_set, ids[live], vectors[live]


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vectors @ query
    return [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:k]]


def test_approximate_search_finds_what_exact_search_finds(approximate_set):
    vector_set, ids, vectors = approximate_set
    assert vector_set.approximate_count > 0 and vector_set.count == len(ids)
    queries = clustered_vectors(100, 64, seed=2)
    recalls = []
    for query in queries:
        found = [i for i, _ in vector_set.search(query, 10)]
        expected = exact_top(ids, vectors, query, 10)
        recalls.append(len(set(found) & set(expected)) / 10)
        assert not set(found) - set(ids.tolist())  # never a deleted id
    assert np.mean(recalls) >= 0.95


def test_copies_of_one_sentence_do_not_crowd_out_the_best_one(tmp_path: Path):
    # 80 sentences near 8 topics, each repeated 300 times (wire copy, boilerplate), and others:
    # a shortlist of 100 codes can hold nothing but the copies of one sentence whose code
    # scores a little too high for a question on the topic.
    topics = clustered_vectors(8, 64, seed=5)
    rng = np.random.default_rng(9)
    sentences = topics[np.arange(80) % 8] + 0.025 * rng.normal(size=(80, 64))
    sentences /= np.linalg.norm(sentences, axis=1, keepdims=True)
    vectors = np.concatenate(
        [sentences[rng.integers(0, 80, 24_000)], clustered_vectors(6_000, 64, seed=7)]
    ).astype(np.float32)
    ids = np.arange(len(vectors), dtype=np.int64) * 2 + 1
    settings = AnnSettings(threshold=10_000)
    quantizer = train_quantizer(vectors[::3], settings, len(vectors))
    segment = write_segment(tmp_path, "big", "sentences", ids, vectors, quantizer)
    vector_set = VectorSet(tmp_path, [segment], [], 64, settings)
    rows = vectors.astype(np.float16).astype(np.float32)  # as stored
    for number, query in enumerate(topics[np.arange(120) % 8] + 0.05 * rng.normal(size=(120, 64))):
        query = (query / np.linalg.norm(query)).astype(np.float32)
        tenth = np.sort(rows @ query)[-10]
        found = vector_set.search(query, 10)
        # Copies tie, so any 10 of the best scores are right.
        assert len(found) == 10 and all(score >= tenth - 1e-5 for _, score in found), number
    vector_set.close()


def test_a_filter_keeping_one_percent_applies_before_the_top_k_cut(approximate_set):
    vector_set, ids, vectors = approximate_set
    rng = np.random.default_rng(3)
    allowed = np.sort(rng.choice(ids, size=len(ids) // 100, replace=False))
    keep = np.isin(ids, allowed)
    for query in clustered_vectors(20, 64, seed=4):
        found = vector_set.search(query, 10, allowed)
        assert [i for i, _ in found] == exact_top(ids[keep], vectors[keep], query, 10)
        assert all(
            score == pytest.approx(float(vectors[ids == i][0] @ query), abs=2e-3)
            for i, score in found
        )


def test_vectors_come_back_from_either_kind_of_segment(approximate_set):
    vector_set, ids, vectors = approximate_set
    picked = [0, 10, len(ids) - 1]  # in the coded segment and in the small one
    rows = vector_set.vectors(ids[picked])
    assert np.allclose(rows, vectors[picked], atol=2e-3)
    assert not vector_set.vectors(np.asarray([-1, 2])).any()  # unknown ids: zero rows


def test_a_big_index_is_searched_approximately_and_stats_say_so(corpus: Path, tmp_path: Path):
    for number in range(6, 60):
        write_article(corpus, f"story{number}.txt", number)
    index = tmp_path / "index"
    build(corpus, index, ann=AnnSettings(threshold=100, nlist=8))
    reader = IndexReader.open(index)
    parts = reader.parts()
    assert parts["vectors"]["approximate_rows"] == reader.manifest.chunks > 100
    assert "IVF-PQ" in parts["sentence_vectors"]["kind"]
    assert reader.manifest.to_dict()["approximate_search"]["threshold"] == 100
    embedder = FakeEmbedder()
    article = reader.article("story42.txt")
    hits = reader.hits(reader.search_vectors(embedder.embed_query(article.text[:120]), 3))
    assert hits[0].article_id == "story42.txt"

    stats = qa_cli("index", "stats", "--index", str(index))
    assert stats.returncode == 0, stats.stderr
    assert "IVF-PQ" in stats.stdout and "1 segments" in stats.stdout


def test_compact_from_the_command_line(corpus: Path, tmp_path: Path):
    index = tmp_path / "index"
    build(corpus, index)
    (corpus / "story1.txt").unlink()
    build(corpus, index)
    result = qa_cli("index", "compact", "--index", str(index))
    assert result.returncode == 0, result.stderr
    assert "compacted" in result.stdout
    assert IndexReader.open(index).parts()["vectors"]["deleted_rows"] == 0


# --- BM25 over the segments' inverted files ----------------------------------------------------

LEXICAL_QUERIES = (
    ["report", "line"],
    ["subject", "25", "story"],
    ["café", "lavrov"],
    ["snake", "case", "harbour"],
    ["reports", "lines", "subjects"],  # stems
    ["nothing", "matches", "zzz"],
)


def write_wordy_articles(folder: Path) -> None:
    for number in range(8):
        write_article(folder, f"story{number}.txt", number)
    extra = {
        "cafe.txt": "Café talks\n\nLavrov's café was a snake_case harbour of reports on the café.",
        "harbour.md": "# Harbour news\n\nThe harbour council met. Harbour cranes, harbour lines.",
    }
    for name, text in extra.items():
        (folder / name).write_text(text, encoding="utf-8")
        os.utime(folder / name, (LONG_AGO, LONG_AGO))


def assert_same_scores(ours: list[tuple[int, float]], theirs: list[tuple[int, float]]) -> None:
    assert len(ours) == len(theirs)
    assert [score for _, score in ours] == pytest.approx([score for _, score in theirs], rel=1e-4)
    # Tied scores may come in another order.
    assert {i for i, _ in ours[:1]} <= {i for i, score in theirs if score == theirs[0][1]}


def assert_scores_like_full_text(reader: IndexReader, words: list[str], allowed=None) -> None:
    everything = reader.manifest.chunks
    filters = None
    if allowed is not None:
        filters = ChunkFilter(article_ids=tuple(allowed))
        allowed = reader.filtered_chunk_ids(filters)
    ours = dict(reader.lexical_search(words, everything, filters, allowed))
    theirs = dict(reader._full_text_search(words, everything, filters))
    assert ours.keys() == theirs.keys()
    for chunk_id, score in theirs.items():
        assert ours[chunk_id] == pytest.approx(score, rel=1e-4, abs=1e-5)


def assert_inverted_files_are_ordered(index: Path) -> None:
    """Terms sorted and each term's rows ascending, in every chunk segment."""
    reader = IndexReader.open(index)
    folder = index / reader.manifest.generation / "segments"
    names = [row[0] for row in reader.query("SELECT name FROM segments WHERE kind = 'chunks'")]
    for name in names:
        part = SegmentPostings(folder, name)
        assert part.terms == sorted(part.terms) and len(part.starts) == len(part.terms) + 1
        for i in range(len(part.terms)):
            rows = np.asarray(part.rows[part.starts[i] : part.starts[i + 1]])
            assert len(rows) and (np.diff(rows) > 0).all()
        assert int(part.starts[-1]) == len(part.rows) == len(part.frequencies)


def test_inverted_files_score_as_fts5_does_through_updates_and_deletions(tmp_path: Path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    write_wordy_articles(corpus)
    build(corpus, index)
    reader = IndexReader.open(index)
    assert reader._lexical is not None
    for words in LEXICAL_QUERIES:
        assert_scores_like_full_text(reader, words)
    assert reader.lexical_search(["report", "line"], 3)[0][1] > 0

    (corpus / "story3.txt").unlink()
    write_article(corpus, "story5.txt", 50)  # changed: its old rows are deleted
    os.utime(corpus / "story5.txt", (LONG_AGO, LONG_AGO + 5000))
    write_article(corpus, "story9.txt", 9)
    report = build(corpus, index)
    assert report.removed == ["story3.txt"] and report.updated == ["story5.txt"]
    grown = IndexReader.open(index)
    assert grown.query("SELECT count(*) FROM deleted_vectors WHERE kind = 'chunks'")[0][0] > 0
    for words in LEXICAL_QUERIES:
        assert_scores_like_full_text(grown, words)
        assert_scores_like_full_text(grown, words, allowed=["story5.txt", "cafe.txt"])
    assert not set(dict(grown.lexical_search(["report"], 1000))) & set(
        row[0] for row in grown.query("SELECT id FROM deleted_vectors WHERE kind = 'chunks'")
    )

    assert_inverted_files_are_ordered(index)
    compact_index(index)
    assert_inverted_files_are_ordered(index)
    compacted = IndexReader.open(index)
    for words in LEXICAL_QUERIES:
        assert_same_scores(compacted.lexical_search(words, 100), grown.lexical_search(words, 100))


def test_an_index_without_inverted_files_is_searched_by_fts5_until_compacted(tmp_path: Path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    write_wordy_articles(corpus)
    build(corpus, index)
    expected = IndexReader.open(index).lexical_search(["harbour", "report"], 10)
    generation = IndexReader.open(index).manifest.generation
    for path in (index / generation / "segments").glob("*.lex_*"):
        path.unlink()  # as an index written before inverted files
    old = IndexReader.open(index)
    assert old._lexical is None
    assert_same_scores(old.lexical_search(["harbour", "report"], 10), expected)

    compact_index(index)
    upgraded = IndexReader.open(index)
    assert upgraded._lexical is not None
    assert_same_scores(upgraded.lexical_search(["harbour", "report"], 10), expected)


def test_a_merge_written_in_blocks_of_terms_keeps_every_live_posting_in_order(tmp_path: Path):
    from qa.store.postings import PostingsWriter, merge_postings

    rng = np.random.default_rng(3)
    vocabulary = [f"w{i}" for i in range(40)]
    sources, expected = [], {}
    row = 0
    for number in range(3):
        writer = PostingsWriter(title_weight=0.5)
        keep = rng.random(25) > 0.3
        for local in range(25):
            text = " ".join(rng.choice(vocabulary, size=int(rng.integers(1, 9))))
            writer.add("", text)
            if keep[local]:
                for term in set(text.split()):
                    expected.setdefault(term, []).append((row, text.split().count(term)))
                row += 1
        writer.write(tmp_path, f"s{number}")
        sources.append((f"s{number}", keep))

    for name, block in (("one_block", 1 << 22), ("blocks_of_5", 5), ("blocks_of_1", 1)):
        merge_postings(tmp_path, name, sources, block_postings=block)
        merged = SegmentPostings(tmp_path, name)
        assert merged.terms == sorted(expected), name
        for term, postings in expected.items():
            rows, frequencies = merged.postings(term)
            assert rows.tolist() == [r for r, _ in postings], (name, term)
            assert frequencies.tolist() == [float(f) for _, f in postings], (name, term)
        assert len(merged.lengths) == row
        merged.close()
