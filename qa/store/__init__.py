"""The index directory: one generation (SQLite database plus vector segments) and a manifest.

Layout::

    index/
      manifest.json            names the live generation and what it was built with
      gen-<ns>/qa.sqlite3      articles, chunks, full text, sentences (WAL mode), and which
                               segments and deleted ids make up the vectors, with a state row
      gen-<ns>/segments/       immutable vector segments of chunks and of sentences: ids,
                               float16 rows and, for big ones, IVF-PQ codes (`vectors.py`);
                               each chunk segment with its BM25 inverted file (`postings.py`)

An incremental build changes the live generation in place: rows in one transaction, vectors in
new segment files written before it commits. A full build writes a new generation beside the
live one and then replaces manifest.json. Either way a build killed at any moment leaves the
previous state or the new one, never half of it.
"""

from qa.store.filters import ChunkFilter
from qa.store.lock import BUILD_LOCK, build_lock, remove_abandoned
from qa.store.manifest import IndexUnusable, Manifest, library_versions, read_manifest
from qa.store.reader import Catalog, IndexReader, read_catalog
from qa.store.schema import (
    DATABASE,
    FORMAT_VERSION,
    MANIFEST,
    TITLE_WEIGHT,
)
from qa.store.sharded import (
    AnyIndex,
    ShardedReader,
    open_index,
    read_any_manifest,
    shard_of,
    sharded_index,
)
from qa.store.vectors import AnnSettings
from qa.store.writer import GenerationWriter

__all__ = [
    "BUILD_LOCK",
    "DATABASE",
    "FORMAT_VERSION",
    "MANIFEST",
    "TITLE_WEIGHT",
    "AnnSettings",
    "AnyIndex",
    "Catalog",
    "ChunkFilter",
    "GenerationWriter",
    "IndexReader",
    "IndexUnusable",
    "Manifest",
    "ShardedReader",
    "build_lock",
    "library_versions",
    "open_index",
    "read_any_manifest",
    "read_catalog",
    "read_manifest",
    "remove_abandoned",
    "shard_of",
    "sharded_index",
]
