"""A synthetic archive of any size whose text, BM25 and vectors agree, for benchmarks/scale.py.

The real model embeds every sentence of the shared SQuAD paragraphs once (cached under
benchmarks/.cache). Articles are then composed of those sentences (paragraphs of a few
consecutive sentences of one SQuAD paragraph, drawn at random, seeded), and `PoolEmbedder`
gives each chunk the normalized mean of its sentences' real vectors and each sentence its own:
what the model would give, up to context, at no model cost. Questions from the pool have real
answers in the archive, so retrieval can be judged at every size.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.squad_common import load_squad
from qa.embedding import Embedder
from qa.sentences import split_sentences

CACHE = Path(__file__).resolve().parent / ".cache"


@dataclass(frozen=True)
class Pool:
    """Every sentence of the SQuAD paragraphs with its vector, and the paragraphs as runs of
    sentence indexes."""

    sentences: list[str]
    vectors: np.ndarray  # one normalized row per sentence
    paragraphs: list[list[int]]
    questions: list[tuple[str, int, tuple[str, ...]]]  # (question, paragraph, answers)


def sentence_pool(embedder: Embedder, cache: Path = CACHE) -> Pool:
    """The pool, embedded by `embedder` once and cached by the model's id."""
    sentences: list[str] = []
    paragraphs: list[list[int]] = []
    questions: list[tuple[str, int, tuple[str, ...]]] = []
    for entry in load_squad():
        for paragraph in entry["paragraphs"]:
            context = paragraph["context"]
            run = []
            for start, end in split_sentences(context):
                run.append(len(sentences))
                sentences.append(" ".join(context[start:end].split()))
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa["answers"])
                questions.append((qa["question"], len(paragraphs), answers))
            paragraphs.append(run)
    key = hashlib.sha256(f"{embedder.model_id}\n{len(sentences)}".encode()).hexdigest()[:16]
    path = cache / f"sentence-pool-{key}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        vectors = embedder.embed_documents(sentences, progress=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return Pool(sentences, vectors, paragraphs, questions)


def synthetic_articles(
    pool: Pool, count: int, *, seed: int = 0, first: int = 0
) -> Iterator[dict[str, str]]:
    """`count` articles as JSON-lines records (id, title, text, source, published).

    Each has 4 to 7 paragraphs; each paragraph is 2 to 4 consecutive sentences of one SQuAD
    paragraph, so sentences keep their neighbours and a question's answer sentence stays
    readable in context.
    """
    sources = ["Example Wire", "Daily Post", "The Ledger", "Morning Star", "City Times"]
    for number in range(first, first + count):
        rng = random.Random(f"{seed}-{number}")
        parts = []
        for _ in range(rng.randint(4, 7)):
            run = pool.paragraphs[rng.randrange(len(pool.paragraphs))]
            size = min(len(run), rng.randint(2, 4))
            begin = rng.randrange(len(run) - size + 1)
            parts.append(" ".join(pool.sentences[i] for i in run[begin : begin + size]))
        yield {
            "id": f"a{number:07d}",
            "title": f"Report {number}",
            "text": "\n\n".join(parts),
            "source": sources[number % len(sources)],
            "published": f"20{10 + number % 14:02d}-{1 + number % 12:02d}-{1 + number % 28:02d}",
        }


def write_corpus(pool: Pool, folder: Path, articles: int, *, per_file: int = 500) -> None:
    """The archive as JSON-lines files of `per_file` articles each (written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    for begin in range(0, articles, per_file):
        path = folder / f"part-{begin // per_file:05d}.jsonl"
        if path.exists():
            continue
        size = min(per_file, articles - begin)
        lines = (json.dumps(a) for a in synthetic_articles(pool, size, first=begin))
        temporary = path.with_suffix(".tmp")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temporary.rename(path)


class PoolEmbedder:
    """An `Embedder` that knows the pool's sentences: chunk vectors are the normalized mean of
    the vectors of the sentences they hold, sentence vectors are their own, queries are
    embedded by the real model. Model time is zero for documents by construction."""

    def __init__(self, pool: Pool, real: Embedder):
        self._pool = pool
        self._real = real
        self._index = {sentence: i for i, sentence in enumerate(pool.sentences)}
        # A piece the splitter cut differently is known by its first words.
        self._prefix = {sentence[:_PREFIX]: i for i, sentence in enumerate(pool.sentences)}

    @property
    def pool(self) -> Pool:
        return self._pool

    @property
    def model_id(self) -> str:
        return self._real.model_id

    @property
    def dimension(self) -> int:
        return int(self._pool.vectors.shape[1])

    @property
    def max_tokens(self) -> int:
        return self._real.max_tokens

    def count_tokens(self, text: str) -> int:
        return self._real.count_tokens(text)

    def _vector_of(self, text: str) -> np.ndarray:
        rows = [self._row(piece) for piece in _pieces(text)]
        known = [row for row in rows if row is not None]
        if not known:  # a fragment cut mid-sentence: any fixed vector, no model time
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            known = [random.Random(seed).randrange(len(self._pool.sentences))]
        vector = self._pool.vectors[known].mean(axis=0)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    def _row(self, piece: str) -> int | None:
        found = self._index.get(piece)
        return found if found is not None else self._prefix.get(piece[:_PREFIX])

    def embed_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return np.vstack([self._vector_of(t) for t in texts]).astype(np.float32)

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        progress: bool = False,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        # The spans are the chunk's sentences: looked up whole, no sentence splitting here (it
        # cost as much as the build's own splitting); the chunk gets their normalized mean.
        pooled = [
            np.vstack([self._sentence_vector(text[s:e]) for s, e in text_spans]).astype(np.float32)
            if text_spans
            else np.zeros((0, self.dimension), np.float32)
            for text, text_spans in zip(texts, spans, strict=True)
        ]
        passages = np.vstack(
            [
                _normalized(rows.mean(axis=0)) if len(rows) else self._vector_of(text)
                for text, rows in zip(texts, pooled, strict=True)
            ]
        ).astype(np.float32)
        return passages, pooled

    def _sentence_vector(self, text: str) -> np.ndarray:
        row = self._row(" ".join(text.split()))
        return self._pool.vectors[row] if row is not None else self._vector_of(text)

    def embed_query(self, text: str) -> np.ndarray:
        return self._real.embed_query(text)


_PREFIX = 40


def _normalized(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _pieces(text: str) -> list[str]:
    """The sentences of a chunk (or a sentence), whitespace-normalized as in the pool."""
    return [" ".join(text[s:e].split()) for s, e in split_sentences(text)]
