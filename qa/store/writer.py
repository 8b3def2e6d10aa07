"""Writing the next generation beside the live one and committing it atomically."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa.files import atomic_write_text, fsync_directory, fsync_file
from qa.store.lock import remove_abandoned
from qa.store.manifest import IndexUnusable, Manifest, library_versions
from qa.store.schema import DATABASE, MANIFEST, SCHEMA, SENTENCE_VECTORS, VECTORS, connect
from qa.types import Article, Chunk

_KEEP_PREVIOUS_GENERATIONS = 1  # a server may still be reading the one before


def new_vector_index(dimension: int) -> Any:
    """An empty vector set: ids mapped to fp16 rows, searched exhaustively by inner product.

    fp16 halves the memory and disk of float32 rows and, on 2 cores, scans faster than the flat
    float32 index for a single query; cosine scores change by less than 1e-3, so rankings stay.
    An index built before keeps its flat float32 rows until a full rebuild.
    """
    rows = faiss.IndexScalarQuantizer(
        dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    return faiss.IndexIDMap2(rows)


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
            source = connect(self.index_dir / base.generation / DATABASE, read_only=True)
            self._db = connect(db_path, read_only=False)
            source.backup(self._db)
            source.close()
            self._vectors = faiss.read_index(str(self.index_dir / base.generation / VECTORS))
            self._sentence_vectors = faiss.read_index(
                str(self.index_dir / base.generation / SENTENCE_VECTORS)
            )
        else:
            self._db = connect(db_path, read_only=False)
            self._vectors = new_vector_index(dimension)
            self._sentence_vectors = new_vector_index(dimension)
        self._db.executescript(SCHEMA)
        if {self._vectors.d, self._sentence_vectors.d} != {dimension}:
            raise IndexUnusable(
                f"index has dimension {self._vectors.d}, the embedder {dimension}; "
                "rebuild it with `qa index build --full`"
            )

    @property
    def connection(self) -> sqlite3.Connection:
        """The new generation's database, inside the build's transaction (for derived tables)."""
        return self._db

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
