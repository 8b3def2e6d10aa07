"""Finding the passages relevant to a query: BM25 and dense rankings fused by reciprocal rank.

The dense side ranks passages two ways: by the passage's own vector, and by the vector of its
sentence closest to the query. The second is much the stronger on questions (a question usually
paraphrases one sentence): on SQuAD, recall@1 74.7% against 66.3% (benchmarks/squad_open.py).
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from qa.embedding import Embedder
from qa.store import AnyIndex, ChunkFilter, ShardedReader
from qa.store.reader import RankingRequest
from qa.terms import STOPWORDS
from qa.types import Hit

SearchMode = Literal["hybrid", "dense", "lexical"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class FusionSettings:
    """Reciprocal rank fusion: score = Σ weight / (rrf_k + rank), over `depth` hits per ranking.

    A ranking with weight 0 is not computed. "dense" mode fuses the two dense rankings only.
    """

    # Tuned on SQuAD questions (benchmarks/squad_open.py): BM25 is the stronger ranking there.
    dense_weight: float = 0.0  # passage vectors
    sentence_weight: float = 1.0  # best sentence vector of each passage
    lexical_weight: float = 1.25
    rrf_k: int = 5
    depth: int = 50

    def __post_init__(self) -> None:
        weights = (self.dense_weight, self.sentence_weight, self.lexical_weight)
        if min(weights) < 0 or self.dense_weight + self.sentence_weight <= 0:
            raise ValueError("fusion weights must be >= 0, with a dense or sentence weight > 0")
        if self.rrf_k < 0 or self.depth < 1:
            raise ValueError("rrf_k must be >= 0 and depth >= 1")


def lexical_words(text: str) -> list[str]:
    """The words BM25 looks for: lower-cased, without stopwords (unless that leaves none),
    without repeats."""
    words = re.findall(r"\w+", text.lower())
    content = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(content))


def clean_query(text: str) -> str:
    """The query as valid Unicode, trimmed: undecodable input (lone surrogates) becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8").strip()


def _without_overlaps(hits: list[Hit]) -> list[Hit]:
    """Drop a hit that shares characters with a better hit of the same article."""
    kept: list[Hit] = []
    for hit in hits:
        if not any(
            k.article_id == hit.article_id and k.start < hit.end and hit.start < k.end for k in kept
        ):
            kept.append(hit)
    return kept


def _with_ranks(
    hits: list[Hit], named: dict[str, tuple[float, list[tuple[int, float]]]]
) -> list[Hit]:
    """The hits, each with its 1-based place in every ranking that found it."""
    places = {
        name: {chunk_id: place for place, (chunk_id, _) in enumerate(ranking, start=1)}
        for name, (_, ranking) in named.items()
    }
    return [
        replace(
            hit,
            ranks={
                name: found[hit.chunk_id] for name, found in places.items() if hit.chunk_id in found
            },
        )
        for hit in hits
    ]


class Retriever:
    """Hybrid retrieval over one index: BM25 and FAISS, fused by reciprocal rank."""

    def __init__(self, reader: AnyIndex, embedder: Embedder, fusion: FusionSettings | None = None):
        self._reader = reader
        self._embedder = embedder
        self.fusion = fusion or FusionSettings()
        self._lexical_threads: ThreadPoolExecutor | None = None

    def _lexical_pool(self) -> ThreadPoolExecutor:
        if self._lexical_threads is None:
            self._lexical_threads = ThreadPoolExecutor(4, thread_name_prefix="lexical")
        return self._lexical_threads

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        filters: ChunkFilter | None = None,
        mode: SearchMode = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The `k` best passages for `query` among those passing `filters`, best first.

        Filters are applied inside each ranking, before the top-k is cut, so a filtered query
        still returns `k` hits whenever `k` matching passages exist.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
        query = clean_query(query)
        if not query or k <= 0:
            return []
        filters = filters if filters and filters.active else None
        sharded = isinstance(self._reader, ShardedReader)
        # A sharded index's shards apply the filters themselves (pushed down, no id lists).
        allowed = self._reader.filtered_chunk_ids(filters) if filters and not sharded else None
        if allowed is not None and not allowed:
            return []
        # Overlapping neighbours are removed after ranking, so rank more than asked for, and
        # deeper still while overlaps leave fewer than k hits and the rankings can go on.
        depth = max(self.fusion.depth, 2 * k) if mode == "hybrid" else 2 * k + 4
        words = lexical_words(query) if mode != "dense" else []
        beside = None
        if mode == "hybrid" and not sharded:
            # BM25 (numpy over memory-mapped postings, or SQLite), the query encoder and FAISS
            # mostly let go of the GIL: the lexical search runs beside the rest, so a hybrid
            # search takes about the longer of the two rather than their sum.
            beside = self._lexical_pool().submit(
                self._reader.lexical_search, words, depth, filters, allowed
            )
        vector = None
        if mode in ("hybrid", "dense"):
            vector = self._embedder.embed_query(query) if query_vector is None else query_vector
        while True:
            if sharded:
                named, hits = self._sharded_rankings(
                    mode, words, vector, depth, filters, allowed, k
                )
            else:
                named = self._rankings(mode, words, vector, depth, filters, allowed, beside)
                beside = None
                hits = None
            rankings = list(named.values())
            scored = rankings[0][1] if len(rankings) == 1 else self._fuse(rankings)
            if hits is None:
                kept = _without_overlaps(self._reader.hits(scored))
            else:
                kept = self._sharded_hits(scored, hits, k)
            exhausted = all(len(ranking) < depth for _, ranking in rankings)
            if len(kept) >= k or exhausted:
                return _with_ranks(kept[:k], named)
            depth *= 2

    def _rankings(
        self,
        mode: SearchMode,
        words: list[str],
        vector: np.ndarray | None,
        depth: int,
        filters: ChunkFilter | None,
        allowed: list[int] | None,
        beside: Future[list[tuple[int, float]]] | None,
    ) -> dict[str, tuple[float, list[tuple[int, float]]]]:
        named: dict[str, tuple[float, list[tuple[int, float]]]] = {}
        if mode == "hybrid" and beside is None:
            beside = self._lexical_pool().submit(
                self._reader.lexical_search, words, depth, filters, allowed
            )
        if vector is not None and self.fusion.dense_weight > 0:
            dense = self._reader.search_vectors(vector, depth, allowed)
            named["dense"] = (self.fusion.dense_weight, dense)
        if vector is not None and self.fusion.sentence_weight > 0:
            by_sentence = self._reader.search_sentences(vector, depth, allowed)
            named["sentence"] = (self.fusion.sentence_weight, by_sentence)
        if beside is not None:
            named["lexical"] = (self.fusion.lexical_weight, beside.result())
        elif mode == "lexical":
            lexical = self._reader.lexical_search(words, depth, filters, allowed)
            named["lexical"] = (self.fusion.lexical_weight, lexical)
        return named

    def _sharded_hits(
        self, scored: list[tuple[int, float]], hits: dict[int, Hit], k: int
    ) -> list[Hit]:
        """The best `k` hits without overlaps, in fused order, from the hits the shards sent
        with their rankings (those of their best chunks), asking for any other that is
        reached (rarely: a chunk fused into the top from low places in every ranking)."""
        kept: list[Hit] = []
        for begin in range(0, len(scored), k):  # a block more only while overlaps drop some
            part = scored[begin : begin + k]
            missing = [pair for pair in part if pair[0] not in hits]
            if missing:
                hits.update({hit.chunk_id: hit for hit in self._reader.hits(missing)})
            found = [replace(hits[c], chunk_id=c, score=score) for c, score in part if c in hits]
            kept = _without_overlaps(kept + found)
            if len(kept) >= k:
                break
        return kept

    def _sharded_rankings(
        self,
        mode: SearchMode,
        words: list[str],
        vector: np.ndarray | None,
        depth: int,
        filters: ChunkFilter | None,
        allowed: list[int] | None,
        k: int,
    ) -> tuple[dict[str, tuple[float, list[tuple[int, float]]]], dict[int, Hit]]:
        """The same rankings from a sharded index, with their hits, in one round trip to the
        shards (each is asked for everything at once: the round trip is what costs there)."""
        assert isinstance(self._reader, ShardedReader)
        request = RankingRequest(
            words=words,
            vector=vector,
            depth=depth,
            filters=filters,
            allowed=allowed,
            lexical=mode != "dense",
            sentence=vector is not None and self.fusion.sentence_weight > 0,
            dense=vector is not None and self.fusion.dense_weight > 0,
            hits_per_ranking=2 * k,
        )
        found = self._reader.search_all(request)
        weights = {
            "dense": self.fusion.dense_weight,
            "sentence": self.fusion.sentence_weight,
            "lexical": self.fusion.lexical_weight,
        }
        named: dict[str, tuple[float, list[tuple[int, float]]]] = {
            name: (weights[name], found.rankings[name])
            for name in ("dense", "sentence", "lexical")
            if name in found.rankings
        }
        return named, found.hits

    def _fuse(
        self, rankings: list[tuple[float, list[tuple[int, float]]]]
    ) -> list[tuple[int, float]]:
        fused: dict[int, float] = {}
        best: dict[int, int] = {}  # each chunk's highest place in any ranking
        found_in: dict[int, int] = {}  # in how many rankings
        for weight, ranking in rankings:
            for rank, (chunk_id, _) in enumerate(ranking, start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (self.fusion.rrf_k + rank)
                best[chunk_id] = min(rank, best.get(chunk_id, rank))
                found_in[chunk_id] = found_in.get(chunk_id, 0) + 1
        # Equal fused scores are common (1.25 / (5 + 5) == 1 / (5 + 3); 1.25 / (5 + 4) ==
        # 1 / (5 + 4) + 1.25 / (5 + 40), but for the last bit): the chunk placed higher
        # somewhere comes first, then the one more rankings found; an order that does not
        # depend on how chunks are numbered (a sharded index numbers them otherwise).
        return sorted(
            fused.items(),
            key=lambda item: (
                -round(item[1], 12),
                best[item[0]],
                -found_in[item[0]],
                item[0],
            ),
        )
