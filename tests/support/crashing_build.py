"""Run one index build that SIGKILLs itself at a chosen stage (for the crash-safety tests).

Usage: python -m tests.support.crashing_build CORPUS INDEX STAGE [full]

Stages before the commit point (the previous index must survive): embedding, database (rows
added), vectors (a segment file half written), merge (segments merged, not committed),
merge-files (a merged segment half written), commit (everything written, about to commit),
manifest (a full build's manifest.json half written). After it (the new index must load):
committed (an in-place build just committed), cleanup (a full build removing old generations).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import qa.store.vectors
import qa.store.writer
from qa.chunking import Chunker
from qa.indexing import build_index
from tests.conftest import FakeEmbedder


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    corpus, index, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    full = sys.argv[4:] == ["full"]
    embedder = FakeEmbedder()
    writer = qa.store.writer.GenerationWriter
    segment_writer = qa.store.vectors.SegmentWriter
    if stage == "embedding":
        embedder.embed_documents = lambda texts, progress=False: die()  # type: ignore[method-assign]
    elif stage == "database":
        original_add = writer.add_article

        def add_then_die(self, *args, **kwargs):
            original_add(self, *args, **kwargs)
            die()

        writer.add_article = add_then_die  # type: ignore[method-assign]
    elif stage in ("vectors", "merge-files"):
        original_append = segment_writer.append
        merging = stage == "merge-files"
        qa.store.writer.MAX_SEGMENTS = 1  # every build merges

        def append_half_then_die(self, ids, vectors):
            if merging and not self.name.startswith("merge"):
                return original_append(self, ids, vectors)
            half = len(ids) // 2
            original_append(self, ids[:half], vectors[:half])
            self._rows.flush()
            die()

        segment_writer.append = append_half_then_die  # type: ignore[method-assign]
        if merging:
            original_name = writer._segment_name
            original_merge = writer.merge

            def merge_named(self, kind, segments, **kwargs):
                self._segment_name = lambda kind: "merge-" + original_name(self, kind)
                return original_merge(self, kind, segments, **kwargs)

            writer.merge = merge_named  # type: ignore[method-assign]
    elif stage == "merge":
        qa.store.writer.MAX_SEGMENTS = 1
        original_merge = writer.merge

        def merge_then_die(self, *args, **kwargs):
            original_merge(self, *args, **kwargs)
            die()

        writer.merge = merge_then_die  # type: ignore[method-assign]
    elif stage == "commit":
        original_check = writer._check_counts

        def check_then_die(self):
            original_check(self)
            die()

        writer._check_counts = check_then_die  # type: ignore[method-assign]
    elif stage == "manifest":

        def manifest_half_written(path, text):
            path.with_name(f".{path.name}.tmp").write_text('{"format_version": 1, "gen')
            die()

        qa.store.writer.atomic_write_text = manifest_half_written
    elif stage == "committed":
        qa.store.writer.read_state = lambda db: die()
    elif stage == "cleanup":
        writer._remove_old_generations = lambda self, keep: die()  # type: ignore[method-assign]
    chunker = Chunker(embedder.count_tokens, chunk_tokens=24, overlap_tokens=4)
    build_index(corpus, index, embedder, chunker, full=full)


if __name__ == "__main__":
    main()
