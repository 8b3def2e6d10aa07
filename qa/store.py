"""The index directory: FAISS vectors and one SQLite database per generation, and a manifest.

Layout::

    index/
      manifest.json          the commit record: names the live generation, written last
      gen-<ns>/qa.sqlite3    articles and chunks; chunk row ids are the FAISS ids
      gen-<ns>/vectors.faiss IndexIDMap2 over inner product of normalized vectors

A build writes a complete new generation beside the live one and then replaces manifest.json
atomically, so a build killed at any moment leaves the previous index loadable and complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa.files import atomic_write_text, fsync_directory, fsync_file
from qa.types import Article, Chunk, Hit

FORMAT_VERSION = 3  # 2: full-text table, sentences; 3: sentence vectors
MANIFEST = "manifest.json"
DATABASE = "qa.sqlite3"
VECTORS = "vectors.faiss"
SENTENCE_VECTORS = "sentences.faiss"
BUILD_LOCK = ".build.lock"
_KEEP_PREVIOUS_GENERATIONS = 1  # a server may still be reading the one before

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    published TEXT NOT NULL,
    author TEXT NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    text TEXT NOT NULL
);
-- AUTOINCREMENT: a deleted chunk's id is never reused, so a FAISS id always means one chunk.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article);
-- BM25 over chunk text (and the article title, weighted lower); rowid = chunk id.
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, tokenize = 'porter unicode61 remove_diacritics 2'
);
-- Sentence boundaries, found once at build time, for the answerer.
CREATE TABLE IF NOT EXISTS sentences (
    article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    PRIMARY KEY (article, start)
) WITHOUT ROWID;
-- Each sentence as encoded inside each chunk holding some of it; id = its id in sentences.faiss.
CREATE TABLE IF NOT EXISTS sentence_vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,  -- the sentence's own offsets in the article
    "end" INTEGER NOT NULL,
    covered INTEGER NOT NULL  -- how many of its characters lie inside the chunk
);
CREATE INDEX IF NOT EXISTS sentence_vectors_chunk ON sentence_vectors(chunk);
CREATE INDEX IF NOT EXISTS sentence_vectors_sentence ON sentence_vectors(article, start);
-- Per-term document frequencies of the full-text table (IDF for sentence scoring).
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE INDEX IF NOT EXISTS articles_published ON articles(published);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
"""


TITLE_WEIGHT = 0.5  # a title word counts half as much as the same word in the passage


@dataclass(frozen=True)
class ChunkFilter:
    """Restricts a search to articles by outlet, publication date (inclusive) or id."""

    source: str | None = None
    published_after: str | None = None  # ISO date, inclusive
    published_before: str | None = None  # ISO date, inclusive
    article_ids: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        return any(
            value is not None
            for value in (
                self.source,
                self.published_after,
                self.published_before,
                self.article_ids,
            )
        )

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE condition over `articles a`, and its parameters."""
        conditions, parameters = ["1"], []
        if self.source is not None:
            conditions.append("casefold(a.source) = ?")
            parameters.append(self.source.casefold())
        if self.published_after is not None:
            conditions.append("a.published <> '' AND a.published >= ?")
            parameters.append(self.published_after)
        if self.published_before is not None:
            # A date-only bound includes the whole day, whatever the stored precision.
            conditions.append("a.published <> '' AND substr(a.published, 1, 10) <= ?")
            parameters.append(self.published_before)
        if self.article_ids is not None:
            conditions.append(f"a.article_id IN {_IN_LIST}")
            parameters.append(_json_list(self.article_ids))
        return " AND ".join(conditions), parameters


# A list of any length as one parameter: `IN (?, ?, ...)` stops at SQLite's variable limit
# (32,766), and a filter may name hundreds of thousands of articles.
_IN_LIST = "(SELECT value FROM json_each(?))"


def _json_list(values: Iterable[Any]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


class IndexUnusable(Exception):
    """The index directory is missing, damaged, or does not match the configuration."""


@dataclass(frozen=True)
class Manifest:
    """What an index was built with, checked whenever it is opened."""

    generation: str
    model: str
    dimension: int
    chunk_tokens: int
    overlap_tokens: int
    articles: int
    chunks: int
    built_at: str
    created_at: str
    sentence_vectors: int = 0
    format_version: int = FORMAT_VERSION
    last_build: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "generation": self.generation,
            "embedding": {
                "model": self.model,
                "dimension": self.dimension,
                "normalized": True,
                "metric": "inner_product",
            },
            "chunking": {
                "splitter": "langchain RecursiveCharacterTextSplitter, model tokens",
                "chunk_tokens": self.chunk_tokens,
                "overlap_tokens": self.overlap_tokens,
            },
            "counts": {
                "articles": self.articles,
                "chunks": self.chunks,
                "sentence_vectors": self.sentence_vectors,
            },
            "created_at": self.created_at,
            "built_at": self.built_at,
            "last_build": self.last_build,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            format_version=int(data["format_version"]),
            generation=str(data["generation"]),
            model=str(data["embedding"]["model"]),
            dimension=int(data["embedding"]["dimension"]),
            chunk_tokens=int(data["chunking"]["chunk_tokens"]),
            overlap_tokens=int(data["chunking"]["overlap_tokens"]),
            articles=int(data["counts"]["articles"]),
            chunks=int(data["counts"]["chunks"]),
            sentence_vectors=int(data["counts"].get("sentence_vectors", 0)),
            created_at=str(data["created_at"]),
            built_at=str(data["built_at"]),
            last_build=dict(data.get("last_build", {})),
            versions=dict(data.get("versions", {})),
        )


def read_manifest(index_dir: Path) -> Manifest | None:
    """The live manifest, or None when no index was ever built here."""
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise IndexUnusable(
            f"{path} is damaged ({error}); rebuild it with `qa index build --full`"
        ) from error
    if manifest.format_version != FORMAT_VERSION:
        raise IndexUnusable(
            f"{path} has format version {manifest.format_version}, this version reads "
            f"{FORMAT_VERSION}; rebuild it with `qa index build --full`"
        )
    return manifest


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("qa-assistant", "faiss-cpu", "sentence-transformers", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    return versions


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        connection = sqlite3.connect(path, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA foreign_keys = ON")
    # SQLite's NOCASE folds ASCII only; outlet names are matched with Unicode case folding.
    connection.create_function("casefold", 1, _casefold, deterministic=True)
    return connection


def _casefold(value: str | None) -> str | None:
    return value.casefold() if value is not None else None


def remove_abandoned(index_dir: Path) -> None:
    """Remove the staging folders and half-written manifests a killed build left behind.

    They are never part of an index. Call it with the build lock held, so that no other build
    is writing them.
    """
    for leftover in index_dir.glob(".staging-gen-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in index_dir.glob(f".{MANIFEST}.*.tmp"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def build_lock(index_dir: Path | str) -> Iterator[None]:
    """Hold the exclusive build lock of `index_dir`; waits while another build holds it.

    One build at a time per index, across processes: a second concurrent build would take
    the first one's staging folder for a killed build's leftovers and remove it.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / BUILD_LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _article_from_row(row: sqlite3.Row) -> Article:
    return Article(
        article_id=row["article_id"],
        title=row["title"],
        text=row["text"],
        source=row["source"],
        url=row["url"],
        published=row["published"],
        author=row["author"],
        path=row["path"],
        content_hash=row["content_hash"],
    )


class IndexReader:
    """A loaded, read-only generation: vector search plus chunk and article lookups.

    Searches may run from many threads at once; SQLite access is serialised by a lock.
    """

    def __init__(
        self,
        index_dir: Path,
        manifest: Manifest,
        vectors: faiss.Index,
        sentence_vectors: faiss.Index,
        db: sqlite3.Connection,
    ):
        self.index_dir = index_dir
        self.manifest = manifest
        self._vectors = vectors
        self._sentence_vectors = sentence_vectors
        self._sentence_chunks: tuple[np.ndarray, np.ndarray] | None = None
        self._db = db
        self._lock = threading.Lock()
        # A sqlite3 connection sits in a reference cycle with its own statement cache, so
        # dropping it leaves the file open (deleted generations included) until the cycle
        # collector runs. Closing it when the reader goes makes the release immediate.
        self._closer = weakref.finalize(self, db.close)

    @classmethod
    def open(cls, index_dir: Path | str) -> IndexReader:
        """Load the live generation and check that its parts agree with each other."""
        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise IndexUnusable(
                f"no index in {index_dir}; build one with `qa index build --index {index_dir}`"
            )
        generation = index_dir / manifest.generation
        try:
            vectors = faiss.read_index(str(generation / VECTORS))
            sentence_vectors = faiss.read_index(str(generation / SENTENCE_VECTORS))
            db = _connect(generation / DATABASE, read_only=True)
            (articles,) = db.execute("SELECT count(*) FROM articles").fetchone()
            (chunks,) = db.execute("SELECT count(*) FROM chunks").fetchone()
            (lexical,) = db.execute("SELECT count(*) FROM chunks_fts").fetchone()
            (sentences,) = db.execute("SELECT count(*) FROM sentence_vectors").fetchone()
        except (RuntimeError, sqlite3.Error) as error:
            raise IndexUnusable(
                f"index in {index_dir} is damaged ({error}); rebuild it with "
                "`qa index build --full`"
            ) from error
        m = manifest
        sentence_count = m.sentence_vectors
        expected = (m.articles, m.chunks, m.chunks, m.chunks, sentence_count, sentence_count)
        found = (articles, chunks, vectors.ntotal, lexical, sentences, sentence_vectors.ntotal)
        if found != expected or {vectors.d, sentence_vectors.d} != {m.dimension}:
            raise IndexUnusable(
                f"index in {index_dir} is inconsistent: manifest says {m.articles} articles, "
                f"{m.chunks} chunks and {m.sentence_vectors} sentence vectors of dimension "
                f"{m.dimension}; found {articles} articles, {chunks} chunks, {lexical} "
                f"full-text rows, {vectors.ntotal} vectors of dimension {vectors.d}, "
                f"{sentences} sentence rows and {sentence_vectors.ntotal} sentence vectors of "
                f"dimension {sentence_vectors.d}; rebuild it with `qa index build --full`"
            )
        return cls(index_dir, manifest, vectors, sentence_vectors, db)

    def close(self) -> None:
        with self._lock:
            self._closer()

    def search_vectors(
        self, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Nearest chunk ids by inner product; with `allowed_ids`, only among those."""
        if k <= 0 or self._vectors.ntotal == 0:
            return []
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
            # faiss's stubs miss the keyword arguments its Python wrapper adds.
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self._vectors.search(
            query.reshape(1, -1).astype(np.float32), min(k, self._vectors.ntotal), params=params
        )
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def search_sentences(
        self, query: np.ndarray, k: int, allowed_chunk_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Chunks ranked by their sentence most similar to `query`: (chunk id, cosine), best
        first, `k` at most; with `allowed_chunk_ids`, only among those chunks.
        """
        total = self._sentence_vectors.ntotal
        if k <= 0 or total == 0:
            return []
        params = None
        if allowed_chunk_ids is not None:
            allowed = self._sentence_ids_of(allowed_chunk_ids)
            if not allowed:
                return []
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            # faiss's stubs miss the keyword arguments its Python wrapper adds.
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        ranked: list[tuple[int, float]] = []
        depth = 4 * k  # a chunk has several sentences: look deeper than k
        while True:
            scores, ids = self._sentence_vectors.search(
                query.reshape(1, -1).astype(np.float32), min(depth, total), params=params
            )
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            chunk_of = self._chunks_of_sentences([i for i, _ in pairs])
            ranked, seen = [], set()
            for sentence_id, score in pairs:
                chunk_id = chunk_of[sentence_id]
                if chunk_id not in seen:
                    seen.add(chunk_id)
                    ranked.append((chunk_id, score))
            if len(ranked) >= k or len(pairs) < min(depth, total) or depth >= total:
                return ranked[:k]
            depth *= 2

    def _sentence_ids_of(self, chunk_ids: Sequence[int]) -> list[int]:
        found: list[int] = []
        for begin in range(0, len(chunk_ids), 500):
            batch = list(chunk_ids[begin : begin + 500])
            rows = self.query(
                f"SELECT id FROM sentence_vectors WHERE chunk IN ({','.join('?' * len(batch))})",
                batch,
            )
            found.extend(row[0] for row in rows)
        return found

    def _chunks_of_sentences(self, sentence_ids: Sequence[int]) -> dict[int, int]:
        # Held in memory (16 bytes a sentence): a query per search cost more than the search.
        if self._sentence_chunks is None:
            rows = self.query("SELECT id, chunk FROM sentence_vectors ORDER BY id")
            pairs = np.asarray([tuple(row) for row in rows], dtype=np.int64).reshape(-1, 2)
            self._sentence_chunks = (pairs[:, 0].copy(), pairs[:, 1].copy())
        ids, chunks = self._sentence_chunks
        wanted = np.asarray(sentence_ids, dtype=np.int64)
        places = np.searchsorted(ids, wanted)
        return {int(i): int(chunks[p]) for i, p in zip(wanted, places, strict=True)}

    def sentence_vectors_for(self, sentences: Sequence[tuple[str, int]]) -> np.ndarray:
        """For (article_id, sentence start) pairs: the sentence's vector from the chunk that
        holds most of it (a zero row for a sentence without one).
        """
        rows = np.zeros((len(sentences), self._sentence_vectors.d), dtype=np.float32)
        if not sentences:
            return rows
        wanted = sorted(set(sentences))
        best: dict[tuple[str, int], int] = {}
        for begin in range(0, len(wanted), 400):
            batch = wanted[begin : begin + 400]
            condition = " OR ".join(["(a.article_id = ? AND v.start = ?)"] * len(batch))
            found = self.query(
                f"""SELECT a.article_id, v.start, v.id FROM sentence_vectors v
                    JOIN articles a ON a.id = v.article WHERE {condition}
                    ORDER BY v.covered, v.id DESC""",
                [value for pair in batch for value in pair],
            )
            best.update({(row[0], row[1]): row[2] for row in found})  # the last row wins
        for position, key in enumerate(sentences):
            if key in best:
                rows[position] = self._sentence_vectors.reconstruct(int(best[key]))
        return rows

    def filtered_chunk_ids(self, filters: ChunkFilter) -> list[int]:
        """Ids of the chunks whose article passes `filters`."""
        where, parameters = filters.sql()
        rows = self.query(
            f"SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article WHERE {where}",
            parameters,
        )
        return [row["id"] for row in rows]

    def lexical_search(
        self, match: str, k: int, filters: ChunkFilter | None = None
    ) -> list[tuple[int, float]]:
        """BM25 over the full-text table for an FTS5 `match` expression; higher is better."""
        if k <= 0 or not match:
            return []
        where, parameters = filters.sql() if filters else ("1", [])
        rows = self.query(
            f"""SELECT f.rowid AS id, bm25(chunks_fts, {TITLE_WEIGHT}, 1.0) AS rank
                FROM chunks_fts f
                JOIN chunks c ON c.id = f.rowid JOIN articles a ON a.id = c.article
                WHERE chunks_fts MATCH ? AND {where}
                ORDER BY rank LIMIT ?""",
            [match, *parameters, k],
        )
        # FTS5's bm25() is negated so that ascending order is best first.
        return [(row["id"], -float(row["rank"])) for row in rows]

    def sentences_in(
        self, spans: Sequence[tuple[str, int, int]]
    ) -> dict[str, list[tuple[int, int]]]:
        """For (article_id, start, end) ranges: each article's sentences overlapping them."""
        found: dict[str, set[tuple[int, int]]] = {}
        for article_id, start, end in spans:
            rows = self.query(
                """SELECT s.start, s."end" FROM sentences s JOIN articles a ON a.id = s.article
                   WHERE a.article_id = ? AND s.start < ? AND s."end" > ?""",
                (article_id, end, start),
            )
            found.setdefault(article_id, set()).update((r[0], r[1]) for r in rows)
        return {article_id: sorted(spans) for article_id, spans in found.items()}

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks contain each (stemmed) term, as FTS5 indexed it."""
        if not terms:
            return {}
        rows = self.query(
            f"SELECT term, doc FROM chunks_vocab WHERE term IN {_IN_LIST}", [_json_list(terms)]
        )
        return {row["term"]: row["doc"] for row in rows}

    def vectors_for(self, chunk_ids: Sequence[int]) -> np.ndarray:
        return np.vstack([self._vectors.reconstruct(int(i)) for i in chunk_ids])

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def hits(self, scored: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in the given order."""
        if not scored:
            return []
        ids = [chunk_id for chunk_id, _ in scored]
        rows = self.query(
            f"""SELECT c.id, c.start, c."end", c.text, a.article_id, a.title, a.source, a.url,
                       a.published
                FROM chunks c JOIN articles a ON a.id = c.article
                WHERE c.id IN {_IN_LIST}""",
            [_json_list(ids)],
        )
        by_id = {row["id"]: row for row in rows}
        return [
            Hit(
                chunk_id=chunk_id,
                article_id=by_id[chunk_id]["article_id"],
                title=by_id[chunk_id]["title"],
                source=by_id[chunk_id]["source"],
                url=by_id[chunk_id]["url"],
                published=by_id[chunk_id]["published"],
                text=by_id[chunk_id]["text"],
                start=by_id[chunk_id]["start"],
                end=by_id[chunk_id]["end"],
                score=score,
            )
            for chunk_id, score in scored
            if chunk_id in by_id
        ]

    def article(self, article_id: str) -> Article | None:
        rows = self.query("SELECT * FROM articles WHERE article_id = ?", (article_id,))
        return _article_from_row(rows[0]) if rows else None

    def articles(self) -> list[Article]:
        return [_article_from_row(r) for r in self.query("SELECT * FROM articles ORDER BY id")]

    def sources(self) -> list[str]:
        """Every outlet named by an article, sorted."""
        rows = self.query("SELECT DISTINCT source FROM articles WHERE source <> '' ORDER BY 1")
        return [row["source"] for row in rows]

    def chunk_ids_of(self, article_ids: Iterable[str]) -> list[int]:
        ids = list(article_ids)
        if not ids:
            return []
        rows = self.query(
            f"""SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article
                WHERE a.article_id IN {_IN_LIST} ORDER BY c.id""",
            [_json_list(ids)],
        )
        return [row["id"] for row in rows]

    def stats(self) -> dict[str, Any]:
        """Counts, model, chunk settings, build times and size: what `qa index stats` shows."""
        manifest = self.manifest
        return {
            "articles": manifest.articles,
            "chunks": manifest.chunks,
            "sentence_vectors": manifest.sentence_vectors,
            "model": manifest.model,
            "dimension": manifest.dimension,
            "chunk_tokens": manifest.chunk_tokens,
            "overlap_tokens": manifest.overlap_tokens,
            "built_at": manifest.built_at,
            "created_at": manifest.created_at,
            "size_bytes": self.size_on_disk(),
            "index_dir": str(self.index_dir),
        }

    def size_on_disk(self) -> int:
        generation = self.index_dir / self.manifest.generation
        return sum(path.stat().st_size for path in generation.iterdir() if path.is_file())


class GenerationWriter:
    """Builds the next generation from the live one (or from nothing) and commits it atomically.

    Nothing is visible to readers until `commit()` replaces manifest.json.
    """

    def __init__(self, index_dir: Path | str, *, base: Manifest | None, dimension: int):
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned(self.index_dir)
        self._name = f"gen-{time.time_ns()}"
        self._staging = self.index_dir / f".staging-{self._name}"
        self._staging.mkdir()
        self._base = base
        db_path = self._staging / DATABASE
        if base is not None:
            source = _connect(self.index_dir / base.generation / DATABASE, read_only=True)
            self._db = _connect(db_path, read_only=False)
            source.backup(self._db)
            source.close()
            self._vectors = faiss.read_index(str(self.index_dir / base.generation / VECTORS))
            self._sentence_vectors = faiss.read_index(
                str(self.index_dir / base.generation / SENTENCE_VECTORS)
            )
        else:
            self._db = _connect(db_path, read_only=False)
            self._vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
            self._sentence_vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._db.executescript(_SCHEMA)
        if {self._vectors.d, self._sentence_vectors.d} != {dimension}:
            raise IndexUnusable(
                f"index has dimension {self._vectors.d}, the embedder {dimension}; "
                "rebuild it with `qa index build --full`"
            )

    def remove_articles(self, article_ids: Iterable[str]) -> int:
        """Delete articles with their chunks and vectors; returns how many chunks went."""
        ids = list(article_ids)
        removed = 0
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            chunk_ids = [
                row[0]
                for row in self._db.execute(
                    f"""SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article
                        WHERE a.article_id IN ({marks})""",
                    batch,
                )
            ]
            if chunk_ids:
                # faiss's stubs miss that its Python wrapper takes an array of ids.
                self._vectors.remove_ids(np.asarray(chunk_ids, dtype=np.int64))  # type: ignore[arg-type]
                sentence_ids = [
                    row[0]
                    for row in self._db.execute(
                        f"""SELECT v.id FROM sentence_vectors v JOIN articles a
                            ON a.id = v.article WHERE a.article_id IN ({marks})""",
                        batch,
                    )
                ]
                self._sentence_vectors.remove_ids(np.asarray(sentence_ids, dtype=np.int64))  # type: ignore[arg-type]
                self._db.executemany(
                    "DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in chunk_ids]
                )
            self._db.execute(f"DELETE FROM articles WHERE article_id IN ({marks})", batch)
            removed += len(chunk_ids)
        return removed

    def add_article(
        self,
        article: Article,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        sentences: Sequence[tuple[int, int]] = (),
        chunk_sentences: Sequence[tuple[Sequence[tuple[int, int]], np.ndarray]] = (),
    ) -> None:
        """Store an article with its chunks and their vectors.

        `sentences` are the article's sentence offsets; `chunk_sentences`, one per chunk when
        given, the sentences overlapping that chunk and their vectors as encoded in it.
        """
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if chunk_sentences and len(chunk_sentences) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(chunk_sentences)} sentence lists")
        cursor = self._db.execute(
            """INSERT INTO articles
               (article_id, title, source, url, published, author, path, content_hash, text)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                article.article_id,
                article.title,
                article.source,
                article.url,
                article.published,
                article.author,
                article.path,
                article.content_hash,
                article.text,
            ),
        )
        article_row = cursor.lastrowid
        self._db.executemany(
            'INSERT INTO sentences (article, start, "end") VALUES (?, ?, ?)',
            [(article_row, start, end) for start, end in sentences],
        )
        chunk_ids = []
        for chunk in chunks:
            cursor = self._db.execute(
                'INSERT INTO chunks (article, ordinal, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                (article_row, chunk.ordinal, chunk.start, chunk.end, chunk.text),
            )
            chunk_ids.append(cursor.lastrowid)
            self._db.execute(
                "INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)",
                (cursor.lastrowid, article.title, chunk.text),
            )
        if chunk_ids:
            self._vectors.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.asarray(chunk_ids, dtype=np.int64),
            )
        for chunk, chunk_id, (spans, span_vectors) in zip(
            chunks, chunk_ids, chunk_sentences, strict=False
        ):
            if len(spans) != len(span_vectors):
                raise ValueError(f"{len(spans)} sentences but {len(span_vectors)} vectors")
            sentence_ids = []
            for start, end in spans:
                covered = min(end, chunk.end) - max(start, chunk.start)
                cursor = self._db.execute(
                    """INSERT INTO sentence_vectors (chunk, article, start, "end", covered)
                       VALUES (?, ?, ?, ?, ?)""",
                    (chunk_id, article_row, start, end, covered),
                )
                sentence_ids.append(cursor.lastrowid)
            if sentence_ids:
                self._sentence_vectors.add_with_ids(
                    np.ascontiguousarray(span_vectors, dtype=np.float32),
                    np.asarray(sentence_ids, dtype=np.int64),
                )

    def commit(
        self, *, model: str, chunk_tokens: int, overlap_tokens: int, last_build: dict[str, Any]
    ) -> Manifest:
        """Make this generation the live one. Everything is on disk before the manifest moves."""
        (articles,) = self._db.execute("SELECT count(*) FROM articles").fetchone()
        (chunks,) = self._db.execute("SELECT count(*) FROM chunks").fetchone()
        (sentences,) = self._db.execute("SELECT count(*) FROM sentence_vectors").fetchone()
        if chunks != self._vectors.ntotal:
            raise IndexUnusable(f"{chunks} chunks but {self._vectors.ntotal} vectors")
        if sentences != self._sentence_vectors.ntotal:
            raise IndexUnusable(
                f"{sentences} sentence rows but {self._sentence_vectors.ntotal} sentence vectors"
            )
        self._db.commit()
        self._db.close()
        faiss.write_index(self._vectors, str(self._staging / VECTORS))
        faiss.write_index(self._sentence_vectors, str(self._staging / SENTENCE_VECTORS))
        for path in self._staging.iterdir():
            fsync_file(path)
        fsync_directory(self._staging)
        generation = self.index_dir / self._name
        os.replace(self._staging, generation)
        fsync_directory(self.index_dir)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest = Manifest(
            generation=self._name,
            model=model,
            dimension=int(self._vectors.d),
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens,
            articles=int(articles),
            chunks=int(chunks),
            sentence_vectors=int(sentences),
            built_at=now,
            created_at=self._base.created_at if self._base else now,
            last_build=last_build,
            versions=library_versions(),
        )
        atomic_write_text(self.index_dir / MANIFEST, json.dumps(manifest.to_dict(), indent=2))
        self._remove_old_generations(keep=manifest.generation)
        return manifest

    def abort(self) -> None:
        self._db.close()
        shutil.rmtree(self._staging, ignore_errors=True)

    def _remove_old_generations(self, keep: str) -> None:
        older = sorted(
            (p for p in self.index_dir.glob("gen-*") if p.name != keep),
            key=lambda p: int(p.name.split("-")[1]),
        )
        for path in older[: max(0, len(older) - _KEEP_PREVIOUS_GENERATIONS)]:
            shutil.rmtree(path, ignore_errors=True)
