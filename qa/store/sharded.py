"""An index split into shards: each a complete index of a partition of the articles, searched
together as one.

Layout::

    index/
      shards.json        the shard folders and how articles are partitioned among them
      shard-<t>-0/       a complete index (manifest.json, gen-*/) of the articles of shard 0
      shard-<t>-1/ ...   (<t>: when the layout was made; a new shard count writes new folders)

An article belongs to shard `shard_of(article_id, count)`: a stable hash of its id, the same on
every machine and in every run, so an incremental build touches only the shards whose articles
changed. The count is fixed when the index is first built (another count needs `--full`).

`ShardedReader` answers every question `IndexReader` answers, over all the shards at once: a
search asks each shard for its best chunks and merges them. Dense scores (cosines) compare
across shards as they are; BM25 scores do not (each shard's IDF and average length are its
own), so a lexical search first sums the shards' collection statistics for the query's terms
and has every shard score with those: the merged ranking is then the one a single index of all
the articles gives. Chunk ids are made global as `local id × shard count + shard`.

The shards may be `IndexReader`s in this process or remote ones (`qa.cluster.serve`): anything
with the methods of `Shard`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from qa.files import atomic_write_text
from qa.store.filters import ChunkFilter
from qa.store.manifest import IndexUnusable, Manifest, read_manifest
from qa.store.postings import CollectionStatistics, query_terms
from qa.store.reader import IndexReader, RankingRequest, Rankings
from qa.types import Article, Hit

SHARDS = "shards.json"
SHARDS_FORMAT = 1
PARTITION = "blake2b-64 of the article id (UTF-8), modulo the shard count"

T = TypeVar("T")


class ShardUnavailable(Exception):
    """A shard did not answer (a remote replica lost or being restarted): the query can be
    asked again shortly."""


def shard_of(article_id: str, count: int) -> int:
    """The shard that holds `article_id`: stable across machines, runs and Python versions
    (unlike `hash()`, which is salted per process)."""
    digest = hashlib.blake2b(article_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def shard_names(count: int, prefix: str = "shard-") -> list[str]:
    """The folders of `count` shards: a new layout gets new names (`prefix` with a time), so
    that it is written beside the live one and replaces it at once."""
    if count < 1:
        raise ValueError("a sharded index needs at least one shard")
    return [f"{prefix}{index}" for index in range(count)]


def read_layout(index_dir: Path) -> list[str] | None:
    """The shard folders of a sharded index, in shard order; None for an unsharded one."""
    path = Path(index_dir) / SHARDS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if int(data["format_version"]) != SHARDS_FORMAT:
            raise ValueError(f"format version {data['format_version']}")
        names = [str(name) for name in data["shards"]]
    except (ValueError, KeyError, TypeError) as error:
        raise IndexUnusable(f"{path} is damaged ({error})") from error
    if not names:
        raise IndexUnusable(f"{path} names no shards")
    return names


def write_layout(index_dir: Path, names: Sequence[str]) -> None:
    """Record the shard folders of the sharded index in `index_dir` (atomically)."""
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    layout = {"format_version": SHARDS_FORMAT, "partition": PARTITION, "shards": list(names)}
    atomic_write_text(Path(index_dir) / SHARDS, json.dumps(layout, indent=1) + "\n")


def sharded_manifest(manifests: Sequence[Manifest]) -> Manifest:
    """One manifest for the shards: the first's settings, everyone's counts, and a revision
    that moves whenever any shard's does."""
    first = manifests[0]
    for other in manifests[1:]:
        if (other.model, other.chunk_tokens, other.overlap_tokens) != (
            first.model,
            first.chunk_tokens,
            first.overlap_tokens,
        ):
            raise IndexUnusable(
                "the shards were built with different settings; rebuild with "
                "`qa index build --full`"
            )
    revisions = "|".join(m.revision for m in manifests)
    digest = hashlib.blake2b(revisions.encode(), digest_size=6).hexdigest()
    return replace(
        first,
        generation=f"sharded-{digest}",
        version=1,
        articles=sum(m.articles for m in manifests),
        chunks=sum(m.chunks for m in manifests),
        sentence_vectors=sum(m.sentence_vectors for m in manifests),
        built_at=max(m.built_at for m in manifests),
    )


def read_sharded_manifest(index_dir: Path) -> Manifest | None:
    """The combined manifest of a sharded index, or None while any shard has no index."""
    names = read_layout(index_dir)
    if names is None:
        return None
    manifests = [read_manifest(Path(index_dir) / name) for name in names]
    if any(m is None for m in manifests):
        return None
    return sharded_manifest([m for m in manifests if m is not None])


class Shard(Protocol):
    """What `ShardedReader` asks of each shard (an `IndexReader` has all of it)."""

    @property
    def manifest(self) -> Manifest: ...

    def filtered_chunk_ids(self, filters: ChunkFilter) -> list[int]: ...

    def lexical_statistics(self, words: Sequence[str]) -> CollectionStatistics | None: ...

    def lexical_search(
        self,
        words: Sequence[str],
        k: int,
        filters: ChunkFilter | None = None,
        allowed: Sequence[int] | None = None,
        statistics: CollectionStatistics | None = None,
    ) -> list[tuple[int, float]]: ...

    def search_vectors(
        self, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]: ...

    def search_sentences(
        self, query: np.ndarray, k: int, allowed_chunk_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]: ...

    def hits(self, scored: Sequence[tuple[int, float]]) -> list[Hit]: ...

    def search_all(self, request: RankingRequest) -> Rankings: ...

    def vectors_for(self, chunk_ids: Sequence[int]) -> np.ndarray: ...

    def sentence_vectors_for(self, sentences: Sequence[tuple[str, int]]) -> np.ndarray: ...

    def sentences_in(
        self, spans: Sequence[tuple[str, int, int]]
    ) -> dict[str, list[tuple[int, int]]]: ...

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]: ...

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> Sequence[Sequence[Any]]: ...

    def article(self, article_id: str) -> Article | None: ...

    def articles(self) -> list[Article]: ...

    def sources(self) -> list[str]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ShardedReader:
    """Searches the shards of a sharded index as one index (see the module's docstring)."""

    def __init__(self, index_dir: Path, shards: Sequence[Shard]):
        if not shards:
            raise ValueError("no shards")
        self.index_dir = Path(index_dir)
        self.shards = list(shards)
        self.manifest = sharded_manifest([shard.manifest for shard in self.shards])
        self.stale = False
        # Every shard is asked at once: the wait is the slowest shard's, not their sum.
        self._pool = ThreadPoolExecutor(len(self.shards), thread_name_prefix="shard")
        # Each term's chunk count over all shards, as last asked: a query whose terms are all
        # known needs one round trip to the shards, not two. The reader is replaced when any
        # shard changes (`LiveAssistant`), and with it this.
        self._frequency: dict[str, int] = {}
        self._sizes: tuple[int, float] | None = None  # chunks and their total length

    @classmethod
    def open(cls, index_dir: Path | str) -> ShardedReader:
        """Open every shard of the sharded index in `index_dir` in this process."""
        names = read_layout(Path(index_dir))
        if names is None:
            raise IndexUnusable(f"{index_dir} holds no sharded index ({SHARDS} is missing)")
        opened: list[IndexReader] = []
        try:
            for name in names:
                opened.append(IndexReader.open(Path(index_dir) / name))
        except BaseException:
            for reader in opened:
                reader.close()
            raise
        return cls(Path(index_dir), opened)

    # --- ids ------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.shards)

    def _global(self, shard: int, chunk_id: int) -> int:
        return chunk_id * self.count + shard

    def _local(self, chunk_ids: Iterable[int]) -> list[list[int]]:
        """Global chunk ids split by shard, as each shard's own ids."""
        split: list[list[int]] = [[] for _ in self.shards]
        for chunk_id in chunk_ids:
            split[chunk_id % self.count].append(chunk_id // self.count)
        return split

    def _each(self, call: Callable[[int, Shard], T]) -> list[T]:
        """`call(index, shard)` for every shard at once; results in shard order."""
        futures = [self._pool.submit(call, index, shard) for index, shard in enumerate(self.shards)]
        return [future.result() for future in futures]

    def _merged(
        self, per_shard: Sequence[Sequence[tuple[int, float]]], k: int
    ) -> list[tuple[int, float]]:
        merged = [
            (self._global(shard, chunk_id), score)
            for shard, ranking in enumerate(per_shard)
            for chunk_id, score in ranking
        ]
        merged.sort(key=lambda pair: (-pair[1], pair[0]))
        return merged[:k]

    # --- searching ------------------------------------------------------------------------

    def filtered_chunk_ids(self, filters: ChunkFilter) -> list[int]:
        found = self._each(lambda _, shard: shard.filtered_chunk_ids(filters))
        return [self._global(s, chunk_id) for s, ids in enumerate(found) for chunk_id in ids]

    def lexical_statistics(self, words: Sequence[str]) -> CollectionStatistics | None:
        parts = self._each(lambda _, shard: shard.lexical_statistics(words))
        if any(part is None for part in parts):
            return None
        total = parts[0]
        assert total is not None
        for part in parts[1:]:
            assert part is not None
            total = total + part
        return total

    def _known_statistics(self, words: Sequence[str]) -> CollectionStatistics | None:
        """The whole index's statistics for `words`, asking the shards only for new terms."""
        terms = query_terms(words)
        if self._sizes is None or any(term not in self._frequency for term in terms):
            fresh = self.lexical_statistics(words)
            if fresh is None:
                return None
            self._frequency.update(fresh.frequency)
            self._sizes = (fresh.documents, fresh.total_length)
        documents, total_length = self._sizes
        return CollectionStatistics(
            documents, total_length, {term: self._frequency[term] for term in terms}
        )

    def search_all(self, request: RankingRequest) -> Rankings:
        """Every shard's rankings and hits in one round trip, merged: each ranking cut to
        `request.depth` (global ids), the hits of the chunks they name by global id (with the
        shard's own `chunk_id` inside: set it before showing one)."""
        statistics = request.statistics
        if request.lexical and request.words and statistics is None:
            statistics = self._known_statistics(request.words)
        local = self._local(request.allowed) if request.allowed is not None else None
        found = self._each(
            lambda s, shard: shard.search_all(
                replace(
                    request,
                    statistics=statistics,
                    allowed=local[s] if local is not None else None,
                )
            )
        )
        names = {name for part in found for name in part.rankings}
        rankings = {
            name: self._merged([part.rankings.get(name, []) for part in found], request.depth)
            for name in names
        }
        # Keyed by global id; each hit keeps its shard's own `chunk_id` until it is used (the
        # caller sets it, with the score): most candidates are never shown.
        hits = {
            self._global(s, chunk_id): hit
            for s, part in enumerate(found)
            for chunk_id, hit in part.hits.items()
        }
        return Rankings(rankings, hits)

    def lexical_search(
        self,
        words: Sequence[str],
        k: int,
        filters: ChunkFilter | None = None,
        allowed: Sequence[int] | None = None,
        statistics: CollectionStatistics | None = None,
    ) -> list[tuple[int, float]]:
        if k <= 0 or not words:
            return []
        # The whole index's statistics first, then the search: scores on one scale.
        statistics = statistics or self._known_statistics(words)
        local = self._local(allowed) if allowed is not None else None
        found = self._each(
            lambda s, shard: shard.lexical_search(
                words, k, filters, local[s] if local is not None else None, statistics
            )
        )
        return self._merged(found, k)

    def search_vectors(
        self, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        local = self._local(allowed_ids) if allowed_ids is not None else None
        found = self._each(
            lambda s, shard: shard.search_vectors(query, k, local[s] if local is not None else None)
        )
        return self._merged(found, k)

    def search_sentences(
        self, query: np.ndarray, k: int, allowed_chunk_ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        local = self._local(allowed_chunk_ids) if allowed_chunk_ids is not None else None
        found = self._each(
            lambda s, shard: shard.search_sentences(
                query, k, local[s] if local is not None else None
            )
        )
        return self._merged(found, k)

    def hits(self, scored: Sequence[tuple[int, float]]) -> list[Hit]:
        per_shard: list[list[tuple[int, float]]] = [[] for _ in self.shards]
        for chunk_id, score in scored:
            per_shard[chunk_id % self.count].append((chunk_id // self.count, score))
        found = self._each(lambda s, shard: shard.hits(per_shard[s]) if per_shard[s] else [])
        by_id = {
            self._global(s, hit.chunk_id): replace(hit, chunk_id=self._global(s, hit.chunk_id))
            for s, hits in enumerate(found)
            for hit in hits
        }
        return [by_id[chunk_id] for chunk_id, _ in scored if chunk_id in by_id]

    # --- reading --------------------------------------------------------------------------

    def _of_article(self, article_id: str) -> Shard:
        return self.shards[shard_of(article_id, self.count)]

    def vectors_for(self, chunk_ids: Sequence[int]) -> np.ndarray:
        local = self._local(chunk_ids)
        found = self._each(lambda s, shard: shard.vectors_for(local[s]) if local[s] else None)
        rows: list[np.ndarray] = []
        taken = [0] * self.count
        for chunk_id in chunk_ids:
            s = chunk_id % self.count
            block = found[s]
            assert block is not None
            rows.append(block[taken[s]])
            taken[s] += 1
        dimension = self.manifest.dimension
        return np.stack(rows) if rows else np.zeros((0, dimension), dtype=np.float32)

    def sentence_vectors_for(self, sentences: Sequence[tuple[str, int]]) -> np.ndarray:
        per_shard: list[list[int]] = [[] for _ in self.shards]
        for place, (article_id, _) in enumerate(sentences):
            per_shard[shard_of(article_id, self.count)].append(place)
        found = self._each(
            lambda s, shard: (
                shard.sentence_vectors_for([sentences[p] for p in per_shard[s]])
                if per_shard[s]
                else None
            )
        )
        result = np.zeros((len(sentences), self.manifest.dimension), dtype=np.float32)
        for s, places in enumerate(per_shard):
            block = found[s]
            if places and block is not None:
                result[places] = block
        return result

    def sentences_in(
        self, spans: Sequence[tuple[str, int, int]]
    ) -> dict[str, list[tuple[int, int]]]:
        per_shard: list[list[tuple[str, int, int]]] = [[] for _ in self.shards]
        for span in spans:
            per_shard[shard_of(span[0], self.count)].append(span)
        found = self._each(
            lambda s, shard: shard.sentences_in(per_shard[s]) if per_shard[s] else {}
        )
        return {article_id: v for part in found for article_id, v in part.items()}

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in self._each(lambda _, shard: shard.document_frequencies(terms)):
            for term, count in part.items():
                total[term] = total.get(term, 0) + count
        return total

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """The rows of `sql` from every shard, shard after shard: right for the questions asked
        of one article's rows (each article lives in one shard), not for totals."""
        found = self._each(lambda _, shard: shard.query(sql, parameters))
        return [row for rows in found for row in rows]

    def article(self, article_id: str) -> Article | None:
        return self._of_article(article_id).article(article_id)

    def articles(self) -> list[Article]:
        found = self._each(lambda _, shard: shard.articles())
        return sorted((a for part in found for a in part), key=lambda a: a.article_id)

    def sources(self) -> list[str]:
        found = self._each(lambda _, shard: shard.sources())
        return sorted({source for part in found for source in part})

    def stats(self) -> dict[str, Any]:
        per_shard = self._each(lambda _, shard: shard.stats())
        return {
            **self.manifest.stats(),
            "size_bytes": sum(int(part.get("size_bytes", 0)) for part in per_shard),
            "shards": per_shard,
            "index_dir": str(self.index_dir),
        }

    def release_log(self) -> bool:
        released = [shard.release_log() for shard in self.shards if isinstance(shard, IndexReader)]
        return all(released)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
        self._pool.shutdown(wait=False)


def sharded_index(index_dir: Path | str) -> bool:
    """Whether `index_dir` holds a sharded index (its layout file, at least)."""
    return (Path(index_dir) / SHARDS).exists()


AnyIndex = IndexReader | ShardedReader


def open_index(index_dir: Path | str) -> AnyIndex:
    """The index in `index_dir`, sharded or not, opened in this process."""
    if sharded_index(index_dir):
        return ShardedReader.open(index_dir)
    return IndexReader.open(index_dir)


def read_any_manifest(index_dir: Path | str) -> Manifest | None:
    """`read_manifest` for an index that may be sharded."""
    if sharded_index(index_dir):
        return read_sharded_manifest(Path(index_dir))
    return read_manifest(Path(index_dir))
