"""Extractive answers: the best sentence of the top passages, its short answer, and citations.

Candidate sentences come from the retrieved passages (qa.answering.features). A linear ranker
over their evidence orders them; the trained reader then reads the best of them, each with its
neighbouring sentences, and a second ranker re-orders them by what it found; a third model,
over the evidence of the question as a whole, decides whether the passages answer it at all
(qa.answering.model). The short answer is the reader's span inside the chosen sentence; other
articles whose sentences carry the same short answer, or say the same thing, are cited as
agreeing sources.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from qa.answering.features import (
    CONTEXT_OVERLAP,
    MEASURES,
    READER_TYPED,
    Candidate,
    SentenceCollector,
    answerability_features,
    reader_answerability_features,
    reader_features,
)
from qa.answering.model import AnswerModel, Linear
from qa.embedding import Embedder
from qa.news.annotate import NewsAnnotator
from qa.news.conflicts import differ, kind_of, values_in
from qa.news.dates import asks_for_latest, relative_dates
from qa.news.speakers import asks_who_said
from qa.reading import (
    Focus,
    HeuristicReader,
    Reader,
    Span,
    TrainedReader,
    is_kind,
    question_terms,
    question_type,
)
from qa.retrieval import Retriever, clean_query
from qa.store import AnyIndex, ChunkFilter
from qa.terms import content_stems, normalize_answer, words
from qa.types import Answer, Citation, Disagreement, Hit, Speaker

# Among sentences with at least this share of the best one's evidence, the answer more articles
# agree on wins. On SQuAD, where each fact has one source and agreement is chance, 0.1 costs 0.2
# points of hit@1 against 0.5; in news, where outlets report the same event, it is what makes the
# event both outlets report win over an aside one of them makes (tests/test_answering_real.py).
_AGREEMENT_SHARE = 0.1
# Another article agrees only when its sentence, with its context, covers at least this share of
# the question words that the supported sentence's covers: on SQuAD this halves the citations of
# unrelated articles that merely contain the same word or number (38 → 18 in 2,000 questions).
_AGREEING_COVERAGE = 0.5
# … or when its reading window, both sides of it, holds this share of the question words that
# the supported sentence's window holds.
_WINDOW_COVERAGE = 0.8
# A sentence of another article is a rival answer (the outlets differ) when it has at least this
# share of the best sentence's evidence and a different value of the same kind.
_RIVAL_SHARE = 0.25
_RIVAL_COVERAGE = 0.8  # … and its context covers this share of the best one's question words
# For "latest"/"now" questions, the newest article wins among sentences with this share.
_LATEST_SHARE = 0.3
# How far (in the reader-aware ranker's units) below the best a sentence whose short answer is
# the asked measure may rank and still replace one whose answer is a measure of another kind.
# SQuAD cannot choose it (held out, any slack from 2 to unbounded changes the same 1 answer in
# 1,518); on the default corpus "around 10 minutes" is 3.4 below "January 2022".
_ASKED_MEASURE_SLACK = 5.0


def ranked(candidates: Sequence[Candidate], ranker: Linear) -> list[Candidate]:
    """The candidates of one question with the ranker's evidence and share, best first."""
    return _by_values(candidates, [ranker.value(c.features) for c in candidates])


def reranked(candidates: Sequence[Candidate], reranker: Linear) -> list[Candidate]:
    """Candidates the reader read (with `reader_features`), ordered by the reader-aware ranker."""
    return _by_values(candidates, [reranker.value(c.reader_features) for c in candidates])


def answers_of_the_asked_kind(read: Sequence[Candidate], question: str) -> list[Candidate]:
    """`read` (best first), or only its sentences whose short answer is the measure the question
    asks for when the best one's is a measure of another kind (a date for "how long", a
    duration for "when") and a sentence close enough below gives the asked one, answerable by
    the reader's judgement. The reader's typed slack does this inside one sentence; this does
    it across the sentences read. On the held-out SQuAD questions it changes 1 answer in 1,518
    (wrong either way): the reader rarely puts a measure of the wrong kind first there, but news
    asides are full of dates ("they last met in January 2022").
    """
    _, kinds = question_type(question)
    if not read or not kinds or kinds[0] not in MEASURES:
        return list(read)
    span = read[0].short_span
    if span is None or any(is_kind(read[0].text, span, kind) for kind in kinds):
        return list(read)
    if not any(is_kind(read[0].text, span, kind) for kind in MEASURES):
        return list(read)
    # `reader_typed`: the reader's span is the measure asked for (`reader_features`).
    as_asked = [
        c.reading is not None and c.reading.margin > 0 and bool(c.reader_features[READER_TYPED])
        for c in read
    ]
    close = [read[0].evidence - c.evidence <= _ASKED_MEASURE_SLACK for c in read]
    if not any(a and near for a, near in zip(as_asked, close, strict=True)):
        return list(read)
    kept = [c for c, a in zip(read, as_asked, strict=True) if a]
    return _by_values(kept, [c.evidence for c in kept])


def _by_values(candidates: Sequence[Candidate], evidence: Sequence[float]) -> list[Candidate]:
    if not candidates:
        return []
    top = max(evidence)
    total = sum(math.exp(e - top) for e in evidence)
    scored = [
        replace(c, evidence=e, score=math.exp(e - top) / total)
        for c, e in zip(candidates, evidence, strict=True)
    ]
    return sorted(scored, key=lambda c: (-c.evidence, c.hit.article_id, c.start))


def _shared_contexts(
    candidates: Sequence[Candidate], others: Sequence[Candidate] = ()
) -> list[Candidate]:
    """The candidates with the reading windows of one article's sentences merged where they
    overlap: the reader then reads each stretch of text once for all its sentences. Then those
    of `others` whose sentence lies inside one of these texts: the reader's scores over it give
    their readings at no further model cost."""
    spans: dict[str, list[tuple[int, str]]] = {}
    for c in sorted(candidates, key=lambda c: (c.hit.article_id, c.context_start)):
        merged = spans.setdefault(c.hit.article_id, [])
        if merged and c.context_start <= merged[-1][0] + len(merged[-1][1]):
            start, text = merged[-1]
            overlap = start + len(text) - c.context_start
            merged[-1] = (start, text + c.context[overlap:])
        else:
            merged.append((c.context_start, c.context))

    def containing(c: Candidate, start: int, end: int) -> Candidate | None:
        for s, t in spans.get(c.hit.article_id, []):
            if s <= start and end <= s + len(t):
                return replace(c, context=t, context_start=s)
        return None

    out = [containing(c, c.context_start, c.context_start + len(c.context)) for c in candidates]
    out += [containing(c, c.start, c.end) for c in others]
    return [c for c in out if c is not None]


class Answerer:
    """Builds an `Answer` for a question from one index's passages.

    Args:
        reader: the index, for sentences, vectors and term statistics.
        retriever: finds the passages.
        embedder: embeds the question once for both retrieval and scoring.
        short_reader: picks the short answer; a `TrainedReader` also re-ranks the sentences.
        model: the ranking weights and the no-answer threshold.
        sentences_to_read: how many of the best-ranked sentences the trained reader reads (the
            sentences lying inside the text read with them are read too, at no model cost).
        news: adds resolved dates, speakers and reports to citations; None: an annotator
            without speakers or reports (dates only).
    """

    def __init__(
        self,
        reader: AnyIndex,
        retriever: Retriever,
        embedder: Embedder,
        *,
        short_reader: Reader | None = None,
        model: AnswerModel | None = None,
        sentences_to_read: int = 8,
        news: NewsAnnotator | None = None,
    ):
        self._embedder = embedder
        self._news = news or NewsAnnotator()
        self._collector = SentenceCollector(reader, retriever)
        self._short_reader = short_reader or HeuristicReader()
        self.model = model or AnswerModel.default()
        self._sentences_to_read = sentences_to_read

    @property
    def reader_name(self) -> str:
        return self._short_reader.name

    def embed(self, question: str) -> np.ndarray:
        """The question's vector, to pass to `candidates` when asking it more than once."""
        return self._embedder.embed_query(question)

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
            vector = self.embed(question)
        found, hits = self._collector.collect(question, vector, k, filters)
        return ranked(found, self.model.ranker), hits

    def read(self, question: str, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The best `sentences_to_read` candidates as the trained reader reads them, with their
        `reading` and `reader_features`, ordered by the reader-aware ranker when there is one.
        Empty when the short reader is not a trained one."""
        if not isinstance(self._short_reader, TrainedReader) or not candidates:
            return []
        top = _shared_contexts(
            candidates[: self._sentences_to_read], candidates[self._sentences_to_read :]
        )
        focuses = [
            Focus(c.context, c.start - c.context_start, c.end - c.context_start) for c in top
        ]
        readings = self._short_reader.read_focused(question, focuses)
        read = [replace(c, reading=r) for c, r in zip(top, readings, strict=True)]
        features = reader_features(read, question)
        read = [replace(c, reader_features=f) for c, f in zip(read, features, strict=True)]
        if self.model.reader is None:
            return read
        return reranked(read, self.model.reader.reranker)

    def ask(self, question: str, k: int = 5, filters: ChunkFilter | None = None) -> Answer:
        """The answer to `question`, with citations, or `found=False` and related passages."""
        question = clean_query(question)
        name = self.reader_name
        candidates, hits = self.candidates(question, k, filters)
        if not candidates:
            return Answer(question, False, "", "", 0.0, [], hits, reader=name)
        read = self.read(question, candidates)
        confidence, threshold = self._confidence(candidates, read, hits)
        if confidence < threshold:
            return Answer(question, False, "", "", round(confidence, 4), [], hits, reader=name)
        pool = answers_of_the_asked_kind(read, question) or candidates
        asked = frozenset(content_stems(question_terms(question)))
        best, short, agreeing = self._best_supported(
            pool, candidates, asked, latest=asks_for_latest(question)
        )
        span = best.short_span if read else self._locate(best.text, short)
        known: dict[tuple[str, int], Speaker | None] = {}
        if asks_who_said(question):
            best, short, span, agreeing = self._speaker_answer(
                pool, candidates, asked, best, short, span, known
            )
        citations = [self._cite(best, span)]
        citations += [self._cite(other, self._locate(other.text, short)) for other in agreeing]
        disagreements = self._disagreements(
            short, best, agreeing, pool, candidates, latest=asks_for_latest(question)
        )
        # One batch for every sentence shown: the answer's and those of the outlets that differ.
        rival_citations = [c for d in disagreements for c in d.citations]
        annotated = self._news.annotate([*citations, *rival_citations], known)
        citations = annotated[: len(citations)]
        rest = iter(annotated[len(citations) :])
        disagreements = [
            replace(d, citations=[next(rest) for _ in d.citations]) for d in disagreements
        ]
        return Answer(
            question,
            True,
            short,
            best.text,
            round(confidence, 4),
            citations,
            hits,
            reader=name,
            as_of=max((c.published for c in citations if c.published), default=""),
            disagreements=disagreements,
        )

    def _speaker_answer(
        self,
        pool: list[Candidate],
        candidates: list[Candidate],
        asked: frozenset[str],
        best: Candidate,
        short: str,
        span: Span | None,
        known: dict[tuple[str, int], Speaker | None],
    ) -> tuple[Candidate, str, Span | None, list[Candidate]]:
        """For "Who said …?": the best of the strong sentences that quote somebody, answered
        with the speaker's name (its mention in the sentence marked); else the answer as it is.
        The speakers found are added to `known`, so that no sentence is parsed twice.
        """
        finder = self._news.speakers
        strong = [c for c in pool if c.score >= _AGREEMENT_SHARE * pool[0].score][:4]
        if finder is None or not strong:
            return best, short, span, self._agreeing(best, short, candidates, asked)
        for candidate in strong:  # best first: usually the first one quotes somebody
            (speaker,) = self._news.find_speakers([self._cite(candidate, None)])
            known[(candidate.hit.article_id, candidate.start)] = speaker
            if speaker is None:
                continue
            mention: Span | None = None
            if candidate.start <= speaker.mention_start < speaker.mention_end <= candidate.end:
                mention = Span(
                    speaker.mention_start - candidate.start,
                    speaker.mention_end - candidate.start,
                    1.0,
                )
            return (
                candidate,
                speaker.name,
                mention,
                self._agreeing(candidate, speaker.name, candidates, asked),
            )
        return best, short, span, self._agreeing(best, short, candidates, asked)

    def _disagreements(
        self,
        short: str,
        best: Candidate,
        agreeing: list[Candidate],
        pool: list[Candidate],
        candidates: list[Candidate],
        *,
        latest: bool = False,
    ) -> list[Disagreement]:
        """Other values of the answer's kind that strong sentences of other articles give, or
        that near-copies of the supporting sentence give instead of it: one per value, with
        the articles that give it. `latest`: an older article's value is an earlier state of
        things, not a disagreement."""
        kind = kind_of(short)
        if kind is None:
            return []
        own_date = _resolved(short, best.hit.published)
        cited = {best.hit.article_id, *(c.hit.article_id for c in agreeing)}
        coverage = _AGREEING_COVERAGE * best.features[CONTEXT_OVERLAP]
        rivals: list[tuple[Candidate, Span]] = []
        for rival in pool:
            if rival.score < _RIVAL_SHARE * pool[0].score:
                break
            span = rival.short_span
            # Only a sentence that answers the question as fully: "they last met in January
            # 2022" is about another meeting, not another date for this one.
            if rival.features[CONTEXT_OVERLAP] < _RIVAL_COVERAGE * best.features[CONTEXT_OVERLAP]:
                continue
            if span is not None and kind_of(rival.text[span.start : span.end]) == kind:
                rivals.append((rival, span))
        best_stems = set(content_stems(best.text))
        for other in candidates:  # near-copies of the sentence with another value in it
            values = values_in(other.text, kind)
            other_stems = set(content_stems(other.text))
            union = best_stems | other_stems
            if values and union and len(best_stems & other_stems) / len(union) >= 0.5:
                rivals.append((other, Span(*values[0], 1.0)))
        found: dict[str, Disagreement] = {}
        seen = set(cited)
        for rival, span in rivals:
            article_id = rival.hit.article_id
            if article_id in seen or rival.features[CONTEXT_OVERLAP] < coverage:
                continue
            if latest and best.hit.published and rival.hit.published < best.hit.published:
                continue
            value = rival.text[span.start : span.end]
            date = _resolved(value, rival.hit.published)
            if not differ(short, value, first_date=own_date, second_date=date):
                continue
            seen.add(article_id)
            key = normalize_answer(value)
            entry = found.setdefault(key, Disagreement(value, []))
            entry.citations.append(self._cite(rival, span))
        return list(found.values())

    def _confidence(
        self, candidates: list[Candidate], read: list[Candidate], hits: list[Hit]
    ) -> tuple[float, float]:
        """The probability that the passages answer the question, and the threshold for it."""
        model = self.model
        if read and model.reader is not None:
            features = reader_answerability_features(candidates, read, hits)
            return model.reader.answerable.probability(features), model.reader.threshold
        return model.answerable.probability(answerability_features(candidates, hits)), (
            model.threshold
        )

    def _best_supported(
        self,
        ranked_pool: list[Candidate],
        candidates: list[Candidate] | None = None,
        asked: frozenset[str] = frozenset(),
        *,
        latest: bool = False,
    ) -> tuple[Candidate, str, list[Candidate]]:
        """Among the sentences of `ranked_pool` with at least _AGREEMENT_SHARE of the best one's
        evidence, the answer more articles report (among all `candidates`, by default the pool
        itself), then the order. `latest`: the newest dated article among those with at least
        _LATEST_SHARE of it comes first.
        """
        candidates = ranked_pool if candidates is None else candidates
        options = []
        for rival in ranked_pool:  # best first
            if rival.score < _AGREEMENT_SHARE * ranked_pool[0].score:
                break
            span = rival.short_span
            short = rival.text[span.start : span.end] if span else ""
            agreeing = self._agreeing(rival, short, candidates, asked)
            options.append(((len(agreeing), rival.evidence), rival, short, agreeing))
        if latest:
            strong = [o for o in options if o[1].score >= _LATEST_SHARE * ranked_pool[0].score]
            _, chosen, short, agreeing = max(
                strong, key=lambda option: (option[1].hit.published, option[0])
            )
            return chosen, short, agreeing
        _, chosen, short, agreeing = max(options, key=lambda option: option[0])
        return chosen, short, agreeing

    def _agreeing(
        self,
        best: Candidate,
        short: str,
        candidates: list[Candidate],
        asked: frozenset[str] = frozenset(),
    ) -> list[Candidate]:
        """The best sentence of each other article that supports the same answer. `asked`: the
        question's content stems."""
        wanted = normalize_answer(short)
        best_stems = set(content_stems(best.text))
        coverage = max(_AGREEING_COVERAGE * best.features[CONTEXT_OVERLAP], 1e-9)
        best_window: frozenset[str] | None = None
        agreeing: dict[str, Candidate] = {}
        for other in candidates:  # every sentence of the passages read, best first
            if other.hit.article_id == best.hit.article_id or other.hit.article_id in agreeing:
                continue
            same_answer = bool(wanted) and f" {wanted} " in f" {normalize_answer(other.text)} "
            other_stems = set(content_stems(other.text))
            union = best_stems | other_stems
            near_duplicate = bool(union) and len(best_stems & other_stems) / len(union) >= 0.5
            if not (same_answer or near_duplicate):
                continue
            if other.features[CONTEXT_OVERLAP] < coverage:
                if best_window is None:
                    best_window = asked & frozenset(content_stems(best.context or best.text))
                if not _covers(other.context, best_window):
                    continue  # about something else: it shares too few of the question's words
            if near_duplicate and not same_answer and _gives_other_value(short, other.text):
                continue  # the same sentence with another figure: the outlets differ
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


def _covers(window: str, stems: frozenset[str]) -> bool:
    """Whether a sentence's reading window holds at least _WINDOW_COVERAGE of `stems` (the
    question words around the supported sentence): a news lede often names the people only in
    the next sentence ("The US and Russia on March 2 held talks. Blinken met Lavrov ...")."""
    if not stems or not window:
        return False
    return len(stems & set(content_stems(window))) >= _WINDOW_COVERAGE * len(stems)


def _gives_other_value(short: str, sentence: str) -> bool:
    """Whether `sentence` holds a value of the short answer's kind (a number or a date) that
    differs from it."""
    kind = kind_of(short)
    if kind is None:
        return False
    values = [sentence[s:e] for s, e in values_in(sentence, kind)]
    return bool(values) and all(differ(short, value) for value in values)


def _resolved(value: str, published: str) -> str:
    """The ISO date a relative short answer ("Thursday") names in an article of `published`."""
    mentions = relative_dates(value, published)
    return mentions[0].date or "" if mentions else ""
