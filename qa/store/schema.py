"""File names inside a generation, the SQLite schema, and opening a generation's database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

FORMAT_VERSION = 4  # 2: full-text table, sentences; 3: sentence vectors; 4: segments
MANIFEST = "manifest.json"
DATABASE = "qa.sqlite3"
SEGMENTS = "segments"  # the folder of a generation's vector segments
CHUNK_VECTORS = "chunks"  # the two kinds of vectors, as named in the segments table
SENTENCE_VECTORS = "sentences"

SCHEMA = """
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
-- What an incremental build compares the corpus with, read without the articles' text pages.
CREATE INDEX IF NOT EXISTS articles_catalog ON articles(article_id, path, content_hash);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
-- What a filter reads to list the articles it keeps, without their text pages.
CREATE INDEX IF NOT EXISTS articles_filter ON articles(source, published, article_id);
-- The vector segments that make up the index (files in segments/, never changed once written).
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,  -- 'chunks' (ids are chunk ids) or 'sentences' (sentence_vectors ids)
    count INTEGER NOT NULL,
    coded INTEGER NOT NULL  -- 1: has IVF-PQ codes and is searched approximately
);
-- Ids whose rows are gone but whose vectors are still in a segment, until a merge drops them.
CREATE TABLE IF NOT EXISTS deleted_vectors (
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
-- Segments replaced by a merge: their files go at the next write, once no reader opens them.
CREATE TABLE IF NOT EXISTS retired_segments (name TEXT PRIMARY KEY);
-- Corpus files read without a problem, by size and modification time: unchanged, not re-read.
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
-- Near-duplicate articles (qa/news/copies.py): each article's MinHash signature and report
-- (the article id of its group's first article), and the band keys that find candidates.
CREATE TABLE IF NOT EXISTS article_copies (
    article INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    report TEXT NOT NULL,  -- the article id of the group's first article
    signature BLOB NOT NULL  -- PERMUTATIONS unsigned 64-bit MinHash values
);
CREATE TABLE IF NOT EXISTS article_copy_bands (
    article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    band INTEGER NOT NULL,
    key INTEGER NOT NULL,
    PRIMARY KEY (band, key, article)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS article_copy_bands_article ON article_copy_bands(article);
-- The commit record of the rows and segments: one row, changed by every build.
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    articles INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    sentence_vectors INTEGER NOT NULL,
    built_at TEXT NOT NULL,
    last_build TEXT NOT NULL  -- JSON
);
"""


TITLE_WEIGHT = 0.5  # a title word counts half as much as the same word in the passage


def connect(path: Path, *, read_only: bool, staging: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are begun and ended explicitly.

    The database is in WAL mode: a reader's transaction keeps seeing the state it began with
    while a build commits the next one. A `staging` database (a new generation, not yet
    visible) needs no journal: if its build dies, the whole folder goes.
    """
    if read_only:
        connection = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
    else:
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute(f"PRAGMA journal_mode = {'OFF' if staging else 'WAL'}")
        connection.execute(f"PRAGMA synchronous = {'OFF' if staging else 'FULL'}")
        connection.execute("PRAGMA cache_size = -131072")  # 128 MiB: FTS5 inserts gain most
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA foreign_keys = ON")
    # SQLite's NOCASE folds ASCII only; outlet names are matched with Unicode case folding.
    connection.create_function("casefold", 1, _casefold, deterministic=True)
    return connection


def _casefold(value: str | None) -> str | None:
    return value.casefold() if value is not None else None
