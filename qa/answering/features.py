"""The evidence behind an answer: every sentence of the retrieved passages, described by numbers.

`SentenceCollector` turns a question's passages into `Candidate` sentences with their
FEATURES (question words they share, similarity of their stored vectors, retrieval ranks,
whether they hold a span of the kind the question asks for, ...) and the context window a
reader would read them in. `reader_features` adds what the trained reader found in them, and
`answerability_features` describes the question's evidence as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from qa.reading import HeuristicReader, Reading, Span, is_kind, question_terms, question_type
from qa.retrieval import Retriever
from qa.store import AnyIndex, ChunkFilter
from qa.terms import content_sequence, content_stems, stem, words
from qa.types import Hit

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
OVERLAP = FEATURES.index("overlap")
CONTEXT_OVERLAP = FEATURES.index("context_overlap")
PASSAGE_OVERLAP = FEATURES.index("passage_overlap")
SENTENCE_DENSE = FEATURES.index("sentence_dense")

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

# What the trained reader adds for each sentence it read (the best ones by FEATURES).
READER_FEATURES = (
    "evidence",  # the first ranker's value
    "reader_margin",  # the reader's best span score in the sentence minus its "no answer" score
    "reader_gap",  # its span score minus the best span score among the sentences read (≤ 0)
    "reader_share",  # softmax share of its span score among the sentences read
    "reader_typed",  # the reader's span is the measure the question asks for (when, how long...)
)
READER_TYPED = READER_FEATURES.index("reader_typed")
READER_ANSWERABILITY_FEATURES = (
    *ANSWERABILITY_FEATURES,
    "reranked_evidence",  # the reader-aware ranker's value for its best sentence
    "reranked_gap",  # that minus the runner-up's
    *(f"best_{name}" for name in READER_FEATURES[1:]),
    "max_reader_margin",
)

MEASURES = ("date", "duration", "number")
_CONTEXT_CHARS = 600  # sentences this far before a passage are read with it
_WINDOW_CHARS = 560  # a sentence and its neighbours, read together: about 130 tokens


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, with the evidence that it answers the question.

    `context` is the sentence with neighbouring sentences around it (`context_start` is its
    offset in the article): what the trained reader reads to answer from the sentence.
    """

    hit: Hit
    start: int  # offsets of the sentence in the article
    end: int
    text: str
    features: tuple[float, ...]
    span: Span | None  # the heuristic reader's best span, offsets into `text`
    context: str = ""
    context_start: int = 0
    evidence: float = 0.0  # the ranker's value
    score: float = 0.0  # its share of the evidence among the question's candidates (0..1)
    reading: Reading | None = None  # the trained reader's, offsets into `context`
    reader_features: tuple[float, ...] = ()

    @property
    def short_span(self) -> Span | None:
        """The short answer, as offsets into `text`: the trained reader's where it read the
        sentence, else the heuristic reader's."""
        if self.reading is None:
            return self.span
        if self.reading.span is None:
            return None
        shift = self.start - self.context_start
        span = self.reading.span
        return Span(span.start - shift, span.end - shift, span.score)


def _pairs(stems: Sequence[str]) -> set[tuple[str, str]]:
    return set(pairwise(stems))


def _idf(document_frequency: int, documents: int) -> float:
    return math.log(1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))


class SentenceCollector:
    """Every sentence of a question's top passages, with FEATURES and a reading window.

    Args:
        reader: the index, for sentences, vectors and term statistics.
        retriever: finds the passages.
    """

    def __init__(self, reader: AnyIndex, retriever: Retriever):
        self._reader = reader
        self._retriever = retriever
        self._heuristic = HeuristicReader()

    def collect(
        self, question: str, vector: np.ndarray, k: int = 5, filters: ChunkFilter | None = None
    ) -> tuple[list[Candidate], list[Hit]]:
        """The candidates (unranked) and the passages they come from."""
        hits = self._retriever.search(question, k, filters=filters, query_vector=vector)
        if not hits:
            return [], []
        dense = self._reader.vectors_for([h.chunk_id for h in hits]) @ vector
        # Sentences before a passage give context ("the meeting ... . It lasted 10 minutes."),
        # and those around it are read with it.
        sentences = self._reader.sentences_in(
            [(h.article_id, max(0, h.start - _CONTEXT_CHARS), h.end + _WINDOW_CHARS) for h in hits]
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
        rows: list[tuple[Hit, int, int, str, list[float], list[float], Span | None, int, int]]
        rows = []
        for rank, (hit, similarity) in enumerate(zip(hits, dense, strict=True), start=1):
            passage_stems = {stem(w.group()) for w in words(hit.text)}
            passage_overlap = sum(v for s, v in idf.items() if s in passage_stems) / total_idf
            article_sentences = sentences.get(hit.article_id, [])
            article_text = texts[hit.article_id]
            for position, (start, end) in enumerate(article_sentences):
                if (hit.article_id, start) in seen or not (start < hit.end and end > hit.start):
                    continue
                seen.add((hit.article_id, start))
                text = article_text[start:end]
                sentence_words = words(text)
                sentence_stems = {stem(w.group()) for w in sentence_words}
                overlap = sum(v for s, v in idf.items() if s in sentence_stems) / total_idf
                context_start = article_sentences[max(0, position - 2)][0]
                context_stems = sentence_stems | {
                    stem(w.group()) for w in words(article_text[context_start:start])
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
                window = _window(article_sentences, position)
                rows.append((hit, start, end, text, features, late, span, *window))
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
                context=texts[hit.article_id][window_start:window_end],
                context_start=window_start,
            )
            for (
                hit,
                start,
                end,
                text,
                features,
                late,
                span,
                window_start,
                window_end,
            ), similarity in zip(rows, sentence_dense, strict=True)
        ]
        return found, hits

    def _question_idf(self, question: str) -> dict[str, float]:
        stems = content_stems(question_terms(question))
        frequencies = self._reader.document_frequencies(stems)
        documents = max(1, self._reader.manifest.chunks)
        return {s: _idf(frequencies.get(s, 0), documents) for s in stems}


def _window(sentences: Sequence[tuple[int, int]], position: int) -> tuple[int, int]:
    """The sentence at `position` with neighbours, taken alternately after and before it while
    the whole stays within _WINDOW_CHARS (the sentence alone may be longer)."""
    first = last = position
    start, end = sentences[position]
    grew = True
    while grew:
        grew = False
        if last + 1 < len(sentences) and sentences[last + 1][1] - start <= _WINDOW_CHARS:
            last += 1
            end = sentences[last][1]
            grew = True
        if first > 0 and end - sentences[first - 1][0] <= _WINDOW_CHARS:
            first -= 1
            start = sentences[first][0]
            grew = True
    return start, end


def reader_features(candidates: Sequence[Candidate], question: str) -> list[tuple[float, ...]]:
    """READER_FEATURES of the candidates the trained reader read (each has a `reading`)."""
    _, kinds = question_type(question)
    # Only measures: their patterns are reliable, and a date is no answer to "how long".
    asks_kind = bool(kinds) and kinds[0] in MEASURES
    logits = [c.reading.logit if c.reading else -math.inf for c in candidates]
    top = max(logits)
    if not math.isfinite(top):
        top = 0.0
    exponents = [math.exp(x - top) if math.isfinite(x) else 0.0 for x in logits]
    total = sum(exponents) or 1.0
    rows: list[tuple[float, ...]] = []
    for candidate, logit, exponent in zip(candidates, logits, exponents, strict=True):
        reading = candidate.reading
        margin = reading.margin if reading and math.isfinite(reading.logit) else -30.0
        gap = logit - top if math.isfinite(logit) else -30.0
        span = candidate.short_span if reading else None
        typed = asks_kind and span is not None and is_kind(candidate.text, span, kinds[0])
        rows.append(
            (
                candidate.evidence,
                max(-30.0, margin),
                max(-30.0, gap),
                exponent / total,
                float(typed),
            )
        )
    return rows


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
        max(c.features[OVERLAP] for c in candidates),
        max(c.features[SENTENCE_DENSE] for c in candidates),
        max(c.features[PASSAGE_OVERLAP] for c in candidates),
        float(agree),
        sum(h.article_id == best.hit.article_id for h in hits) / len(hits),
        len({h.article_id for h in hits}) / len(hits),
        float(hits[0].chunk_id == best.hit.chunk_id),
        hits[0].score,
    ]


def reader_answerability_features(
    ranked_candidates: Sequence[Candidate], reranked: Sequence[Candidate], hits: Sequence[Hit]
) -> list[float]:
    """READER_ANSWERABILITY_FEATURES: those of the first ranking, then of the reader-aware one
    (`reranked`, best first, each with `reader_features` and its value in `evidence`)."""
    best = reranked[0]
    runner_up = reranked[1].evidence if len(reranked) > 1 else best.evidence - 5.0
    return [
        *answerability_features(ranked_candidates, hits),
        best.evidence,
        best.evidence - runner_up,
        *best.reader_features[1:],
        max(c.reader_features[1] for c in reranked),
    ]
