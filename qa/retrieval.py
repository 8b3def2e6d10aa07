"""Finding the passages relevant to a query."""

from __future__ import annotations

from qa.embedding import Embedder
from qa.store import IndexReader
from qa.types import Hit


class Retriever:
    """Dense retrieval: the query's embedding against the chunk vectors in FAISS."""

    def __init__(self, reader: IndexReader, embedder: Embedder):
        self._reader = reader
        self._embedder = embedder

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` chunks nearest to `query`, best first."""
        query = query.strip()
        if not query or k <= 0:
            return []
        scored = self._reader.search_vectors(self._embedder.embed_query(query), k)
        return self._reader.hits(scored)
