"""Writing a build's changes: into a new generation (first or full build) or the live one in place.

An incremental build costs what it changes: its rows go into the live database in one
transaction, its vectors into new segment files (fsynced before that transaction commits), and
the ids it deletes are recorded, not cut out of the segments they lie in. Readers keep seeing the
state their transaction began with; the commit moves them all at once to the new one. A killed
build leaves segment files no committed state names: the next write removes them.

A full build writes a complete generation beside the live one and then replaces manifest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.files import atomic_write_text, fsync_directory, fsync_file
from qa.store.lock import remove_abandoned
from qa.store.manifest import IndexUnusable, Manifest, library_versions, read_state
from qa.store.postings import PostingsWriter, has_postings, merge_postings
from qa.store.schema import (
    CHUNK_VECTORS,
    DATABASE,
    MANIFEST,
    SCHEMA,
    SEGMENTS,
    SENTENCE_VECTORS,
    TITLE_WEIGHT,
    connect,
)
from qa.store.vectors import (
    AnnSettings,
    Segment,
    SegmentWriter,
    quantizer_of,
    read_ids,
    read_rows,
    train_quantizer,
    write_segment,
)
from qa.types import Article, Chunk, FileStamp

_KEEP_PREVIOUS_GENERATIONS = 1  # a server may still be reading the one before
MAX_SEGMENTS = 8  # of each kind, after an incremental build: more are merged, smallest first
KINDS = (CHUNK_VECTORS, SENTENCE_VECTORS)


def _uncoded_big(segments: Sequence[Segment], ann: AnnSettings) -> bool:
    return any(not s.coded and s.count >= ann.threshold for s in segments)


class GenerationWriter:
    """Writes a build's changes; nothing is visible to readers until `commit()`.

    With `base` (the live manifest) it changes that generation in place; without, it writes a
    new generation that `commit()` makes the live one.
    """

    def __init__(
        self,
        index_dir: Path | str,
        *,
        base: Manifest | None,
        dimension: int,
        ann: AnnSettings | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned(self.index_dir)
        self._base = base
        self._ann = base.ann if base is not None else (ann or AnnSettings())
        self._dimension = dimension
        if base is not None:
            if base.dimension != dimension:
                raise IndexUnusable(
                    f"index has dimension {base.dimension}, the embedder {dimension}; "
                    "rebuild it with `qa index build --full`"
                )
            self._name = base.generation
            self._folder = self.index_dir / base.generation
        else:
            self._name = f"gen-{time.time_ns()}"
            self._folder = self.index_dir / f".staging-{self._name}"
            (self._folder / SEGMENTS).mkdir(parents=True)
        self._segments = self._folder / SEGMENTS
        self._db = connect(self._folder / DATABASE, read_only=False, staging=base is None)
        # Tables added since the index was built appear empty (every statement is IF NOT
        # EXISTS); before BEGIN, since executescript commits a transaction it finds open.
        self._db.executescript(SCHEMA)
        self._db.execute("BEGIN IMMEDIATE")
        self._remove_unnamed_segment_files()
        self._pending: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
            kind: ([], []) for kind in KINDS
        }
        self._pending_postings = PostingsWriter(TITLE_WEIGHT)  # of the staged chunk vectors
        self._written = 0

    # --- rows ------------------------------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The new generation's database, inside the build's transaction (for derived tables)."""
        return self._db

    def remove_articles(self, article_ids: Iterable[str]) -> int:
        """Delete articles with their chunks; their vectors are marked deleted. Returns how
        many chunks went."""
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
                sentence_ids = [
                    row[0]
                    for row in self._db.execute(
                        f"""SELECT v.id FROM sentence_vectors v JOIN articles a
                            ON a.id = v.article WHERE a.article_id IN ({marks})""",
                        batch,
                    )
                ]
                self._db.executemany(
                    "INSERT OR IGNORE INTO deleted_vectors (kind, id) VALUES (?, ?)",
                    [(CHUNK_VECTORS, i) for i in chunk_ids]
                    + [(SENTENCE_VECTORS, i) for i in sentence_ids],
                )
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
            self._stage(CHUNK_VECTORS, np.asarray(chunk_ids, dtype=np.int64), vectors)
            for chunk in chunks:
                self._pending_postings.add(article.title, chunk.text)
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
                self._stage(
                    SENTENCE_VECTORS, np.asarray(sentence_ids, dtype=np.int64), span_vectors
                )

    def record_files(self, stamps: Iterable[FileStamp], forget: Iterable[str] = ()) -> None:
        """Remember corpus files read without a problem; forget those gone or now unreadable."""
        self._db.executemany("DELETE FROM files WHERE path = ?", [(path,) for path in forget])
        self._db.executemany(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns) VALUES (?, ?, ?)",
            [(s.path, s.size, s.mtime_ns) for s in stamps],
        )

    # --- vectors ---------------------------------------------------------------------------

    def _stage(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self._dimension:
            raise ValueError(
                f"vectors of shape {vectors.shape}, expected dimension {self._dimension}"
            )
        self._pending[kind][0].append(ids)
        self._pending[kind][1].append(vectors)

    def flush(self) -> None:
        """Write the vectors added so far as one new segment per kind (bounds the memory of a
        big build); they become visible with the rest at `commit()`."""
        for kind in KINDS:
            ids, vectors = self._pending[kind]
            if not ids:
                continue
            name = self._segment_name(kind)
            segment = write_segment(
                self._segments, name, kind, np.concatenate(ids), np.vstack(vectors)
            )
            if kind == CHUNK_VECTORS:
                self._pending_postings.write(self._segments, name)
                self._pending_postings = PostingsWriter(TITLE_WEIGHT)
            self._add_segment(segment)
            self._pending[kind] = ([], [])

    def _segment_name(self, kind: str) -> str:
        self._written += 1
        return f"{kind}-{time.time_ns()}-{self._written}"

    def _add_segment(self, segment: Segment) -> None:
        self._db.execute(
            "INSERT INTO segments (name, kind, count, coded) VALUES (?, ?, ?, ?)",
            (segment.name, segment.kind, segment.count, int(segment.coded)),
        )

    def segments(self, kind: str) -> list[Segment]:
        rows = self._db.execute(
            "SELECT name, kind, count, coded FROM segments WHERE kind = ? ORDER BY name", (kind,)
        )
        return [Segment(r["name"], r["kind"], r["count"], bool(r["coded"])) for r in rows]

    def merge(self, kind: str, segments: Sequence[Segment], *, retrain: bool = False) -> None:
        """Replace `segments` by one without their deleted rows, coded when big enough.

        Streams them one at a time, so memory holds one segment's rows, not all of them.
        `retrain`: train the approximate index's quantizer afresh on these vectors.
        """
        if not segments:
            return
        deleted = np.fromiter(
            (
                r[0]
                for r in self._db.execute("SELECT id FROM deleted_vectors WHERE kind = ?", (kind,))
            ),
            dtype=np.int64,
        )
        dropped = [np.intersect1d(read_ids(self._segments, s), deleted) for s in segments]
        live = sum(s.count for s in segments) - sum(len(d) for d in dropped)
        quantizer = None
        if live >= self._ann.threshold:
            quantizer = self._quantizer(kind, segments, deleted, live, retrain)
        output = SegmentWriter(self._segments, self._segment_name(kind), kind, quantizer)
        kept = []
        for segment in segments:
            ids, vectors = read_rows(self._segments, segment, self._dimension)
            keep = ~np.isin(ids, deleted)
            output.append(ids[keep], vectors[keep])
            kept.append((segment.name, keep))
        merged = output.finish()
        if kind == CHUNK_VECTORS:
            for segment in segments:
                if not has_postings(self._segments, segment.name):
                    self._postings_from_rows(segment)  # an index built before postings
            merge_postings(self._segments, merged.name, kept)
        names = [s.name for s in segments]
        self._db.executemany("DELETE FROM segments WHERE name = ?", [(n,) for n in names])
        self._db.executemany(
            "INSERT INTO retired_segments (name) VALUES (?)", [(n,) for n in names]
        )
        self._db.executemany(
            "DELETE FROM deleted_vectors WHERE kind = ? AND id = ?",
            [(kind, int(i)) for ids in dropped for i in ids],
        )
        self._add_segment(merged)

    def _postings_from_rows(self, segment: Segment) -> None:
        """Write a chunk segment's inverted file from the rows in the database (a deleted
        chunk's row, gone from it, gets no postings)."""
        postings = PostingsWriter(TITLE_WEIGHT)
        chunk_ids = read_ids(self._segments, segment).tolist()
        texts = {
            row[0]: (row[1], row[2])
            for row in self._db.execute(
                """SELECT c.id, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article
                   WHERE c.id IN (SELECT value FROM json_each(?))""",
                [json.dumps(chunk_ids)],
            )
        }
        for chunk_id in chunk_ids:
            postings.add(*texts.get(chunk_id, ("", "")))
        postings.write(self._segments, segment.name)

    def _quantizer(
        self,
        kind: str,
        segments: Sequence[Segment],
        deleted: np.ndarray,
        live: int,
        retrain: bool,
    ) -> Any:
        """The kind's trained IVF-PQ (shared by its coded segments), trained now if none."""
        if not retrain:
            for segment in self.segments(kind):
                if segment.coded:
                    return quantizer_of(self._segments, segment)
        rng = np.random.default_rng(0)
        share = min(1.0, self._ann.train_sample / max(live, 1))
        sample = []
        for segment in segments:
            ids, vectors = read_rows(self._segments, segment, self._dimension)
            rows = vectors[~np.isin(ids, deleted)]
            sample.append(rows[rng.random(len(rows)) < share])
        return train_quantizer(np.vstack(sample), self._ann, live)

    def _merge_policy(self) -> None:
        for kind in KINDS:
            segments = self.segments(kind)
            if self._base is None:
                if len(segments) > 1 or _uncoded_big(segments, self._ann):
                    self.merge(kind, segments)  # a full build ends with one segment a kind
            elif len(segments) > MAX_SEGMENTS:
                smallest = sorted(segments, key=lambda s: s.count)
                self.merge(kind, smallest[: len(segments) - MAX_SEGMENTS // 2])

    def compact(self) -> None:
        """Merge each kind's segments into one without deleted rows; an approximate index's
        quantizer is retrained on what is there now, and chunks written before inverted files
        get them."""
        self.flush()
        for kind in KINDS:
            segments = self.segments(kind)
            lexical = kind == CHUNK_VECTORS
            unindexed = lexical and not all(has_postings(self._segments, s.name) for s in segments)
            if (
                len(segments) > 1
                or self._deleted_count(kind)
                or any(s.coded for s in segments)
                or unindexed
            ):
                self.merge(kind, segments, retrain=True)

    def _deleted_count(self, kind: str) -> int:
        (count,) = self._db.execute(
            "SELECT count(*) FROM deleted_vectors WHERE kind = ?", (kind,)
        ).fetchone()
        return int(count)

    def _remove_unnamed_segment_files(self) -> None:
        """Segment files no committed state names (a killed build's), and retired ones."""
        named = {r[0] for r in self._db.execute("SELECT name FROM segments")}
        for path in self._segments.iterdir():
            if path.name.split(".", 1)[0] not in named:
                path.unlink(missing_ok=True)
        self._db.execute("DELETE FROM retired_segments")

    # --- commit ----------------------------------------------------------------------------

    def commit(
        self, *, model: str, chunk_tokens: int, overlap_tokens: int, last_build: dict[str, Any]
    ) -> Manifest:
        """Make the changes the live index. Every file is on disk before the commit point:
        the database commit for an in-place build, manifest.json for a new generation."""
        self.flush()
        self._merge_policy()
        counts = self._check_counts()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        version = (self._base.version + 1) if self._base else 1
        self._db.execute(
            """INSERT OR REPLACE INTO state
               (id, version, articles, chunks, sentence_vectors, built_at, last_build)
               VALUES (1, ?, ?, ?, ?, ?, ?)""",
            (version, *counts, now, json.dumps(last_build)),
        )
        fsync_directory(self._segments)
        self._db.execute("COMMIT")
        state = read_state(self._db)
        if self._base is not None:
            self._db.close()
            return Manifest.from_parts(self._base.file_dict(), state)
        self._db.execute("PRAGMA journal_mode = WAL")  # for the in-place builds to come
        self._db.close()
        for path in [*self._folder.iterdir(), *self._segments.iterdir()]:
            if path.is_file():
                fsync_file(path)
        fsync_directory(self._folder)
        generation = self.index_dir / self._name
        os.replace(self._folder, generation)
        fsync_directory(self.index_dir)
        manifest = Manifest.from_parts(
            Manifest(
                generation=self._name,
                model=model,
                dimension=self._dimension,
                chunk_tokens=chunk_tokens,
                overlap_tokens=overlap_tokens,
                articles=0,
                chunks=0,
                built_at=now,
                created_at=self._base.created_at if self._base else now,
                versions=library_versions(),
                ann=self._ann,
            ).file_dict(),
            state,
        )
        atomic_write_text(self.index_dir / MANIFEST, json.dumps(manifest.file_dict(), indent=2))
        self._remove_old_generations(keep=manifest.generation)
        return manifest

    def _check_counts(self) -> tuple[int, int, int]:
        """Rows and live vectors agree, or nothing is committed."""
        (articles,) = self._db.execute("SELECT count(*) FROM articles").fetchone()
        (chunks,) = self._db.execute("SELECT count(*) FROM chunks").fetchone()
        (sentences,) = self._db.execute("SELECT count(*) FROM sentence_vectors").fetchone()
        for kind, rows in ((CHUNK_VECTORS, chunks), (SENTENCE_VECTORS, sentences)):
            live = sum(s.count for s in self.segments(kind)) - self._deleted_count(kind)
            if live != rows:
                raise IndexUnusable(f"{rows} {kind} rows but {live} live {kind} vectors")
        return int(articles), int(chunks), int(sentences)

    def abort(self) -> None:
        """Forget the changes: roll the transaction back and remove the files written."""
        written = (
            [segment.name for kind in KINDS for segment in self.segments(kind)]
            if self._db.in_transaction
            else []
        )
        named_before: set[str] = set()
        try:
            self._db.execute("ROLLBACK")
            named_before = {r[0] for r in self._db.execute("SELECT name FROM segments")}
        except sqlite3.Error:
            pass
        self._db.close()
        if self._base is None:
            shutil.rmtree(self._folder, ignore_errors=True)
            return
        for name in written:
            if name not in named_before:
                for path in self._segments.glob(f"{name}.*"):
                    path.unlink(missing_ok=True)

    def _remove_old_generations(self, keep: str) -> None:
        older = sorted(
            (p for p in self.index_dir.glob("gen-*") if p.name != keep),
            key=lambda p: int(p.name.split("-")[1]),
        )
        for path in older[: max(0, len(older) - _KEEP_PREVIOUS_GENERATIONS)]:
            shutil.rmtree(path, ignore_errors=True)
