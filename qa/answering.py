"""Extractive answers: the best sentence of the top passages, its short answer, and citations.

Candidate sentences come from the retrieved passages. A linear ranker over evidence features
(among them the similarity of the question to the sentence's vector, stored in the index at
build time) orders them; a second model, over the evidence of the question as a whole, decides
whether the passages answer it at all. Both are fitted on SQuAD by
benchmarks/calibrate_answers.py and shipped in qa/answer_model.json. A reader picks the short
answer; other articles whose top sentences carry the same short answer, or say the same thing,
are cited as agreeing sources.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from itertools import pairwise
from typing import Any

import numpy as np

from qa.embedding import Embedder
from qa.reading import HeuristicReader, Reader, Span, is_kind, question_terms, question_type
from qa.retrieval import Retriever, clean_query
from qa.store import ChunkFilter, IndexReader
from qa.terms import content_sequence, content_stems, stem, words
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
    "typed_question",  # `typed`, for questions that ask for a kind (who, where, when, how many)
    "bigram",  # share of the question's adjacent word pairs that the sentence also has
)
_OVERLAP = FEATURES.index("overlap")
_CONTEXT_OVERLAP = FEATURES.index("context_overlap")
_PASSAGE_OVERLAP = FEATURES.index("passage_overlap")
_SENTENCE_DENSE = FEATURES.index("sentence_dense")

# The evidence that the passages answer the question at all, from its candidates and hits.
ANSWERABILITY_FEATURES = (
    "best_evidence",  # the ranker's value for the best sentence
    "evidence_gap",  # that minus the runner-up's
    "best_share",  # the best sentence's share of the evidence (softmax over the candidates)
    *(f"best_{name}" for name in FEATURES),
    "max_overlap",
    "max_sentence_dense",
    "max_passage_overlap",
    "rankings_agree",  # BM25 and sentence vectors put the same passage first
    "article_share",  # share of the hits from the best sentence's article
    "article_variety",  # distinct articles among the hits, per hit
    "best_in_top_hit",  # the best sentence lies in the first hit
    "top_hit_score",  # the first hit's fused retrieval score
)


@dataclass(frozen=True)
class Linear:
    """A linear model: `value` ranks, `probability` is its logistic reading."""

    weights: tuple[float, ...]
    bias: float = 0.0

    def value(self, features: Sequence[float]) -> float:
        return self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))

    def probability(self, features: Sequence[float]) -> float:
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, self.value(features)))))


@dataclass(frozen=True)
class AnswerModel:
    """How candidate sentences are ranked, and when the best of them is not an answer.

    `ranker` orders one question's sentences (fitted listwise: only the differences between a
    question's sentences matter); `answerable` gives the probability that the passages hold an
    answer, from ANSWERABILITY_FEATURES; below `threshold` the answer is withheld.
    """

    ranker: Linear
    answerable: Linear
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def default(cls) -> AnswerModel:
        text = resources.files("qa").joinpath("answer_model.json").read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerModel:
        def linear(part: str, names: tuple[str, ...]) -> Linear:
            model = data[part]
            if tuple(model["features"]) != names:
                raise ValueError(f"answer model {part} features do not match {list(names)}")
            return Linear(tuple(map(float, model["weights"])), float(model["bias"]))

        return cls(
            ranker=linear("ranker", FEATURES),
            answerable=linear("answerable", ANSWERABILITY_FEATURES),
            threshold=float(data["threshold"]),
            calibration=dict(data.get("calibration", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        def linear(model: Linear, names: tuple[str, ...]) -> dict[str, Any]:
            return {
                "features": list(names),
                "weights": [round(w, 6) for w in model.weights],
                "bias": round(model.bias, 6),
            }

        return {
            "ranker": linear(self.ranker, FEATURES),
            "answerable": linear(self.answerable, ANSWERABILITY_FEATURES),
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
    evidence: float = 0.0  # the ranker's value
    score: float = 0.0  # its share of the evidence among the question's candidates (0..1)


_CONTEXT_CHARS = 600
# Among sentences with at least this share of the best one's evidence, the answer more articles
# agree on wins. On SQuAD, where each fact has one source and agreement is chance, 0.1 costs 0.2
# points of hit@1 against 0.5; in news, where outlets report the same event, it is what makes the
# event both outlets report win over an aside one of them makes (tests/test_answering_real.py).
_AGREEMENT_SHARE = 0.1
# Another article agrees only when its sentence, with its context, covers at least this share of
# the question words that the supported sentence's covers: on SQuAD this halves the citations of
# unrelated articles that merely contain the same word or number (38 → 18 in 2,000 questions).
_AGREEING_COVERAGE = 0.5


def ranked(candidates: Sequence[Candidate], ranker: Linear) -> list[Candidate]:
    """The candidates of one question with the ranker's evidence and share, best first."""
    if not candidates:
        return []
    evidence = [ranker.value(c.features) for c in candidates]
    top = max(evidence)
    total = sum(math.exp(e - top) for e in evidence)
    scored = [
        replace(c, evidence=e, score=math.exp(e - top) / total)
        for c, e in zip(candidates, evidence, strict=True)
    ]
    return sorted(scored, key=lambda c: (-c.evidence, c.hit.article_id, c.start))


def answerability_features(candidates: Sequence[Candidate], hits: Sequence[Hit]) -> list[float]:
    """ANSWERABILITY_FEATURES of a question's candidates (best first) and hits."""
    best = candidates[0]
    runner_up = candidates[1].evidence if len(candidates) > 1 else best.evidence - 5.0
    first = {ranking: hit for hit in hits for ranking, rank in hit.ranks.items() if rank == 1}
    lexical, sentence = first.get("lexical"), first.get("sentence")
    agree = lexical is not None and sentence is not None and lexical.chunk_id == sentence.chunk_id
    return [
        best.evidence,
        best.evidence - runner_up,
        best.score,
        *best.features,
        max(c.features[_OVERLAP] for c in candidates),
        max(c.features[_SENTENCE_DENSE] for c in candidates),
        max(c.features[_PASSAGE_OVERLAP] for c in candidates),
        float(agree),
        sum(h.article_id == best.hit.article_id for h in hits) / len(hits),
        len({h.article_id for h in hits}) / len(hits),
        float(hits[0].chunk_id == best.hit.chunk_id),
        hits[0].score,
    ]


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | {"“", "”", "’", "‘"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _pairs(stems: Sequence[str]) -> set[tuple[str, str]]:
    return set(pairwise(stems))


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
        question_type_name, kinds = question_type(question)
        typed_question = question_type_name not in ("other", "statement")
        question_pairs = _pairs(content_sequence(question_terms(question)))

        seen: set[tuple[str, int]] = set()
        rows: list[tuple[Hit, int, int, str, list[float], list[float], Span | None]] = []
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
                typed = span is not None and is_kind(text, span, kinds[0])
                shared_pairs = question_pairs & _pairs(content_sequence(text))
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
                late = [
                    1.0 if typed and typed_question else 0.0,
                    len(shared_pairs) / len(question_pairs) if question_pairs else 0.0,
                ]
                rows.append((hit, start, end, text, features, late, span))
        if not rows:
            return [], hits
        sentence_dense = (
            self._reader.sentence_vectors_for([(r[0].article_id, r[1]) for r in rows]) @ vector
        )
        best_overlap = max(r[4][0] for r in rows)
        best_dense = float(sentence_dense.max())
        found = [
            Candidate(
                hit,
                start,
                end,
                text,
                (
                    *features,
                    float(similarity),
                    features[0] - best_overlap,
                    float(similarity) - best_dense,
                    1.0 / (hit.rank_in("lexical") or math.inf),
                    1.0 / (hit.rank_in("sentence") or math.inf),
                    *late,
                ),
                span,
            )
            for (hit, start, end, text, features, late, span), similarity in zip(
                rows, sentence_dense, strict=True
            )
        ]
        return ranked(found, self.model.ranker), hits

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
        confidence = self.model.answerable.probability(answerability_features(candidates, hits))
        if confidence < self.model.threshold:
            return Answer(question, False, "", "", round(confidence, 4), [], hits)
        if isinstance(self._short_reader, HeuristicReader):
            best, short, agreeing = self._best_supported(candidates)
            span = self._locate(best.text, short)
        else:
            best, span = self._read(question, candidates)
            short = best.text[span.start : span.end] if span else ""
            agreeing = self._agreeing(best, short, candidates)
        citations = [self._cite(best, span)]
        citations += [self._cite(other, self._locate(other.text, short)) for other in agreeing]
        return Answer(question, True, short, best.text, round(confidence, 4), citations, hits)

    def _best_supported(
        self, candidates: list[Candidate]
    ) -> tuple[Candidate, str, list[Candidate]]:
        """Among the sentences with at least _AGREEMENT_SHARE of the best one's evidence, the
        answer more articles report, then the ranker's order.
        """
        options = []
        for rival in candidates:  # best first
            if rival.score < _AGREEMENT_SHARE * candidates[0].score:
                break
            short = rival.text[rival.span.start : rival.span.end] if rival.span else ""
            agreeing = self._agreeing(rival, short, candidates)
            options.append(((len(agreeing), rival.evidence), rival, short, agreeing))
        _, chosen, short, agreeing = max(options, key=lambda option: option[0])
        return chosen, short, agreeing

    def _read(self, question: str, candidates: list[Candidate]) -> tuple[Candidate, Span | None]:
        """The sentence to answer from and its short answer, by the configured reader."""
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
        coverage = max(_AGREEING_COVERAGE * best.features[_CONTEXT_OVERLAP], 1e-9)
        agreeing: dict[str, Candidate] = {}
        for other in candidates:  # every sentence of the passages read, best first
            if other.hit.article_id == best.hit.article_id or other.hit.article_id in agreeing:
                continue
            if other.features[_CONTEXT_OVERLAP] < coverage:
                continue  # about something else: it shares too few of the question's words
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
