"""Bringing the index in line with the corpus: embed what is new or changed, drop what is gone."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import Chunker
from qa.embedding import Embedder
from qa.ingest import load_corpus, record_file_of, refused_by_policy
from qa.limits import MAX_FILE_BYTES
from qa.news.copies import record_copies
from qa.sentences import split_sentences
from qa.store import (
    AnnSettings,
    Catalog,
    GenerationWriter,
    IndexUnusable,
    Manifest,
    build_lock,
    read_catalog,
    read_manifest,
    remove_abandoned,
)
from qa.types import Article, Chunk, IngestResult, Skipped


@dataclass
class BuildReport:
    """What a build did. `full_reason` says why everything was re-embedded, if it was."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    kept_despite_skip: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    full_reason: str = ""
    articles: int = 0
    chunks: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.full_reason)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [asdict(s) for s in self.skipped]
        return data

    def summary(self) -> str:
        line = (
            f"added {len(self.added)}, updated {len(self.updated)}, removed {len(self.removed)}, "
            f"unchanged {self.unchanged}, skipped {len(self.skipped)}; "
            f"{self.chunks_embedded} chunks embedded in {self.seconds:.1f} s; "
            f"index holds {self.articles} articles, {self.chunks} chunks"
        )
        return f"{line} (full rebuild: {self.full_reason})" if self.full_reason else line


def _full_rebuild_reason(
    manifest: Manifest | None, embedder: Embedder, chunker: Chunker, full: bool
) -> str:
    if manifest is None:
        return "no index yet"
    if full:
        return "requested"
    if manifest.model != embedder.model_id:
        return f"embedding model changed from {manifest.model} to {embedder.model_id}"
    if (manifest.chunk_tokens, manifest.overlap_tokens) != (
        chunker.chunk_tokens,
        chunker.overlap_tokens,
    ):
        return (
            f"chunk settings changed from {manifest.chunk_tokens}/{manifest.overlap_tokens} "
            f"to {chunker.chunk_tokens}/{chunker.overlap_tokens} tokens"
        )
    return ""


def _articles_of_unchanged_files(
    ingested: IngestResult, indexed: dict[str, tuple[str, str]]
) -> set[str] | None:
    """The ids of the indexed articles whose files were not read (unchanged), or None when an
    article read now has the id of one of them: which wins depends on file order, so the whole
    corpus must be read to tell."""
    unchanged = set(ingested.unchanged)
    present = {
        article_id for article_id, (path, _) in indexed.items() if record_file_of(path) in unchanged
    }
    if any(article.article_id in present for article in ingested.articles):
        return None
    return present


def _protected_by_skip(indexed_path: str, unreadable: set[str]) -> bool:
    """An indexed article whose record or file is now unreadable keeps its last good version.

    `unreadable`: the paths of this build's skips, records ("a.jsonl:3") and files alike, except
    those refused by policy (`qa.ingest.refused_by_policy`: a link, an invalid id).
    """
    return indexed_path in unreadable or record_file_of(indexed_path) in unreadable


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: Chunker,
    *,
    full: bool = False,
    max_file_bytes: int = MAX_FILE_BYTES,
    progress: bool = False,
    on_skip: Callable[[Skipped], None] | None = None,
    ann: AnnSettings | None = None,
) -> BuildReport:
    """Make the index at `index_dir` mirror the articles in `corpus_dir`.

    Only new and changed articles are chunked and embedded. The new state becomes visible
    all at once; until then (or if this is killed) the previous index is what loads.

    Args:
        full: re-embed everything, even when nothing changed.
        progress: show a progress bar while embedding.
        on_skip: called for each unreadable input as soon as it is found.
        ann: when and how a new index searches its vectors approximately (a full build or the
            first one; an incremental build keeps the index's settings).
    """
    with build_lock(index_dir):
        # A killed build's leftovers go now, even when this build turns out to have nothing to do.
        remove_abandoned(Path(index_dir))
        return _build(
            corpus_dir, index_dir, embedder, chunker, full, max_file_bytes, progress, on_skip, ann
        )


def compact_index(index_dir: Path) -> Manifest:
    """Merge each kind of vectors into one segment without the deleted rows (retraining the
    approximate index's quantizer, writing the inverted file an older index lacks), as one
    commit. Waits for a build in progress."""
    with build_lock(index_dir):
        remove_abandoned(Path(index_dir))
        manifest = read_manifest(Path(index_dir))
        if manifest is None:
            raise IndexUnusable(f"no index in {index_dir}; build one with `qa index build`")
        writer = GenerationWriter(index_dir, base=manifest, dimension=manifest.dimension)
        try:
            writer.compact()
            return writer.commit(
                model=manifest.model,
                chunk_tokens=manifest.chunk_tokens,
                overlap_tokens=manifest.overlap_tokens,
                last_build={**manifest.last_build, "compacted": True},
            )
        except BaseException:
            writer.abort()
            raise


def _build(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: Chunker,
    full: bool,
    max_file_bytes: int,
    progress: bool,
    on_skip: Callable[[Skipped], None] | None,
    ann: AnnSettings | None,
) -> BuildReport:
    began = time.perf_counter()
    report = BuildReport()
    try:
        manifest = read_manifest(Path(index_dir))
        report.full_reason = _full_rebuild_reason(manifest, embedder, chunker, full)
        catalog = Catalog({}, {})
        if manifest is not None and not report.full_reason:
            catalog = read_catalog(Path(index_dir), manifest)
    except IndexUnusable as error:
        # A damaged or outdated index is what a build exists to fix: start from nothing.
        manifest, catalog = None, Catalog({}, {})
        report.full_reason = f"existing index unusable ({error})"
    indexed = catalog.articles

    ingested = load_corpus(Path(corpus_dir), max_bytes=max_file_bytes, known=catalog.files)
    present = _articles_of_unchanged_files(ingested, indexed)
    if present is None:  # an id moved between an unchanged file and a changed one
        ingested = load_corpus(Path(corpus_dir), max_bytes=max_file_bytes)
        present = set()
    report.skipped = list(ingested.skipped)
    for skip in report.skipped:
        if on_skip:
            on_skip(skip)

    wanted = {article.article_id for article in ingested.articles} | present
    to_embed = [a for a in ingested.articles if a.article_id not in indexed]
    report.added = [a.article_id for a in to_embed]
    for article in ingested.articles:
        previous = indexed.get(article.article_id)
        if previous is not None and previous[1] != article.content_hash:
            report.updated.append(article.article_id)
            to_embed.append(article)
    report.unchanged = len(wanted) - len(to_embed)
    unreadable = {skip.path for skip in report.skipped if not refused_by_policy(skip)}
    for article_id, (path, _) in indexed.items():
        if article_id in wanted:
            continue
        if _protected_by_skip(path, unreadable):
            report.kept_despite_skip.append(article_id)
        else:
            report.removed.append(article_id)
    # Files gone, or read now with a problem, are read again next time.
    stamped = {stamp.path for stamp in ingested.stamps} | set(ingested.unchanged)
    forgotten = [path for path in catalog.files if path not in stamped]

    if not report.changed:
        report.articles = manifest.articles if manifest else 0
        report.chunks = manifest.chunks if manifest else 0
        report.seconds = time.perf_counter() - began
        return report

    base = None if report.full_reason else manifest
    # Deleting needs no model: only load it when there is something to embed or no base.
    dimension = base.dimension if base and not to_embed else embedder.dimension
    writer = GenerationWriter(index_dir, base=base, dimension=dimension, ann=ann)
    try:
        report.chunks_removed = writer.remove_articles(report.removed + report.updated)
        writer.record_files(ingested.stamps, forget=forgotten)
        for batch in _batches(to_embed, chunker):
            report.chunks_embedded += _embed_and_add(batch, embedder, writer, progress)
            writer.flush()  # a big build holds one batch of vectors in memory, not all
        # Near-duplicate articles (wire copy) grouped into reports, in the same transaction.
        record_copies(writer.connection)
        report.seconds = time.perf_counter() - began
        committed = writer.commit(
            model=embedder.model_id,
            chunk_tokens=chunker.chunk_tokens,
            overlap_tokens=chunker.overlap_tokens,
            last_build={**_build_record(report), "corpus": str(Path(corpus_dir).resolve())},
        )
    except BaseException:
        writer.abort()
        raise
    report.articles, report.chunks = committed.articles, committed.chunks
    return report


_Chunked = tuple[Article, list[Chunk], list[tuple[int, int]]]
BATCH_CHUNKS = 20_000  # chunks embedded and written together (about 30 MB of vectors a kind)


def _batches(articles: Sequence[Article], chunker: Chunker) -> Iterator[list[_Chunked]]:
    batch: list[_Chunked] = []
    size = 0
    for article in articles:
        chunks = chunker.split(article)
        batch.append((article, chunks, split_sentences(article.text)))
        size += len(chunks)
        if size >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _embed_and_add(
    chunked: Sequence[_Chunked], embedder: Embedder, writer: GenerationWriter, progress: bool
) -> int:
    """Embed a batch of chunked articles and add them to `writer`; returns the chunks embedded."""
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []  # sentences overlapping each chunk, article offsets
    for _, chunks, sentences in chunked:
        for chunk in chunks:
            texts.append(chunk.text)
            spans.append(sentences_overlapping(sentences, chunk.start, chunk.end))
    if not texts:
        for article, _, sentences in chunked:
            writer.add_article(article, [], np.zeros((0, 0), np.float32), sentences)
        return 0
    # Each sentence's vector is pooled from its chunk's encoding: no second model run.
    in_chunk = [
        [(max(s, c.start) - c.start, min(e, c.end) - c.start) for s, e in chunk_spans]
        for c, chunk_spans in zip(
            (c for _, chunks, _ in chunked for c in chunks), spans, strict=True
        )
    ]
    vectors, sentence_vectors = embedder.embed_passages(texts, in_chunk, progress=progress)
    offset = 0
    for article, chunks, sentences in chunked:
        end = offset + len(chunks)
        writer.add_article(
            article,
            chunks,
            vectors[offset:end],
            sentences,
            list(zip(spans[offset:end], sentence_vectors[offset:end], strict=True)),
        )
        offset = end
    return len(texts)


def sentences_overlapping(
    sentences: Sequence[tuple[int, int]], start: int, end: int
) -> list[tuple[int, int]]:
    """The (start, end) sentences, sorted by start, that share characters with [start, end)."""
    first = bisect.bisect_right([e for _, e in sentences], start)
    found = []
    for sentence_start, sentence_end in sentences[first:]:
        if sentence_start >= end:
            break
        found.append((sentence_start, sentence_end))
    return found


def _build_record(report: BuildReport) -> dict[str, Any]:
    return {
        "added": len(report.added),
        "updated": len(report.updated),
        "removed": len(report.removed),
        "unchanged": report.unchanged,
        "skipped": len(report.skipped),
        "chunks_embedded": report.chunks_embedded,
        "seconds": round(report.seconds, 3),
        "full_reason": report.full_reason,
    }
