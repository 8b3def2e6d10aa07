"""The application object that the CLI, the HTTP API and the chat all call."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qa.answering import Answerer, AnswerModel
from qa.components import make_chunker, make_embedder, make_short_reader
from qa.config import Settings
from qa.dates import parse_date
from qa.embedding import Embedder
from qa.indexing import BuildReport, build_index, build_sharded_index
from qa.ingest import FileReader, read_files
from qa.news.annotate import NewsAnnotator
from qa.news.speakers import SpeakerFinder
from qa.reading import Reader
from qa.retrieval import FusionSettings, Retriever, SearchMode, clean_query
from qa.store import AnnSettings, AnyIndex, ChunkFilter, IndexUnusable, open_index, sharded_index
from qa.types import Answer, Article, Hit, Skipped


def build(
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    full: bool = False,
    progress: bool = False,
    on_skip: Callable[[Skipped], None] | None = None,
) -> BuildReport:
    """Build or update the index in `settings.index_dir` from `settings.corpus_dir`: a sharded
    one when it is sharded already, or asked for (`settings.shards`, `settings.cluster`)."""
    embedder = embedder or make_embedder(settings)
    if settings.cluster or settings.shards or sharded_index(settings.index_dir):
        return _build_sharded(settings, embedder, full=full, progress=progress, on_skip=on_skip)
    return build_index(
        settings.corpus_dir,
        settings.index_dir,
        embedder,
        make_chunker(settings, embedder),
        full=full,
        max_file_bytes=settings.max_file_bytes,
        progress=progress,
        on_skip=on_skip,
        ann=AnnSettings(threshold=settings.approximate_threshold),
    )


def _build_sharded(
    settings: Settings,
    embedder: Embedder,
    *,
    full: bool,
    progress: bool,
    on_skip: Callable[[Skipped], None] | None,
) -> BuildReport:
    pipeline = None
    reader: FileReader = read_files
    shards = settings.shards
    if settings.cluster:
        from qa.cluster import connect
        from qa.cluster.build import ray_file_reader, ray_pipeline

        ray = connect(settings.cluster, num_cpus=None)
        pipeline = ray_pipeline(settings, ray, workers=settings.cluster_workers)
        reader = ray_file_reader(ray)
        if shards is None and not sharded_index(settings.index_dir):
            shards = 3
    return build_sharded_index(
        settings.corpus_dir,
        settings.index_dir,
        embedder,
        make_chunker(settings, embedder),
        shards=shards,
        pipeline=pipeline,
        reader=reader,
        full=full,
        max_file_bytes=settings.max_file_bytes,
        progress=progress,
        on_skip=on_skip,
        ann=AnnSettings(threshold=settings.approximate_threshold),
    )


class Assistant:
    """Question answering over one index. Build it with `Assistant.load(index_dir)`."""

    def __init__(
        self,
        reader: AnyIndex,
        embedder: Embedder,
        fusion: FusionSettings | None = None,
        *,
        short_reader: Reader | None = None,
        answer_model: AnswerModel | None = None,
        speakers: SpeakerFinder | None = None,
    ):
        """`speakers`: finds whom cited sentences quote (shared across index generations);
        None: citations carry no speaker."""
        if reader.manifest.model != embedder.model_id:
            raise IndexUnusable(
                f"index in {reader.index_dir} was built with {reader.manifest.model}, but the "
                f"configured model is {embedder.model_id}; rebuild it with "
                "`qa index build --full` or configure the index's model"
            )
        self._reader = reader
        self._embedder = embedder
        self._retriever = Retriever(reader, embedder, fusion)
        # Nothing in it refers back to this Assistant: a replaced generation's reader is freed
        # as soon as its last query ends, without waiting for the cycle collector.
        news = NewsAnnotator(speakers, reader.query, functools.partial(_article_text, reader))
        self._answerer = Answerer(
            reader,
            self._retriever,
            embedder,
            short_reader=short_reader,
            model=answer_model,
            news=news,
        )

    @classmethod
    def load(
        cls,
        index_dir: Path | str = "index",
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        short_reader: Reader | None = None,
        speakers: SpeakerFinder | None = None,
    ) -> Assistant:
        """Open the index in `index_dir`, checking it against the configured embedder."""
        settings = settings or Settings(index_dir=Path(index_dir))
        return cls(
            open_index(index_dir),
            embedder or make_embedder(settings),
            short_reader=short_reader or make_short_reader(settings),
            speakers=speakers or SpeakerFinder(),
        )

    @property
    def answerer(self) -> Answerer:
        """The answer pipeline itself, for benchmarks and calibration."""
        return self._answerer

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        source: str | None = None,
        published_after: str | dt.date | None = None,
        published_before: str | dt.date | None = None,
        article_ids: Sequence[str] | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Hit]:
        """The `k` passages most relevant to `query`, best first.

        Args:
            source: only articles from this outlet (case-insensitive).
            published_after, published_before: inclusive ISO dates ("2023-03-02").
            article_ids: only these articles.
            mode: "hybrid" (BM25 and dense, fused), "dense" or "lexical".
        """
        filters = _filters(source, published_after, published_before, article_ids)
        return self._retriever.search(query, k, filters=filters, mode=mode)

    def ask(
        self,
        question: str,
        k: int = 5,
        *,
        source: str | None = None,
        published_after: str | dt.date | None = None,
        published_before: str | dt.date | None = None,
        article_ids: Sequence[str] | None = None,
    ) -> Answer:
        """An extractive answer from the top `k` passages, with citations.

        `answer.found` is false when the articles do not seem to hold an answer; the closest
        passages are in `answer.related` either way. Filters are those of `search`.
        """
        filters = _filters(source, published_after, published_before, article_ids)
        return self._answerer.ask(question, k, filters)

    def article(self, article_id: str) -> Article | None:
        return self._reader.article(article_id)

    def articles(self) -> list[Article]:
        return self._reader.articles()

    def sources(self) -> list[str]:
        """The outlets in the index, for filters."""
        return self._reader.sources()

    def stats(self) -> dict[str, Any]:
        return self._reader.stats()

    def close(self) -> None:
        self._reader.close()


def _filters(
    source: str | None,
    published_after: str | dt.date | None,
    published_before: str | dt.date | None,
    article_ids: Sequence[str] | None,
) -> ChunkFilter:
    return ChunkFilter(
        source=clean_query(source) or None if source is not None else None,
        published_after=parse_date(published_after, "published_after"),
        published_before=parse_date(published_before, "published_before"),
        article_ids=tuple(clean_query(a) for a in article_ids) if article_ids is not None else None,
    )


def _article_text(reader: AnyIndex, article_id: str) -> str:
    article = reader.article(article_id)
    return article.text if article else ""
