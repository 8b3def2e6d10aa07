"""The index directory: FAISS vectors and one SQLite database per generation, and a manifest.

Layout::

    index/
      manifest.json          the commit record: names the live generation, written last
      gen-<ns>/qa.sqlite3    articles and chunks; chunk row ids are the FAISS ids
      gen-<ns>/vectors.faiss IndexIDMap2 over inner product of normalized vectors (fp16 rows)
      gen-<ns>/sentences.faiss the same for every sentence as encoded inside its chunk

A build writes a complete new generation beside the live one and then replaces manifest.json
atomically, so a build killed at any moment leaves the previous index loadable and complete.
"""

from qa.store.filters import ChunkFilter
from qa.store.lock import BUILD_LOCK, build_lock, remove_abandoned
from qa.store.manifest import IndexUnusable, Manifest, library_versions, read_manifest
from qa.store.reader import IndexReader
from qa.store.schema import (
    DATABASE,
    FORMAT_VERSION,
    MANIFEST,
    SENTENCE_VECTORS,
    TITLE_WEIGHT,
    VECTORS,
)
from qa.store.writer import GenerationWriter

__all__ = [
    "BUILD_LOCK",
    "DATABASE",
    "FORMAT_VERSION",
    "MANIFEST",
    "SENTENCE_VECTORS",
    "TITLE_WEIGHT",
    "VECTORS",
    "ChunkFilter",
    "GenerationWriter",
    "IndexReader",
    "IndexUnusable",
    "Manifest",
    "build_lock",
    "library_versions",
    "read_manifest",
    "remove_abandoned",
]
