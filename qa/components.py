"""The parts the pipeline is made of, built from `Settings`: embedder, chunker, reader.

Every adapter gets its parts here, so a setting means the same everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

from qa.chunking import Chunker
from qa.config import Settings
from qa.embedding import Embedder, SentenceTransformerEmbedder
from qa.reading import HeuristicReader, Reader, TrainedReader

log = logging.getLogger(__name__)

# The reader `qa train-reader` made, shipped with the code (models/reader/README.md).
SHIPPED_READER = Path(__file__).resolve().parent.parent / "models" / "reader"


def make_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        settings.embedding_model,
        batch_size=settings.embed_batch_size,
        runtime=settings.runtime,
        passage_precision=settings.passage_precision,
    )


def make_chunker(settings: Settings, embedder: Embedder) -> Chunker:
    # The limit is checked lazily by the chunker's token counter; the ceiling comes from the model.
    return Chunker(
        embedder.count_tokens,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.overlap_tokens,
    )


def make_short_reader(settings: Settings) -> Reader:
    """The configured reader; the heuristic one, saying why, when the trained one is absent."""
    if settings.reader == "heuristic":
        return HeuristicReader()
    if settings.reader != "trained":
        raise ValueError(f"reader must be 'trained' or 'heuristic', not {settings.reader!r}")
    folder = Path(settings.reader_model) if settings.reader_model else SHIPPED_READER
    if not TrainedReader.present(folder):
        log.warning("no trained reader in %s: short answers by the heuristic reader", folder)
        return HeuristicReader(name=f"heuristic (no trained reader in {folder})")
    return TrainedReader(folder, precision=settings.reader_precision)
