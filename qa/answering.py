"""Extractive answers: the best sentence of the top passages, its short answer, and citations.

Candidate sentences come from the retrieved passages; each is scored by a small logistic model
over evidence features (weights fitted on SQuAD by benchmarks/calibrate_answers.py and shipped
in qa/answer_model.json), among them the similarity of the question to the sentence's vector,
stored in the index at build time; a reader picks the short answer; other articles whose top
sentences carry the same short answer, or say the same thing, are cited as agreeing sources.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from qa.embedding import Embedder
from qa.reading import HeuristicReader, Reader, Span, is_kind, question_terms, question_type
from qa.retrieval import Retriever, clean_query
from qa.store import ChunkFilter, IndexReader
from qa.terms import content_stems, stem, words
from qa.types import Answer, Citation, Hit

# The evidence computed for every sentence of the retrieved passages.
FEATURES = (
    "overlap",  # IDF-weighted share of the question's words that the sentence contains
    "context_overlap",  # the same for the sentence with the two before it
    "passage_overlap",  # the same for the whole retrieved passage
    "dense",  # cosine of the question and the passage embeddings
    "inverse_rank",  # 1 / rank of the passage among the retrieved hits
    "typed",  # the sentence holds a span of the kind the question asks for
    "span",  # the heuristic reader's confidence in its best span there
    "log_length",  # log of the sentence's word count
    "sentence_dense",  # cosine of the question and the sentence vectors
    "overlap_gap",  # overlap minus the best overlap among the candidates (≤ 0)
    "sentence_dense_gap",  # the same for sentence_dense
    "lexical_rank",  # 1 / the passage's place in the BM25 ranking (0 when not in it)
    "sentence_rank",  # 1 / its place in the ranking by best sentence vector (0 when not in it)
)
_TYPED = FEATURES.index("typed")
_CONTEXT_OVERLAP = FEATURES.index("context_overlap")


@dataclass(frozen=True)
class Logistic:
    weights: tuple[float, ...]
    bias: float

    def probability(self, features: Sequence[float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass(frozen=True)
class AnswerModel:
    """The sentence scorer over FEATURES and the score below which the answer is withheld."""

    scorer: Logistic
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def default(cls) -> AnswerModel:
        text = resources.files("qa").joinpath("answer_model.json").read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerModel:
        scorer = data["scorer"]
        if tuple(scorer["features"]) != FEATURES:
            raise ValueError(f"answer model features do not match {list(FEATURES)}")
        return cls(
            scorer=Logistic(tuple(map(float, scorer["weights"])), float(scorer["bias"])),
            threshold=float(data["threshold"]),
            calibration=dict(data.get("calibration", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scorer": {
                "features": list(FEATURES),
                "weights": [round(w, 5) for w in self.scorer.weights],
                "bias": round(self.scorer.bias, 5),
            },
            "threshold": self.threshold,
            "calibration": self.calibration,
        }


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, with the evidence that it answers the question."""

    hit: Hit
    start: int  # offsets of the sentence in the article
    end: int
    text: str
    features: tuple[float, ...]
    span: Span | None  # the heuristic reader's best span, offsets into `text`
    score: float = 0.0


_CONTEXT_CHARS = 600
# Among sentences scoring within this margin of the best, the answer more articles agree on wins.
_AGREEMENT_MARGIN = 0.25


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | {"“", "”", "’", "‘"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _idf(document_frequency: int, documents: int) -> float:
    return math.log(1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))


class Answerer:
    """Builds an `Answer` for a question from one index's passages.

    Args:
        reader: the index, for sentences, vectors and term statistics.
        retriever: finds the passages.
        embedder: embeds the question once for both retrieval and scoring.
        short_reader: picks the short answer inside the chosen sentence(s).
        model: the sentence-scoring weights and the no-answer threshold.
    """

    def __init__(
        self,
        reader: IndexReader,
        retriever: Retriever,
        embedder: Embedder,
        *,
        short_reader: Reader | None = None,
        model: AnswerModel | None = None,
        passages_to_read: int = 3,
    ):
        self._reader = reader
        self._retriever = retriever
        self._embedder = embedder
        self._short_reader = short_reader or HeuristicReader()
        self._heuristic = HeuristicReader()
        self.model = model or AnswerModel.default()
        self._passages_to_read = passages_to_read

    def candidates(
        self,
        question: str,
        k: int = 5,
        filters: ChunkFilter | None = None,
        vector: np.ndarray | None = None,
    ) -> tuple[list[Candidate], list[Hit]]:
        """Every sentence of the top-k passages with its features and score, best first, and
        the passages.
        """
        if vector is None:
            vector = self._embedder.embed_query(question)
        hits = self._retriever.search(question, k, filters=filters, query_vector=vector)
        if not hits:
            return [], []
        dense = self._reader.vectors_for([h.chunk_id for h in hits]) @ vector
        # Sentences before a passage give context ("the meeting ... . It lasted 10 minutes.").
        sentences = self._reader.sentences_in(
            [(h.article_id, max(0, h.start - _CONTEXT_CHARS), h.end) for h in hits]
        )
        texts = {h.article_id: "" for h in hits}
        for article_id in texts:
            article = self._reader.article(article_id)
            texts[article_id] = article.text if article else ""
        idf = self._question_idf(question)
        total_idf = sum(idf.values()) or 1.0
        kind = question_type(question)[1][0]

        seen: set[tuple[str, int]] = set()
        rows: list[tuple[Hit, int, int, str, list[float], Span | None]] = []
        for rank, (hit, similarity) in enumerate(zip(hits, dense, strict=True), start=1):
            passage_stems = {stem(w.group()) for w in words(hit.text)}
            passage_overlap = sum(v for s, v in idf.items() if s in passage_stems) / total_idf
            article_sentences = sentences.get(hit.article_id, [])
            for position, (start, end) in enumerate(article_sentences):
                if (hit.article_id, start) in seen or not (start < hit.end and end > hit.start):
                    continue
                seen.add((hit.article_id, start))
                text = texts[hit.article_id][start:end]
                sentence_words = words(text)
                sentence_stems = {stem(w.group()) for w in sentence_words}
                overlap = sum(v for s, v in idf.items() if s in sentence_stems) / total_idf
                context_start = article_sentences[max(0, position - 2)][0]
                context_stems = sentence_stems | {
                    stem(w.group()) for w in words(texts[hit.article_id][context_start:start])
                }
                context_overlap = sum(v for s, v in idf.items() if s in context_stems) / total_idf
                span = self._heuristic.read(question, [text])[0]
                typed = span is not None and is_kind(text, span, kind)
                features = [
                    overlap,
                    context_overlap,
                    passage_overlap,
                    float(similarity),
                    1.0 / rank,
                    1.0 if typed else 0.0,
                    span.score if span else 0.0,
                    math.log(1 + len(sentence_words)),
                ]
                rows.append((hit, start, end, text, features, span))
        if not rows:
            return [], hits
        sentence_dense = (
            self._reader.sentence_vectors_for([(r[0].article_id, r[1]) for r in rows]) @ vector
        )
        best_overlap = max(r[4][0] for r in rows)
        best_dense = float(sentence_dense.max())
        found = []
        for (hit, start, end, text, features, span), similarity in zip(
            rows, sentence_dense, strict=True
        ):
            full = (
                *features,
                float(similarity),
                features[0] - best_overlap,
                float(similarity) - best_dense,
                1.0 / (hit.rank_in("lexical") or math.inf),
                1.0 / (hit.rank_in("sentence") or math.inf),
            )
            score = self.model.scorer.probability(full)
            found.append(Candidate(hit, start, end, text, full, span, score))
        found.sort(key=lambda c: (-c.score, c.hit.article_id, c.start))
        return found, hits

    def _question_idf(self, question: str) -> dict[str, float]:
        stems = content_stems(question_terms(question))
        frequencies = self._reader.document_frequencies(stems)
        documents = max(1, self._reader.manifest.chunks)
        return {s: _idf(frequencies.get(s, 0), documents) for s in stems}

    def ask(self, question: str, k: int = 5, filters: ChunkFilter | None = None) -> Answer:
        """The answer to `question`, with citations, or `found=False` and related passages."""
        question = clean_query(question)
        candidates, hits = self.candidates(question, k, filters)
        if not candidates:
            return Answer(question, False, "", "", 0.0, [], hits)
        best, span = self._read(question, candidates)
        if best.score < self.model.threshold:
            return Answer(question, False, "", "", round(best.score, 4), [], hits)
        if isinstance(self._short_reader, HeuristicReader):
            best, short, agreeing = self._best_supported(question, candidates)
            span = self._locate(best.text, short)
        else:
            short = best.text[span.start : span.end] if span else ""
            agreeing = self._agreeing(best, short, candidates)
        citations = [self._cite(best, span)]
        citations += [self._cite(other, self._locate(other.text, short)) for other in agreeing]
        return Answer(question, True, short, best.text, round(best.score, 4), citations, hits)

    def _best_supported(
        self, question: str, candidates: list[Candidate]
    ) -> tuple[Candidate, str, list[Candidate]]:
        """Among the sentences above the threshold, prefer one that holds an answer of the kind
        asked for ("where" → a place), then, within a margin of the best such sentence's score,
        the answer more articles report, then the score.
        """
        typed_question = question_type(question)[0] != "other"
        options = []
        for rival in candidates:
            if rival.score < self.model.threshold:
                break
            short = rival.text[rival.span.start : rival.span.end] if rival.span else ""
            # Measured on SQuAD: preferring a sentence with a span helps questions of a type
            # (who, where, when, how many) but costs "what"/"which" questions more than it gains.
            has_answer = not typed_question or (bool(short) and rival.features[_TYPED] > 0)
            options.append((has_answer, rival, short))
        top_score: dict[bool, float] = {}  # candidates are best first: the first of each kind
        for has_answer, rival, _ in options:
            top_score.setdefault(has_answer, rival.score)
        ranked = []
        for has_answer, rival, short in options:
            agreeing = self._agreeing(rival, short, candidates)
            near_best = rival.score >= top_score[has_answer] - _AGREEMENT_MARGIN
            support = len(agreeing) if near_best else 0
            ranked.append(((has_answer, support, rival.score), rival, short, agreeing))
        _, chosen, short, agreeing = max(ranked, key=lambda option: option[0])
        return chosen, short, agreeing

    def _read(self, question: str, candidates: list[Candidate]) -> tuple[Candidate, Span | None]:
        """The sentence to answer from and its short answer, by the configured reader."""
        if isinstance(self._short_reader, HeuristicReader):
            return candidates[0], candidates[0].span
        top = candidates[: self._passages_to_read]
        spans = self._short_reader.read(question, [c.text for c in top])
        scored = [
            (c.score + (s.score if s else 0.0), c, s) for c, s in zip(top, spans, strict=True)
        ]
        _, candidate, span = max(scored, key=lambda item: item[0])
        return candidate, span

    def _agreeing(
        self, best: Candidate, short: str, candidates: list[Candidate]
    ) -> list[Candidate]:
        """The best sentence of each other article that supports the same answer."""
        wanted = normalize_answer(short)
        best_stems = set(content_stems(best.text))
        agreeing: dict[str, Candidate] = {}
        for other in candidates:  # every sentence of the passages read, best first
            if other.hit.article_id == best.hit.article_id or other.hit.article_id in agreeing:
                continue
            if other.features[_CONTEXT_OVERLAP] == 0:
                continue  # shares no word of the question, even with its context
            same_answer = bool(wanted) and f" {wanted} " in f" {normalize_answer(other.text)} "
            other_stems = set(content_stems(other.text))
            union = best_stems | other_stems
            near_duplicate = bool(union) and len(best_stems & other_stems) / len(union) >= 0.5
            if same_answer or near_duplicate:
                agreeing[other.hit.article_id] = other
        return list(agreeing.values())

    @staticmethod
    def _locate(text: str, short: str) -> Span | None:
        """Where `short` stands in `text`, ignoring case and punctuation differences."""
        if not short:
            return None
        found = text.lower().find(short.lower())
        if found >= 0:
            return Span(found, found + len(short), 1.0)
        wanted = normalize_answer(short).split()
        tokens = words(text)
        for i in range(len(tokens) - len(wanted) + 1):
            window = tokens[i : i + len(wanted)]
            if [normalize_answer(t.group()) for t in window] == wanted:
                return Span(window[0].start(), window[-1].end(), 1.0)
        return None

    @staticmethod
    def _cite(candidate: Candidate, span: Span | None) -> Citation:
        hit = candidate.hit
        span_start = candidate.start + (span.start if span else 0)
        span_end = candidate.start + span.end if span else span_start
        return Citation(
            article_id=hit.article_id,
            title=hit.title,
            source=hit.source,
            url=hit.url,
            published=hit.published,
            sentence=candidate.text,
            start=candidate.start,
            end=candidate.end,
            span_start=span_start,
            span_end=span_end,
            score=round(candidate.score, 4),
        )
