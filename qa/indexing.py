"""Bringing the index in line with the corpus: embed what is new or changed, drop what is gone."""

from __future__ import annotations

import bisect
import contextlib
import functools
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import Chunker
from qa.embedding import Embedder
from qa.ingest import FileReader, load_corpus, read_files, record_file_of, refused_by_policy
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
    shard_of,
)
from qa.store.schema import DATABASE, connect
from qa.store.sharded import read_layout, shard_names, write_layout
from qa.types import Article, Chunk, FileStamp, IngestResult, Skipped


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
    manifest: Manifest | None, model_id: str, chunker: Chunker, full: bool
) -> str:
    if manifest is None:
        return "no index yet"
    if full:
        return "requested"
    if manifest.model != model_id:
        return f"embedding model changed from {manifest.model} to {model_id}"
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
    prior = read_prior(index_dir, embedder.model_id, chunker, full)
    ingested = load_corpus(Path(corpus_dir), max_bytes=max_file_bytes, known=prior.catalog.files)
    plan = plan_changes(prior, ingested)
    if plan is None:  # an id moved between an unchanged file and a changed one
        ingested = load_corpus(Path(corpus_dir), max_bytes=max_file_bytes)
        plan = plan_changes(prior, ingested)
        assert plan is not None
    for skip in plan.report.skipped:
        if on_skip:
            on_skip(skip)
    if not plan.report.changed:
        plan.report.seconds = time.perf_counter() - began
        return plan.report
    writer = open_writer(index_dir, plan, embedder, ann)
    try:
        for embedded in _embedded_batches(plan.to_embed, chunker, embedder, progress):
            add_embedded(writer, plan.report, embedded)
        return commit_plan(writer, plan, embedder.model_id, chunker, corpus_dir, began)
    except BaseException:
        writer.abort()
        raise


@dataclass(frozen=True)
class Prior:
    """What an index holds before a build, and why everything must be embedded again, if so."""

    manifest: Manifest | None
    catalog: Catalog
    full_reason: str


def read_prior(index_dir: Path, model_id: str, chunker: Chunker, full: bool) -> Prior:
    try:
        manifest = read_manifest(Path(index_dir))
        reason = _full_rebuild_reason(manifest, model_id, chunker, full)
        catalog = Catalog({}, {})
        if manifest is not None and not reason:
            catalog = read_catalog(Path(index_dir), manifest)
        return Prior(manifest, catalog, reason)
    except IndexUnusable as error:
        # A damaged or outdated index is what a build exists to fix: start from nothing.
        return Prior(None, Catalog({}, {}), f"existing index unusable ({error})")


@dataclass
class BuildPlan:
    """The changes that bring one index in line with the corpus."""

    prior: Prior
    report: BuildReport
    to_embed: list[Article]
    stamps: list[FileStamp]
    forgotten: list[str]  # corpus files to read again next time

    @property
    def base(self) -> Manifest | None:
        return None if self.report.full_reason else self.prior.manifest


def plan_changes(
    prior: Prior, ingested: IngestResult, belongs: Callable[[str], bool] | None = None
) -> BuildPlan | None:
    """The articles to embed and remove; None when an article read now has the id of one in an
    unchanged file (the corpus must then be read whole). `belongs`: which article ids this
    index holds (one shard's), all when None."""
    report = BuildReport(full_reason=prior.full_reason)
    indexed = prior.catalog.articles
    present = _articles_of_unchanged_files(ingested, indexed)
    if present is None:
        return None
    articles = [a for a in ingested.articles if belongs is None or belongs(a.article_id)]
    report.skipped = list(ingested.skipped)
    wanted = {article.article_id for article in articles} | present
    to_embed = [a for a in articles if a.article_id not in indexed]
    report.added = [a.article_id for a in to_embed]
    for article in articles:
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
    forgotten = [path for path in prior.catalog.files if path not in stamped]
    if not report.changed and prior.manifest is not None:
        report.articles, report.chunks = prior.manifest.articles, prior.manifest.chunks
    return BuildPlan(prior, report, to_embed, list(ingested.stamps), forgotten)


def open_writer(
    index_dir: Path, plan: BuildPlan, embedder: Embedder, ann: AnnSettings | None
) -> GenerationWriter:
    """A writer with the plan's removals and file stamps applied, ready for new articles."""
    base = plan.base
    # Deleting needs no model: only load it when there is something to embed or no base.
    dimension = base.dimension if base and not plan.to_embed else embedder.dimension
    writer = GenerationWriter(index_dir, base=base, dimension=dimension, ann=ann)
    try:
        plan.report.chunks_removed = writer.remove_articles(
            plan.report.removed + plan.report.updated
        )
        writer.record_files(plan.stamps, forget=plan.forgotten)
    except BaseException:
        writer.abort()
        raise
    return writer


def add_embedded(
    writer: GenerationWriter, report: BuildReport, embedded: Sequence[EmbeddedArticle]
) -> None:
    """Add a batch of embedded articles to `writer`, then write its vectors out (a big build
    holds one batch of vectors in memory, not all)."""
    for item in embedded:
        writer.add_article(
            item.article,
            item.chunks,
            item.vectors,
            item.sentences,
            list(zip(item.chunk_sentences, item.sentence_vectors, strict=True)),
        )
        report.chunks_embedded += len(item.chunks)
    writer.flush()


def commit_plan(
    writer: GenerationWriter,
    plan: BuildPlan,
    model_id: str,
    chunker: Chunker,
    corpus_dir: Path,
    began: float,
) -> BuildReport:
    """Group near-duplicate articles and commit: the new state becomes visible at once."""
    report = plan.report
    # Near-duplicate articles (wire copy) grouped into reports, in the same transaction.
    record_copies(writer.connection)
    report.seconds = time.perf_counter() - began
    committed = writer.commit(
        model=model_id,
        chunk_tokens=chunker.chunk_tokens,
        overlap_tokens=chunker.overlap_tokens,
        last_build={**_build_record(report), "corpus": str(Path(corpus_dir).resolve())},
    )
    report.articles, report.chunks = committed.articles, committed.chunks
    return report


@dataclass(frozen=True)
class EmbeddedArticle:
    """An article cut into chunks, with its sentences and every vector the index keeps."""

    article: Article
    chunks: list[Chunk]
    sentences: list[tuple[int, int]]
    vectors: np.ndarray  # one row per chunk
    # Per chunk: the sentences overlapping it (article offsets) and their vectors, pooled from
    # the chunk's encoding.
    chunk_sentences: list[list[tuple[int, int]]]
    sentence_vectors: list[np.ndarray]


BATCH_CHUNKS = 20_000  # chunks embedded and written together (about 30 MB of vectors a kind)


def _embedded_batches(
    articles: Sequence[Article], chunker: Chunker, embedder: Embedder, progress: bool
) -> Iterator[list[EmbeddedArticle]]:
    batch: list[tuple[Article, list[Chunk], list[tuple[int, int]]]] = []
    size = 0
    for article in articles:
        chunks = chunker.split(article)
        batch.append((article, chunks, split_sentences(article.text)))
        size += len(chunks)
        if size >= BATCH_CHUNKS:
            yield embed_chunked(batch, embedder, progress)
            batch, size = [], 0
    if batch:
        yield embed_chunked(batch, embedder, progress)


def chunk_and_embed(
    articles: Sequence[Article], chunker: Chunker, embedder: Embedder
) -> list[EmbeddedArticle]:
    """Chunk, split into sentences and embed a few articles (a cluster worker's batch)."""
    chunked = [(a, chunker.split(a), split_sentences(a.text)) for a in articles]
    return embed_chunked(chunked, embedder, False)


def embed_chunked(
    chunked: Sequence[tuple[Article, list[Chunk], list[tuple[int, int]]]],
    embedder: Embedder,
    progress: bool,
) -> list[EmbeddedArticle]:
    """Embed a batch of chunked articles: each chunk's vector and, pooled from the same
    encoding, the vectors of the sentences overlapping it (no second model run)."""
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []  # sentences overlapping each chunk, article offsets
    for _, chunks, sentences in chunked:
        for chunk in chunks:
            texts.append(chunk.text)
            spans.append(sentences_overlapping(sentences, chunk.start, chunk.end))
    if not texts:
        empty = np.zeros((0, 0), np.float32)
        return [EmbeddedArticle(a, [], s, empty, [], []) for a, _, s in chunked]
    in_chunk = [
        [(max(s, c.start) - c.start, min(e, c.end) - c.start) for s, e in chunk_spans]
        for c, chunk_spans in zip(
            (c for _, chunks, _ in chunked for c in chunks), spans, strict=True
        )
    ]
    vectors, sentence_vectors = embedder.embed_passages(texts, in_chunk, progress=progress)
    result = []
    offset = 0
    for article, chunks, sentences in chunked:
        end = offset + len(chunks)
        result.append(
            EmbeddedArticle(
                article,
                chunks,
                sentences,
                vectors[offset:end],
                spans[offset:end],
                list(sentence_vectors[offset:end]),
            )
        )
        offset = end
    return result


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


# --- Sharded indexes -------------------------------------------------------------------------

# Chunks, sentences and vectors of articles, a batch at a time: in this process
# (`local_pipeline`) or on a cluster (`qa.cluster.build.ray_pipeline`).
Pipeline = Callable[[Sequence[Article]], Iterator[list[EmbeddedArticle]]]


def local_pipeline(chunker: Chunker, embedder: Embedder, progress: bool = False) -> Pipeline:
    def run(articles: Sequence[Article]) -> Iterator[list[EmbeddedArticle]]:
        return _embedded_batches(articles, chunker, embedder, progress)

    return run


def build_sharded_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: Chunker,
    *,
    shards: int | None = None,
    pipeline: Pipeline | None = None,
    reader: FileReader = read_files,
    full: bool = False,
    max_file_bytes: int = MAX_FILE_BYTES,
    progress: bool = False,
    on_skip: Callable[[Skipped], None] | None = None,
    ann: AnnSettings | None = None,
) -> BuildReport:
    """Make the sharded index at `index_dir` mirror the articles in `corpus_dir`
    (`qa.store.sharded`): the corpus is read once, each shard is planned like an index of its
    own articles, everything to embed goes through `pipeline` (this process by default), and
    only the shards with changes are written.

    `shards`: the shard count of a new index (another count than the index's own needs `full`:
    every article moves). A killed or failed build leaves every shard as it was: the shards are
    committed only once everything is embedded, one after the other (each atomically).
    """
    index_dir = Path(index_dir)
    with build_lock(index_dir):
        names = read_layout(index_dir)
        if names is not None and shards is not None and shards != len(names) and not full:
            raise IndexUnusable(
                f"{index_dir} has {len(names)} shards, not {shards}: moving the articles to "
                "another number of shards re-embeds them all; add --full"
            )
        if names is None or (shards is not None and shards != len(names)):
            new_layout = shard_names(shards or 1, prefix=f"shard-{time.time_ns()}-")
        else:
            new_layout = None
        current = new_layout or names
        assert current is not None
        with contextlib.ExitStack() as locks:
            for name in current:
                locks.enter_context(build_lock(index_dir / name))
                remove_abandoned(index_dir / name)
            report = _build_shards(
                corpus_dir,
                index_dir,
                current,
                embedder,
                chunker,
                pipeline or local_pipeline(chunker, embedder, progress),
                reader,
                full,
                max_file_bytes,
                on_skip,
                ann,
            )
        if new_layout is not None:
            # The new shards become the index only now, all at once; the old ones go after.
            write_layout(index_dir, new_layout)
            for old in names or []:
                shutil.rmtree(index_dir / old, ignore_errors=True)
        return report


def _build_shards(
    corpus_dir: Path,
    index_dir: Path,
    names: Sequence[str],
    embedder: Embedder,
    chunker: Chunker,
    pipeline: Pipeline,
    reader: FileReader,
    full: bool,
    max_file_bytes: int,
    on_skip: Callable[[Skipped], None] | None,
    ann: AnnSettings | None,
) -> BuildReport:
    began = time.perf_counter()
    count = len(names)
    priors = [read_prior(index_dir / name, embedder.model_id, chunker, full) for name in names]
    # A file counts as unchanged only when every shard recorded it the same way.
    known = dict(priors[0].catalog.files)
    for prior in priors[1:]:
        known = {path: s for path, s in known.items() if prior.catalog.files.get(path) == s}
    ingested = load_corpus(Path(corpus_dir), max_bytes=max_file_bytes, known=known, reader=reader)

    def plans_for(ingested: IngestResult) -> list[BuildPlan | None]:
        return [
            plan_changes(prior, ingested, functools.partial(_in_shard, count=count, shard=i))
            for i, prior in enumerate(priors)
        ]

    plans = plans_for(ingested)
    if any(plan is None for plan in plans):  # an id moved between files: read it all
        ingested = load_corpus(Path(corpus_dir), max_bytes=max_file_bytes, reader=reader)
        plans = plans_for(ingested)
    ready = [plan for plan in plans if plan is not None]
    assert len(ready) == count
    for skip in ingested.skipped:
        if on_skip:
            on_skip(skip)
    writers: dict[int, GenerationWriter] = {}
    try:
        for index, plan in enumerate(ready):
            if plan.report.changed:
                writers[index] = open_writer(index_dir / names[index], plan, embedder, ann)
        to_embed = [article for plan in ready for article in plan.to_embed]
        for batch in pipeline(to_embed) if to_embed else iter(()):
            by_shard: dict[int, list[EmbeddedArticle]] = {}
            for item in batch:
                by_shard.setdefault(shard_of(item.article.article_id, count), []).append(item)
            for index, items in by_shard.items():
                add_embedded(writers[index], ready[index].report, items)
        _record_copies_across(index_dir, names, writers)
        for index, writer in list(writers.items()):
            commit_plan(writer, ready[index], embedder.model_id, chunker, corpus_dir, began)
            del writers[index]
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return _combined([plan.report for plan in ready], ingested, began)


def _record_copies_across(
    index_dir: Path, names: Sequence[str], writers: dict[int, GenerationWriter]
) -> None:
    """Group the new articles of every written shard with their copies in any shard (a wire
    story and its copy rarely hash to the same shard), before the shards commit."""
    unchanged = []
    for index, name in enumerate(names):
        manifest = read_manifest(index_dir / name) if index not in writers else None
        if manifest is not None:
            path = index_dir / name / manifest.generation / DATABASE
            unchanged.append(connect(path, read_only=True))
    try:
        for index, writer in writers.items():
            others = [w.connection for i, w in writers.items() if i != index]
            record_copies(writer.connection, [*others, *unchanged])
    finally:
        for connection in unchanged:
            connection.close()


def _in_shard(article_id: str, *, count: int, shard: int) -> bool:
    return shard_of(article_id, count) == shard


def _combined(reports: Sequence[BuildReport], ingested: IngestResult, began: float) -> BuildReport:
    total = BuildReport(skipped=list(ingested.skipped))
    for report in reports:
        total.added += report.added
        total.updated += report.updated
        total.removed += report.removed
        total.kept_despite_skip += report.kept_despite_skip
        total.unchanged += report.unchanged
        total.chunks_embedded += report.chunks_embedded
        total.chunks_removed += report.chunks_removed
        total.articles += report.articles
        total.chunks += report.chunks
        total.full_reason = total.full_reason or report.full_reason
    total.seconds = time.perf_counter() - began
    return total
