"""The application object that the CLI, the HTTP API and the chat all call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.chunking import Chunker
from qa.config import Settings
from qa.embedding import Embedder, SentenceTransformerEmbedder
from qa.indexing import BuildReport, build_index
from qa.retrieval import Retriever
from qa.store import IndexReader, IndexUnusable
from qa.types import Article, Hit, Skipped


def make_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        settings.embedding_model, batch_size=settings.embed_batch_size
    )


def make_chunker(settings: Settings, embedder: Embedder) -> Chunker:
    # The limit is checked lazily by the chunker's token counter; the ceiling comes from the model.
    return Chunker(
        embedder.count_tokens,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.overlap_tokens,
    )


def build(
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    full: bool = False,
    progress: bool = False,
    on_skip: Callable[[Skipped], None] | None = None,
) -> BuildReport:
    """Build or update the index in `settings.index_dir` from `settings.corpus_dir`."""
    embedder = embedder or make_embedder(settings)
    return build_index(
        settings.corpus_dir,
        settings.index_dir,
        embedder,
        make_chunker(settings, embedder),
        full=full,
        max_file_bytes=settings.max_file_bytes,
        progress=progress,
        on_skip=on_skip,
    )


class Assistant:
    """Question answering over one index. Build it with `Assistant.load(index_dir)`."""

    def __init__(self, reader: IndexReader, embedder: Embedder):
        if reader.manifest.model != embedder.model_id:
            raise IndexUnusable(
                f"index in {reader.index_dir} was built with {reader.manifest.model}, but the "
                f"configured model is {embedder.model_id}; rebuild it with "
                "`qa index build --full` or configure the index's model"
            )
        self._reader = reader
        self._embedder = embedder
        self._retriever = Retriever(reader, embedder)

    @classmethod
    def load(
        cls,
        index_dir: Path | str = "index",
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> Assistant:
        """Open the index in `index_dir`, checking it against the configured embedder."""
        settings = settings or Settings(index_dir=Path(index_dir))
        return cls(IndexReader.open(index_dir), embedder or make_embedder(settings))

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` passages most relevant to `query`, best first."""
        return self._retriever.search(query, k)

    def article(self, article_id: str) -> Article | None:
        return self._reader.article(article_id)

    def stats(self) -> dict[str, Any]:
        manifest = self._reader.manifest
        return {
            "articles": manifest.articles,
            "chunks": manifest.chunks,
            "model": manifest.model,
            "dimension": manifest.dimension,
            "chunk_tokens": manifest.chunk_tokens,
            "overlap_tokens": manifest.overlap_tokens,
            "built_at": manifest.built_at,
            "created_at": manifest.created_at,
            "size_bytes": self._reader.size_on_disk(),
            "index_dir": str(self._reader.index_dir),
        }

    def close(self) -> None:
        self._reader.close()
