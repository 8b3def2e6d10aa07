"""Run one index build that SIGKILLs itself at a chosen stage (for the crash-safety tests).

Usage: python -m tests.support.crashing_build CORPUS INDEX STAGE
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import qa.store.writer
from qa.chunking import Chunker
from qa.indexing import build_index
from tests.conftest import FakeEmbedder


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    corpus, index, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    embedder = FakeEmbedder()
    writer = qa.store.writer.GenerationWriter
    if stage == "embedding":
        embedder.embed_documents = lambda texts, progress=False: die()  # type: ignore[method-assign]
    elif stage == "database":
        original_add = writer.add_article

        def add_then_die(self, *args, **kwargs):
            original_add(self, *args, **kwargs)
            die()

        writer.add_article = add_then_die  # type: ignore[method-assign]
    elif stage == "vectors":

        def half_written(index, path):
            Path(path).write_bytes(b"IxM2" + b"\0" * 100)
            die()

        qa.store.writer.faiss.write_index = half_written
    elif stage == "manifest":

        def manifest_half_written(path, text):
            path.with_name(f".{path.name}.tmp").write_text('{"format_version": 1, "gen')
            die()

        qa.store.writer.atomic_write_text = manifest_half_written
    elif stage == "cleanup":
        writer._remove_old_generations = lambda self, keep: die()  # type: ignore[method-assign]
    chunker = Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4)
    build_index(corpus, index, embedder, chunker)


if __name__ == "__main__":
    main()
