"""Index builds with the fake embedder: incremental changes, removals, skips, manifest checks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from qa.chunking import Chunker
from qa.indexing import build_index, sentences_overlapping
from qa.ingest import NOT_FOLLOWED
from qa.sentences import split_sentences
from qa.service import Assistant
from qa.store import IndexReader, IndexUnusable, read_manifest
from tests.conftest import FakeEmbedder

BODY = (
    "The council met on Tuesday to discuss the budget. Members argued for three hours.\n\n"
    "In the end the proposal passed by seven votes to two. The mayor welcomed the result."
)


def write_article(folder: Path, name: str, title: str, body: str = BODY) -> Path:
    path = folder / name
    path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    return path


def build(corpus: Path, index: Path, embedder: FakeEmbedder, **kwargs):
    chunker = Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4)
    return build_index(corpus, index, embedder, chunker, **kwargs)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_article(folder, "one.txt", "Council passes the budget")
    write_article(
        folder, "two.txt", "Harbour reopens after storm", BODY.replace("budget", "harbour")
    )
    return folder


def test_first_build_indexes_everything_and_writes_a_manifest(corpus: Path, tmp_path: Path):
    index, embedder = tmp_path / "index", FakeEmbedder()
    report = build(corpus, index, embedder)

    assert sorted(report.added) == ["one.txt", "two.txt"]
    assert report.full_reason == "no index yet"
    assert report.chunks_embedded == len(embedder.embedded) == report.chunks > 2
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["embedding"] == {
        "model": embedder.model_id,
        "dimension": 64,
        "normalized": True,
        "metric": "inner_product",
    }
    reader = IndexReader.open(index)
    chunk_rows = reader.query(
        'SELECT a.text, c.start, c."end" FROM chunks c JOIN articles a ON a.id = c.article'
    )
    sentence_rows = sum(
        len(sentences_overlapping(split_sentences(text), start, end))
        for text, start, end in chunk_rows
    )
    reader.close()
    assert read_manifest(index).to_dict()["counts"] == {
        "articles": 2,
        "chunks": report.chunks,
        "sentence_vectors": sentence_rows,
    }
    assert manifest["chunking"]["chunk_tokens"] == 24
    assert "faiss-cpu" in manifest["versions"]


def test_unchanged_corpus_embeds_nothing_and_writes_nothing(corpus: Path, tmp_path: Path):
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    before = read_manifest(index)
    embedder = FakeEmbedder()
    report = build(corpus, index, embedder)

    assert embedder.embedded == []
    assert (report.added, report.updated, report.removed, report.unchanged) == ([], [], [], 2)
    assert read_manifest(index) == before


def test_adding_an_article_embeds_only_its_chunks(corpus: Path, tmp_path: Path):
    index = tmp_path / "index"
    first = build(corpus, index, FakeEmbedder())
    write_article(corpus, "three.txt", "Library extends its hours", BODY.replace("budget", "books"))
    embedder = FakeEmbedder()
    report = build(corpus, index, embedder)

    reader = IndexReader.open(index)
    new_chunks = reader.chunk_ids_of(["three.txt"])
    assert report.added == ["three.txt"] and report.unchanged == 2
    assert report.chunks_embedded == len(embedder.embedded) == len(new_chunks) > 0
    assert all("books" in t or "Library" in t or "votes" in t for t in embedder.embedded)
    assert reader.manifest.chunks == first.chunks + len(new_chunks)


def test_changing_an_article_replaces_its_chunks_and_keeps_the_others(corpus, tmp_path):
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    untouched = IndexReader.open(index).chunk_ids_of(["two.txt"])
    old = IndexReader.open(index).chunk_ids_of(["one.txt"])
    write_article(corpus, "one.txt", "Council passes the budget", BODY + " A recount was refused.")
    report = build(corpus, index, FakeEmbedder())

    reader = IndexReader.open(index)
    assert report.updated == ["one.txt"]
    assert reader.chunk_ids_of(["two.txt"]) == untouched
    assert not set(reader.chunk_ids_of(["one.txt"])) & set(old)
    assert "recount" in reader.article("one.txt").text


def test_deleting_an_article_removes_it_from_faiss_and_sqlite(corpus, tmp_path):
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    gone = IndexReader.open(index).chunk_ids_of(["two.txt"])
    (corpus / "two.txt").unlink()
    report = build(corpus, index, FakeEmbedder())

    reader = IndexReader.open(index)
    assert report.removed == ["two.txt"] and report.chunks_removed == len(gone)
    assert reader.article("two.txt") is None
    assert reader.query("SELECT count(*) AS n FROM chunks")[0]["n"] == reader.manifest.chunks
    embedder = FakeEmbedder()
    found = {cid for cid, _ in reader.search_vectors(embedder.embed_query("harbour"), 100)}
    assert found and not found & set(gone)


def test_an_unreadable_file_is_skipped_and_its_indexed_version_kept(corpus, tmp_path):
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    (corpus / "two.txt").write_bytes(b"\xff\xfe\x00binary\x00")
    (corpus / "notes.pdf").write_bytes(b"%PDF-1.4")
    report = build(corpus, index, FakeEmbedder())

    assert sorted(s.path for s in report.skipped) == ["notes.pdf", "two.txt"]
    assert report.removed == [] and report.kept_despite_skip == ["two.txt"]
    assert IndexReader.open(index).article("two.txt") is not None


RECORDS = [
    {"title": "Council passes the budget", "text": BODY},
    {"title": "Harbour reopens after storm", "text": BODY.replace("budget", "harbour")},
]


@pytest.mark.parametrize(
    ("name", "unreadable"),
    [
        ("news.json", lambda good: good[:-3]),  # invalid JSON
        ("news.json", lambda good: good.replace(b"council", b"c\xf6uncil")),  # not UTF-8
        ("news.json", lambda good: good.decode().encode("utf-16")),
        ("news.jsonl", lambda good: good.decode().encode("utf-16")),
        ("news.jsonl", lambda good: good + b"\x00"),  # binary
    ],
    ids=["json-invalid", "json-latin1", "json-utf16", "jsonl-utf16", "jsonl-binary"],
)
def test_an_unreadable_record_file_keeps_all_its_indexed_articles(
    tmp_path: Path, name: str, unreadable
):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    if name.endswith(".jsonl"):
        good = "".join(json.dumps(record) + "\n" for record in RECORDS).encode()
    else:
        good = json.dumps(RECORDS).encode()
    (corpus / name).write_bytes(good)
    first = build(corpus, index, FakeEmbedder())
    assert len(first.added) == 2
    (corpus / name).write_bytes(unreadable(good))
    report = build(corpus, index, FakeEmbedder())

    assert [s.path for s in report.skipped] == [name]
    assert report.removed == [] and sorted(report.kept_despite_skip) == sorted(first.added)
    reader = IndexReader.open(index)
    for article_id, record in zip(sorted(first.added), RECORDS, strict=True):
        article = reader.article(article_id)
        assert article is not None and article.text == f"{record['title']}\n\n{record['text']}"
    reader.close()


def test_changed_model_forces_a_full_rebuild_and_loading_refuses_a_mismatch(corpus, tmp_path):
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder(64))
    with pytest.raises(IndexUnusable, match="rebuild it with `qa index build --full`"):
        Assistant(IndexReader.open(index), FakeEmbedder(32))

    report = build(corpus, index, FakeEmbedder(32))
    assert report.full_reason.startswith("embedding model changed")
    assert IndexReader.open(index).manifest.dimension == 32


def test_full_rebuild_re_embeds_everything(corpus, tmp_path):
    index = tmp_path / "index"
    first = build(corpus, index, FakeEmbedder())
    report = build(corpus, index, FakeEmbedder(), full=True)
    assert report.full_reason == "requested"
    assert report.chunks_embedded == first.chunks == report.chunks


def test_inconsistent_or_missing_index_is_refused_with_the_fix(corpus, tmp_path):
    index = tmp_path / "index"
    with pytest.raises(IndexUnusable, match="qa index build"):
        IndexReader.open(index)
    build(corpus, index, FakeEmbedder())
    database = index / read_manifest(index).generation / "qa.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE state SET chunks = chunks + 1")
    with pytest.raises(IndexUnusable, match="inconsistent"):
        IndexReader.open(index)


def test_old_generations_are_cleaned_up(corpus, tmp_path):
    index = tmp_path / "index"
    for i in range(4):
        write_article(corpus, f"extra{i}.txt", f"Extra story number {i}")
        build(corpus, index, FakeEmbedder(), full=True)
    generations = sorted(p.name for p in index.glob("gen-*"))
    assert len(generations) == 2 and read_manifest(index).generation in generations
    assert not list(index.glob(".staging-*"))


def test_search_returns_hits_with_exact_offsets(corpus, tmp_path):
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    assistant = Assistant(IndexReader.open(index), FakeEmbedder())
    hits = assistant.search("harbour reopens", k=3)
    assert hits and hits[0].article_id == "two.txt"
    for hit in hits:
        article = assistant.article(hit.article_id)
        assert article.text[hit.start : hit.end] == hit.text
        assert set(hit.to_dict()) == {
            "chunk_id", "article_id", "title", "source", "url", "published", "text",
            "start", "end", "score", "ranks",
        }  # fmt: skip
        ranks = hit.to_dict()["ranks"]
        assert set(ranks) <= {"lexical", "sentence", "dense"} and ranks
        assert all(isinstance(place, int) and place >= 1 for place in ranks.values())
    assert assistant.search("   ") == []


def test_an_article_indexed_from_a_link_goes_once_links_are_refused(corpus: Path, tmp_path: Path):
    """A link skipped by rule is no unreadable file: its article is removed, not kept."""
    index, embedder = tmp_path / "index", FakeEmbedder()
    build(corpus, index, embedder)
    outside = write_article(tmp_path, "secret.txt", "Secret notes of the server")
    # An index built when links were still followed: the article as a plain file, then the file
    # replaced by a link to the outside.
    write_article(corpus, "notes.txt", "Secret notes of the server")
    assert build(corpus, index, embedder).added == ["notes.txt"]
    (corpus / "notes.txt").unlink()
    (corpus / "notes.txt").symlink_to(outside)

    report = build(corpus, index, embedder)
    assert report.removed == ["notes.txt"] and report.kept_despite_skip == []
    assert [(s.path, s.reason) for s in report.skipped] == [("notes.txt", NOT_FOLLOWED)]
    assert IndexReader.open(index).article("notes.txt") is None
