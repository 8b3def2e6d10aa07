"""A loaded, read-only view of the index: vector search plus chunk and article lookups."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.store.filters import IN_LIST, ChunkFilter, json_list
from qa.store.manifest import IndexUnusable, Manifest, read_manifest_file, read_state
from qa.store.postings import CollectionStatistics, LexicalSet, has_postings
from qa.store.schema import (
    CHUNK_VECTORS,
    DATABASE,
    SEGMENTS,
    SENTENCE_VECTORS,
    TITLE_WEIGHT,
    connect,
)
from qa.store.vectors import Segment, VectorSet, read_ids
from qa.terms import stem
from qa.types import Article, FileStamp, Hit

# FTS5 scores every row holding any query word: in a big index, a word found in more than this
# share of the passages (and more than COMMON_WORD_PASSAGES) adds little to BM25 (its IDF is
# low) but costs a scan of its whole posting list, so the FTS5 search leaves it out. At 1M
# chunks (benchmarks/scale.py archive, 200 questions) a 10% share cut hybrid p50 from 149 to
# 116 ms with the answer in the top 10 as often (94.0%). The inverted files need no such cut.
COMMON_WORD_PASSAGES = 10_000
COMMON_WORD_SHARE = 0.10


def match_expression(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression for words: each quoted, joined by OR.

    Quoting every word means FTS5 syntax in the input (quotes, `*`, NEAR, `-`, parentheses,
    column filters) is matched as plain words and can never make the query invalid.
    """
    return " OR ".join(f'"{word}"' for word in words if word and '"' not in word)


def without_common_words(
    words: Sequence[str],
    passages: int,
    document_frequencies: Callable[[Sequence[str]], dict[str, int]],
) -> Sequence[str]:
    """In a big index, the words found in few enough passages (unless every word is common:
    then the rarest stays)."""
    limit = max(COMMON_WORD_PASSAGES, COMMON_WORD_SHARE * passages)
    if passages <= limit or len(words) < 2:
        return words
    found = document_frequencies([stem(word) for word in words])
    frequency = {word: found.get(stem(word), 0) for word in words}
    rare = [word for word in words if frequency[word] <= limit]
    return rare or [min(words, key=frequency.__getitem__)]


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
    """A loaded, read-only view of the index as it was when opened: vector search plus chunk
    and article lookups.

    Its database connection holds one read transaction for its whole life, so rows and the
    vectors loaded with them stay in step while builds commit newer states. Searches may run
    from many threads at once; SQLite access is serialised by a lock.

    A long-lived reader (a server's) calls `release_log()` once it is the only reader left,
    or SQLite could never restart its write-ahead log, which would grow with every build.
    """

    def __init__(
        self,
        index_dir: Path,
        manifest: Manifest,
        vectors: VectorSet,
        sentence_vectors: VectorSet,
        db: sqlite3.Connection,
        lexical: LexicalSet | None = None,
    ):
        self.index_dir = index_dir
        self.manifest = manifest
        self._vectors = vectors
        self._sentence_vectors = sentence_vectors
        self._lexical = lexical  # None: an index built before postings, searched by FTS5
        self._sentence_chunks: tuple[np.ndarray, np.ndarray] | None = None
        self._sentences_by_chunk: tuple[np.ndarray, np.ndarray] | None = None
        self._db = db
        self._lock = threading.Lock()
        self.stale = False  # see release_log()
        # A sqlite3 connection sits in a reference cycle with its own statement cache, so
        # dropping it leaves the file open (deleted generations included) until the cycle
        # collector runs. Closing it when the reader goes makes the release immediate.
        self._closer = weakref.finalize(self, _close_all, db, vectors, sentence_vectors, lexical)

    @classmethod
    def open(cls, index_dir: Path | str) -> IndexReader:
        """Load the live index and check that its parts agree with each other."""
        index_dir = Path(index_dir)
        for attempt in range(3):
            try:
                return cls._open(index_dir)
            except FileNotFoundError as error:
                # A merge committed while this was opening, and the next write removed the
                # segments it replaced: the newer state names files that exist.
                if attempt == 2:
                    raise IndexUnusable(
                        f"index in {index_dir} is damaged ({error}); rebuild it with "
                        "`qa index build --full`"
                    ) from error
        raise AssertionError("unreachable")

    @classmethod
    def _open(cls, index_dir: Path) -> IndexReader:
        data = read_manifest_file(index_dir)
        if data is None:
            raise IndexUnusable(
                f"no index in {index_dir}; build one with `qa index build --index {index_dir}`"
            )
        generation = index_dir / str(data["generation"])
        db = None
        try:
            db = connect(generation / DATABASE, read_only=True)
            db.execute("BEGIN")
            m = Manifest.from_parts(data, read_state(db))
            vector_sets = {
                kind: VectorSet(
                    generation / SEGMENTS,
                    [
                        Segment(r["name"], r["kind"], r["count"], bool(r["coded"]))
                        for r in db.execute(
                            "SELECT * FROM segments WHERE kind = ? ORDER BY name", (kind,)
                        )
                    ],
                    (
                        r[0]
                        for r in db.execute(
                            "SELECT id FROM deleted_vectors WHERE kind = ?", (kind,)
                        )
                    ),
                    m.dimension,
                    m.ann,
                )
                for kind in (CHUNK_VECTORS, SENTENCE_VECTORS)
            }
            lexical_set = _lexical_set(db, generation / SEGMENTS)
            (articles,) = db.execute("SELECT count(*) FROM articles").fetchone()
            (chunks,) = db.execute("SELECT count(*) FROM chunks").fetchone()
            (lexical,) = db.execute("SELECT count(*) FROM chunks_fts").fetchone()
            (sentences,) = db.execute("SELECT count(*) FROM sentence_vectors").fetchone()
        except FileNotFoundError:
            if db is not None:
                db.close()
            raise
        except (RuntimeError, sqlite3.Error, ValueError, KeyError, TypeError) as error:
            if db is not None:
                db.close()
            raise IndexUnusable(
                f"index in {index_dir} is damaged ({generation.name}: {error}); rebuild it with "
                "`qa index build --full`"
            ) from error
        vectors, sentence_vectors = vector_sets[CHUNK_VECTORS], vector_sets[SENTENCE_VECTORS]
        sentence_count = m.sentence_vectors
        expected = (m.articles, m.chunks, m.chunks, m.chunks, sentence_count, sentence_count)
        found = (articles, chunks, vectors.count, lexical, sentences, sentence_vectors.count)
        if found != expected:
            db.close()
            raise IndexUnusable(
                f"index in {index_dir} is inconsistent: its state says {m.articles} articles, "
                f"{m.chunks} chunks and {m.sentence_vectors} sentence vectors; found "
                f"{articles} articles, {chunks} chunks, {lexical} full-text rows, "
                f"{vectors.count} vectors, {sentences} sentence rows and "
                f"{sentence_vectors.count} sentence vectors; rebuild it with "
                "`qa index build --full`"
            )
        if lexical_set is not None and lexical_set.documents != m.chunks:
            db.close()
            raise IndexUnusable(
                f"index in {index_dir} is inconsistent: {m.chunks} chunks but "
                f"{lexical_set.documents} in the inverted files; rebuild it with "
                "`qa index build --full`"
            )
        return cls(index_dir, m, vectors, sentence_vectors, db, lexical_set)

    def close(self) -> None:
        with self._lock:
            self._closer()

    def release_log(self) -> bool:
        """Let SQLite restart its write-ahead log: checkpoint it and, if that copied all of it
        into the database, begin this reader's transaction again, now on the database file.

        The state is the same unless a build committed in between (microseconds); then the
        reader reads newer rows than its vectors until it is replaced, and `stale` says so.
        Returns whether the log was released (not while another reader still needs it).
        """
        path = self.index_dir / self.manifest.generation / DATABASE
        with self._lock:
            try:
                writer = sqlite3.connect(path, isolation_level=None)
                try:
                    busy, frames, copied = writer.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                finally:
                    writer.close()
                if busy or frames != copied:
                    return False
                self._db.execute("COMMIT")
                self._db.execute("BEGIN")
                self.stale = read_state(self._db)["version"] != self.manifest.version
            except sqlite3.Error:
                return False  # a read-only index folder, say: the log stays as it is
            return True

    def search_all(self, request: RankingRequest) -> Rankings:
        """Every ranking `request` asks for, and the hits of every chunk they name: what one
        shard of a sharded index answers for a query, in one round trip."""
        allowed = request.allowed
        if request.filters is not None and request.filters.active and allowed is None:
            allowed = self.filtered_chunk_ids(request.filters)
        found: dict[str, list[tuple[int, float]]] = {}
        if request.lexical and request.words:
            found["lexical"] = self.lexical_search(
                request.words, request.depth, request.filters, allowed, request.statistics
            )
        if request.vector is not None and request.sentence:
            found["sentence"] = self.search_sentences(request.vector, request.depth, allowed)
        if request.vector is not None and request.dense:
            found["dense"] = self.search_vectors(request.vector, request.depth, allowed)
        top = request.hits_per_ranking
        named = sorted({chunk_id for ranking in found.values() for chunk_id, _ in ranking[:top]})
        hits = {hit.chunk_id: hit for hit in self.hits([(chunk_id, 0.0) for chunk_id in named])}
        return Rankings(found, hits)

    def search_vectors(
        self, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Nearest chunk ids by inner product; with `allowed_ids`, only among those."""
        return self._vectors.search(query, k, allowed_ids)

    def vector_set(self, kind: str) -> VectorSet:
        """The loaded vectors of one kind, "chunks" or "sentences" (for benchmarks and checks)."""
        return {CHUNK_VECTORS: self._vectors, SENTENCE_VECTORS: self._sentence_vectors}[kind]

    def search_sentences(
        self, query: np.ndarray, k: int, allowed_chunk_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Chunks ranked by their sentence most similar to `query`: (chunk id, cosine), best
        first, `k` at most; with `allowed_chunk_ids`, only among those chunks.
        """
        total = self._sentence_vectors.count
        if k <= 0 or total == 0:
            return []
        allowed = None
        if allowed_chunk_ids is not None:
            allowed = self._sentence_ids_of(allowed_chunk_ids)
            if not allowed:
                return []
            total = len(allowed)
        ranked: list[tuple[int, float]] = []
        depth = 4 * k  # a chunk has several sentences: look deeper than k
        while True:
            pairs = self._sentence_vectors.search(query, min(depth, total), allowed)
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
        """The ids of the sentence vectors of `chunk_ids`, from the in-memory map."""
        ids, chunks = self._sentence_map()
        if self._sentences_by_chunk is None:
            by_chunk = np.argsort(chunks, kind="stable")
            self._sentences_by_chunk = (by_chunk, chunks[by_chunk])
        order, sorted_chunks = self._sentences_by_chunk
        wanted = np.unique(np.asarray(chunk_ids, dtype=np.int64))
        lows = np.searchsorted(sorted_chunks, wanted, side="left")
        highs = np.searchsorted(sorted_chunks, wanted, side="right")
        counts = highs - lows
        # Every position lows[i] .. highs[i] - 1, for all i, in one vector.
        starts = np.repeat(lows - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        places = starts + np.arange(int(counts.sum()))
        return ids[order[places]].tolist()

    def _sentence_map(self) -> tuple[np.ndarray, np.ndarray]:
        """Sentence vector ids (ascending) and their chunks, loaded once: 16 bytes a sentence."""
        if self._sentence_chunks is None:
            rows = self.query("SELECT id, chunk FROM sentence_vectors ORDER BY id")
            pairs = np.asarray([tuple(row) for row in rows], dtype=np.int64).reshape(-1, 2)
            self._sentence_chunks = (pairs[:, 0].copy(), pairs[:, 1].copy())
        return self._sentence_chunks

    def _chunks_of_sentences(self, sentence_ids: Sequence[int]) -> dict[int, int]:
        # Held in memory: a query per search cost more than the search.
        ids, chunks = self._sentence_map()
        wanted = np.asarray(sentence_ids, dtype=np.int64)
        places = np.searchsorted(ids, wanted)
        return {int(i): int(chunks[p]) for i, p in zip(wanted, places, strict=True)}

    def sentence_vectors_for(self, sentences: Sequence[tuple[str, int]]) -> np.ndarray:
        """For (article_id, sentence start) pairs: the sentence's vector from the chunk that
        holds most of it (a zero row for a sentence without one).
        """
        if not sentences:
            return np.zeros((0, self._sentence_vectors.dimension), dtype=np.float32)
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
        # -1 is no id: a zero row for a sentence without a vector
        return self._sentence_vectors.vectors([best.get(key, -1) for key in sentences])

    def filtered_chunk_ids(self, filters: ChunkFilter) -> list[int]:
        """Ids of the chunks whose article passes `filters`."""
        where, parameters = filters.sql()
        # The articles first, from a covering index, then their chunks by chunks_article: a
        # join looked up every chunk's article row, text pages included (2.3 s at 1M chunks).
        rows = self.query(
            f"""SELECT c.id FROM chunks c
                WHERE c.article IN (SELECT a.id FROM articles a WHERE {where})""",
            parameters,
        )
        return [row["id"] for row in rows]

    def lexical_search(
        self,
        words: Sequence[str],
        k: int,
        filters: ChunkFilter | None = None,
        allowed: Sequence[int] | None = None,
        statistics: CollectionStatistics | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` best chunks for `words` by BM25 (any of them may match), best first;
        higher is better. `allowed`: the chunk ids `filters` keep, when already known.
        `statistics`: a sharded index's collection statistics (`lexical_statistics` summed over
        its shards), so that this shard's scores compare with the others'."""
        if k <= 0 or not words:
            return []
        if self._lexical is not None:
            if filters is not None and filters.active and allowed is None:
                allowed = self.filtered_chunk_ids(filters)
            keep = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64))
            return self._lexical.search(words, k, keep, statistics)
        return self._full_text_search(words, k, filters)

    def lexical_statistics(self, words: Sequence[str]) -> CollectionStatistics | None:
        """This index's BM25 statistics for `words`; None for an index searched by FTS5 (built
        before inverted files), whose scores cannot be put on another index's scale."""
        return self._lexical.statistics(words) if self._lexical is not None else None

    def _full_text_search(
        self, words: Sequence[str], k: int, filters: ChunkFilter | None
    ) -> list[tuple[int, float]]:
        """BM25 by FTS5, for an index whose segments have no inverted files."""
        words = without_common_words(words, self.manifest.chunks, self.document_frequencies)
        match = match_expression(words)
        if not match:
            return []
        if filters is None or not filters.active:
            # No join: it would run for every matching row, not only for the k returned.
            rows = self.query(
                f"""SELECT rowid AS id, bm25(chunks_fts, {TITLE_WEIGHT}, 1.0) AS rank
                    FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?""",
                [match, k],
            )
        else:
            where, parameters = filters.sql()
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
            f"SELECT term, doc FROM chunks_vocab WHERE term IN {IN_LIST}", [json_list(terms)]
        )
        return {row["term"]: row["doc"] for row in rows}

    def vectors_for(self, chunk_ids: Sequence[int]) -> np.ndarray:
        return self._vectors.vectors(chunk_ids)

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
                WHERE c.id IN {IN_LIST}""",
            [json_list(ids)],
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
                WHERE a.article_id IN {IN_LIST} ORDER BY c.id""",
            [json_list(ids)],
        )
        return [row["id"] for row in rows]

    def stats(self) -> dict[str, Any]:
        """Counts, model, chunk settings, build times and size: what `qa index stats` shows."""
        return {
            **self.manifest.stats(),
            "size_bytes": self.size_on_disk(),
            "parts": self.parts(),
            "index_dir": str(self.index_dir),
        }

    def parts(self) -> dict[str, dict[str, Any]]:
        """Each part of the loaded index: what it is, its rows, segments, and its bytes on disk
        and (for the vectors) in memory."""
        generation = self.index_dir / self.manifest.generation
        found: dict[str, dict[str, Any]] = {
            "database": {
                "kind": "SQLite (articles, chunks, FTS5, sentences)",
                "disk_bytes": sum(path.stat().st_size for path in generation.glob(f"{DATABASE}*")),
            }
        }
        if self._lexical is not None:
            found["lexical"] = {
                "kind": "BM25 over inverted files (memory-mapped postings)",
                "rows": self._lexical.documents,
                "segments": self._lexical.segments,
                "disk_bytes": self._lexical.disk_bytes(),
                "memory_bytes": self._lexical.memory_bytes(),
            }
        else:
            found["lexical"] = {
                "kind": "BM25 by FTS5, in the database (no inverted files: `qa index compact`)",
                "disk_bytes": 0,
            }
        for name, vectors in (
            ("vectors", self._vectors),
            ("sentence_vectors", self._sentence_vectors),
        ):
            found[name] = {
                "kind": vectors.describe(),
                "rows": vectors.count,
                "approximate_rows": vectors.approximate_count,
                "segments": len(vectors.segments),
                "deleted_rows": sum(s.count for s in vectors.segments) - vectors.count,
                "disk_bytes": vectors.disk_bytes(),
                "memory_bytes": vectors.memory_bytes(),
            }
        return found

    def size_on_disk(self) -> int:
        generation = self.index_dir / self.manifest.generation
        return sum(path.stat().st_size for path in generation.rglob("*") if path.is_file())


@dataclass(frozen=True)
class RankingRequest:
    """The rankings of one query that a search needs (`IndexReader.search_all`)."""

    words: Sequence[str]
    vector: np.ndarray | None
    depth: int
    filters: ChunkFilter | None = None
    allowed: Sequence[int] | None = None  # chunk ids `filters` keep, when known
    statistics: CollectionStatistics | None = None  # a sharded index's, for BM25
    lexical: bool = True
    sentence: bool = True
    dense: bool = False
    # Hits for the best this many chunks of each ranking (None: all): what a search will
    # likely show, without sending the text of every candidate.
    hits_per_ranking: int | None = None


@dataclass(frozen=True)
class Rankings:
    """Chunk rankings by name ("lexical", "sentence", "dense"), best first, and the hits of
    every chunk in them (scores not set)."""

    rankings: dict[str, list[tuple[int, float]]]
    hits: dict[int, Hit]


@dataclass(frozen=True)
class Catalog:
    """What an incremental build compares the corpus with: each indexed article's path and
    content hash, and the stamps of the corpus files last read without a problem."""

    articles: dict[str, tuple[str, str]]  # article id → (path, content hash)
    files: dict[str, FileStamp]


def read_catalog(index_dir: Path, manifest: Manifest) -> Catalog:
    """The live generation's catalog, read without loading any vectors."""
    path = Path(index_dir) / manifest.generation / DATABASE
    try:
        db = connect(path, read_only=True)
        db.row_factory = None  # plain tuples: a quarter of a million rows in a big index
        try:
            db.execute("BEGIN")
            articles = {
                row[0]: (row[1], row[2])
                for row in db.execute("SELECT article_id, path, content_hash FROM articles")
            }
            files = {
                row[0]: FileStamp(row[0], row[1], row[2])
                for row in db.execute("SELECT path, size, mtime_ns FROM files")
            }
        finally:
            db.close()
    except sqlite3.Error as error:
        raise IndexUnusable(
            f"index in {index_dir} is damaged ({path}: {error}); rebuild it with "
            "`qa index build --full`"
        ) from error
    return Catalog(articles, files)


def _lexical_set(db: sqlite3.Connection, folder: Path) -> LexicalSet | None:
    """BM25 over the chunk segments' inverted files; None when a segment has none (written
    before them: `qa index compact` or a full build writes them)."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM segments WHERE kind = ? ORDER BY name", (CHUNK_VECTORS,)
        )
    ]
    if not all(has_postings(folder, name) for name in names):
        return None
    deleted = np.fromiter(
        (
            r[0]
            for r in db.execute("SELECT id FROM deleted_vectors WHERE kind = ?", (CHUNK_VECTORS,))
        ),
        dtype=np.int64,
    )
    segments = [(name, read_ids(folder, Segment(name, CHUNK_VECTORS, 0))) for name in names]
    return LexicalSet(folder, segments, deleted)


def _close_all(db: sqlite3.Connection, *parts: VectorSet | LexicalSet | None) -> None:
    db.close()
    for part in parts:
        if part is not None:
            part.close()
