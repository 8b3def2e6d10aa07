"""Fit the sentence rankers, the answerability models and the no-answer thresholds on SQuAD.

    python benchmarks/calibrate_answers.py [--limit N] [--k 5]
        [--reader-model DIR] [--reader-articles held-out|all]

Every question is asked twice: against the whole corpus (a candidate sentence is right when it
comes from the question's own article and contains a gold answer) and with its own article
filtered out (the corpus cannot answer it). From these:

- the ranker, a linear model over the candidates' FEATURES, fitted listwise (softmax over one
  question's candidates, maximising the share of the right ones);
- the answerability model, a logistic regression over ANSWERABILITY_FEATURES of the ranked
  candidates, fitted to tell the two settings apart;
- the threshold on its probability that balances answerable questions kept against
  unanswerable ones declined.

The figures are cross-validated by article: the 32 articles fall into 4 folds (every fourth by
name), each fold is answered by models fitted on the other three, and the printed shares pool
the four. The model written to qa/answering/answer_model.json is then fitted on all articles.

The trained reader's set (the reader-aware re-ranker over READER_FEATURES and its own
answerability model and threshold: the highest that loses at most LOST_BUDGET% of the
answerable questions it is fitted on) is fitted on the questions of `--reader-articles` only:
`held-out` (the default) means the quarter of the articles that the `--reader-model` given
(one trained with `qa train-reader --holdout`) never saw, so that the weights learn how much
to trust the reader on unseen text, not on its own training data. Its figures are
cross-validated by article within those questions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from scipy.optimize import minimize

from benchmarks.squad_common import Question, load_squad, questions, write_corpus
from qa.answering import (
    Answerer,
    AnswerModel,
    Candidate,
    Linear,
    ReaderModel,
    answerability_features,
    ranked,
    reader_answerability_features,
    reranked,
)
from qa.components import SHIPPED_READER, make_embedder
from qa.config import Settings
from qa.reading import TrainedReader
from qa.service import Assistant, build
from qa.store import ChunkFilter
from qa.training.squad import held_out_articles
from qa.types import Hit

CACHE = Path(__file__).resolve().parent / ".cache"
MODEL_PATH = Path(__file__).resolve().parent.parent / "qa" / "answering" / "answer_model.json"
FOLDS = 4


@dataclass(frozen=True)
class Asked:
    """One question in one setting, with what the answerer found."""

    question: Question
    answerable: bool  # its own article was in the corpus
    candidates: list[Candidate]
    hits: list[Hit]
    fold: int


def is_correct(question: Question, candidate: Candidate) -> bool:
    return candidate.hit.article_id == question.article_id and any(
        answer in candidate.text for answer in question.answers
    )


def collect(answerer: Answerer, asked: list[Question], fold_of: dict[str, int], k: int):
    all_ids = sorted(fold_of)
    rows = []
    for number, question in enumerate(asked, start=1):
        others = ChunkFilter(article_ids=tuple(a for a in all_ids if a != question.article_id))
        vector = answerer.embed(question.question)
        for answerable, filters in ((True, None), (False, others)):
            found, hits = answerer.candidates(question.question, k, filters, vector)
            rows.append(Asked(question, answerable, found, hits, fold_of[question.article_id]))
        if number % 500 == 0:
            print(f"  {number} of {len(asked)} questions asked", file=sys.stderr)
    return rows


def _standardized(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    return (x - mean) / scale, mean, scale


def fit_ranker(rows: list[Asked], l2: float = 1.0, *, reader: bool = False) -> Linear:
    """Listwise: maximise, per question, the softmax share of its right sentences (by
    FEATURES, or by READER_FEATURES over the sentences the reader read)."""
    groups = [
        (
            np.array([c.reader_features if reader else c.features for c in r.candidates]),
            [is_correct(r.question, c) for c in r.candidates],
        )
        for r in rows
        if r.answerable and any(is_correct(r.question, c) for c in r.candidates)
    ]
    # Centering does not change a softmax within a question: only the scale is undone below.
    x, _, scale = _standardized(np.vstack([g[0] for g in groups]))
    right = np.concatenate([np.array(g[1], dtype=float) for g in groups])
    sizes = [len(g[1]) for g in groups]
    starts = np.cumsum([0, *sizes[:-1]])
    group = np.repeat(np.arange(len(groups)), sizes)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = x @ w
        e = np.exp(s - np.maximum.reduceat(s, starts)[group])
        total, wanted = np.add.reduceat(e, starts), np.add.reduceat(e * right, starts)
        share = e / total[group] - e * right / wanted[group]
        value = -np.sum(np.log(wanted) - np.log(total)) + l2 * w @ w
        return value, x.T @ share + 2 * l2 * w

    w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    return Linear(tuple(float(v) for v in w / scale), 0.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> Linear:
    """Logistic regression (standardized features, L2), in the original units."""
    z, mean, scale = _standardized(x)

    def loss(v: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ v[:-1] + v[-1], -30, 30)))
        value = -np.sum(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))
        gradient = np.r_[z.T @ (p - y) + 2 * l2 * v[:-1], np.sum(p - y)]
        return value + l2 * v[:-1] @ v[:-1], gradient

    v = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B").x
    weights = v[:-1] / scale
    return Linear(tuple(float(w) for w in weights), float(v[-1] - weights @ mean))


@dataclass(frozen=True)
class Decided:
    answerable: bool
    confidence: float  # the answerability model's probability (0 without candidates)
    right: bool  # the best-ranked sentence is right


def decide(rows: list[Asked], ranker: Linear, answerable: Linear | None) -> list[Decided]:
    out = []
    for row in rows:
        candidates = ranked(row.candidates, ranker)
        if not candidates:
            out.append(Decided(row.answerable, 0.0, False))
            continue
        features = answerability_features(candidates, row.hits)
        confidence = answerable.probability(features) if answerable else 0.0
        right = row.answerable and is_correct(row.question, candidates[0])
        out.append(Decided(row.answerable, confidence, right))
    return out


def figures(decided: list[Decided], threshold: float) -> dict[str, float]:
    """In percent of the answerable (or unanswerable) questions."""
    asked = [d for d in decided if d.answerable]
    unanswerable = [d for d in decided if not d.answerable]
    kept = [d for d in asked if d.confidence >= threshold]
    return {
        "sentence_hit_at_1": round(100 * sum(d.right for d in asked) / len(asked), 1),
        "answered_and_right": round(100 * sum(d.right for d in kept) / len(asked), 1),
        "answerable_lost": round(100 * (1 - len(kept) / len(asked)), 1),
        "unanswerable_declined": round(
            100 * sum(d.confidence < threshold for d in unanswerable) / len(unanswerable), 1
        ),
        "answerable_questions": len(asked),
    }


def fit(rows: list[Asked]) -> AnswerModel:
    ranker = fit_ranker(rows)
    decided_rows = [(r, ranked(r.candidates, ranker)) for r in rows]
    x = np.array([answerability_features(cs, r.hits) for r, cs in decided_rows if cs])
    y = np.array([float(r.answerable) for r, cs in decided_rows if cs])
    answerable = fit_logistic(x, y)
    decided = decide(rows, ranker, answerable)
    return AnswerModel(ranker, answerable, choose_threshold(decided))


def cross_validated(
    rows: Sequence[Any],
    fit_rows: Callable[[list[Any]], Any],
    decide_rows: Callable[[list[Any], Any], list[Decided]],
) -> dict[str, float]:
    """Figures of each fold decided by models fitted on the other folds, pooled."""
    decided: list[Decided] = []
    thresholds = []
    for fold in range(FOLDS):
        model = fit_rows([r for r in rows if r.fold != fold])
        thresholds.append(model.threshold)
        held = decide_rows([r for r in rows if r.fold == fold], model)
        # Each fold's own threshold: mark the kept ones by shifting to a common scale.
        decided += [
            Decided(d.answerable, float(d.confidence >= model.threshold), d.right) for d in held
        ]
    return {**figures(decided, 0.5), "thresholds": thresholds}


# Losing an answerable question is the costlier mistake (the user asked about something the
# articles do say): the reader's threshold declines as many unanswerable questions as it can
# while losing at most this share (percent) of the answerable ones it is fitted on. Fitted
# shares are optimistic: cross-validated, budgets of 4, 3 and 2 lost 5.1%, 4.2% and 2.8% and
# declined 96.0%, 94.1% and 91.4% (2026-12-04; the run prints this table), so 3 keeps both
# figures inside the targets (lost ≤ 5%, declined ≥ 90%).
LOST_BUDGET = 3.0


# --- the trained reader's set ------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One question in one setting, as the trained reader read its best sentences."""

    question: Question
    answerable: bool
    ranked: list[Candidate]  # by the first ranker
    read: list[Candidate]  # the best of them, with `reader_features`, unordered
    hits: list[Hit]
    fold: int


def read_rows(answerer: Answerer, rows: list[Asked], ranker: Linear, articles: set[str]):
    """The reader's view of the rows whose question comes from `articles`."""
    chosen = sorted({r.question.article_id for r in rows if r.question.article_id in articles})
    fold_of = {a: i % FOLDS for i, a in enumerate(chosen)}
    out = []
    for number, row in enumerate(r for r in rows if r.question.article_id in fold_of):
        candidates = ranked(row.candidates, ranker)
        read = answerer.read(row.question.question, candidates) if candidates else []
        fold = fold_of[row.question.article_id]
        out.append(Read(row.question, row.answerable, candidates, read, row.hits, fold))
        if (number + 1) % 1000 == 0:
            print(f"  {number + 1} question settings read", file=sys.stderr)
    return out


def decide_read(rows: list[Read], reranker: Linear, answerable: Linear | None) -> list[Decided]:
    out = []
    for row in rows:
        if not row.read:
            out.append(Decided(row.answerable, 0.0, False))
            continue
        order = reranked(row.read, reranker)
        features = reader_answerability_features(row.ranked, order, row.hits)
        confidence = answerable.probability(features) if answerable else 0.0
        right = row.answerable and is_correct(row.question, order[0])
        out.append(Decided(row.answerable, confidence, right))
    return out


def fit_read(rows: list[Read], lost_budget: float | None = LOST_BUDGET) -> ReaderModel:
    as_asked = [Asked(r.question, r.answerable, r.read, r.hits, r.fold) for r in rows]
    reranker = fit_ranker(as_asked, reader=True)
    usable = [r for r in rows if r.read]
    x = np.array(
        [
            reader_answerability_features(r.ranked, reranked(r.read, reranker), r.hits)
            for r in usable
        ]
    )
    y = np.array([float(r.answerable) for r in usable])
    answerable = fit_logistic(x, y)
    decided = decide_read(rows, reranker, answerable)
    threshold = choose_threshold(decided, lost_budget)
    return ReaderModel(reranker, answerable, threshold)


def choose_threshold(decided: list[Decided], lost_budget: float | None = None) -> float:
    """The threshold that maximises declined unanswerable minus lost answerable questions or,
    with `lost_budget`, the highest whose lost share stays within it."""
    candidates = np.linspace(0.02, 0.98, 49)
    if lost_budget is not None:
        within = [t for t in candidates if figures(decided, t)["answerable_lost"] <= lost_budget]
        if within:
            return round(float(max(within)), 4)

    def balance(threshold: float) -> float:
        shares = figures(decided, threshold)
        return shares["unanswerable_declined"] - shares["answerable_lost"]

    return round(float(max(candidates, key=balance)), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="use a random sample of N questions")
    parser.add_argument("--k", type=int, default=5, help="passages read per question")
    parser.add_argument(
        "--reader-model",
        type=Path,
        default=SHIPPED_READER,
        help="the trained reader whose set is fitted (default: the shipped one)",
    )
    parser.add_argument(
        "--reader-articles",
        choices=("held-out", "all"),
        default="held-out",
        help="fit the reader's set on the held-out quarter of the articles, or on all",
    )
    parser.add_argument(
        "--reader-only",
        action="store_true",
        help="keep the shipped heuristic set; ask only the reader articles' questions",
    )
    parser.add_argument(
        "--lost-budget",
        type=float,
        default=LOST_BUDGET,
        help="the reader's threshold loses at most this share (%%) of answerable questions",
    )
    args = parser.parse_args()

    data = load_squad()
    corpus = CACHE / "squad-corpus"
    write_corpus(corpus, data)
    settings = Settings(corpus_dir=corpus, index_dir=CACHE / "squad-index-200-32")
    embedder = make_embedder(settings)
    print(build(settings, embedder).summary())
    reader = TrainedReader(args.reader_model)
    assistant = Assistant.load(settings.index_dir, embedder=embedder, short_reader=reader)
    answerer = assistant.answerer

    asked = questions(data)
    fold_of = {a: i % FOLDS for i, a in enumerate(sorted({q.article_id for q in questions(data)}))}
    articles = set(fold_of)
    if args.reader_articles == "held-out":
        articles = set(held_out_articles(sorted(fold_of)))
    if args.reader_only:
        asked = [q for q in asked if q.article_id in articles]
    if args.limit:
        asked = random.Random(0).sample(asked, min(args.limit, len(asked)))
    rows = collect(answerer, asked, fold_of, args.k)

    if args.reader_only:
        model = AnswerModel.default()
        validated = dict(model.calibration.get("cross_validated", {}))
    else:
        validated = cross_validated(rows, fit, lambda r, m: decide(r, m.ranker, m.answerable))
        model = fit(rows)
    read = read_rows(answerer, rows, model.ranker, articles)
    read_validated = cross_validated(
        read,
        lambda r: fit_read(r, args.lost_budget),
        lambda r, m: decide_read(r, m.reranker, m.answerable),
    )
    reader_model = fit_read(read, args.lost_budget)
    # The trade-off the lost budget chooses on: cross-validated, per budget (None: balance).
    for budget in (None, 5.0, 4.0, 3.0, 2.0):
        shares = cross_validated(
            read,
            lambda r, b=budget: fit_read(r, b),
            lambda r, m: decide_read(r, m.reranker, m.answerable),
        )
        print(
            f"lost budget {budget}: answerable lost {shares['answerable_lost']}%, "
            f"unanswerable declined {shares['unanswerable_declined']}%, "
            f"answered and right {shares['answered_and_right']}%",
            file=sys.stderr,
        )
    command = " ".join(["python benchmarks/calibrate_answers.py", *sys.argv[1:]])
    model = AnswerModel(
        model.ranker,
        model.answerable,
        model.threshold,
        model.calibration
        if args.reader_only
        else {
            "date": dt.date.today().isoformat(),
            "command": command,
            "data": "SQuAD v1.1 dev, 32 articles (CC BY-SA 4.0)",
            "questions": len(asked),
            "cross_validated": validated,
            "fitted_on_all": figures(decide(rows, model.ranker, model.answerable), model.threshold),
        },
        ReaderModel(
            reader_model.reranker,
            reader_model.answerable,
            reader_model.threshold,
            {
                "date": dt.date.today().isoformat(),
                "command": command,
                "reader": str(args.reader_model),
                "articles": args.reader_articles,
                "questions": len({r.question for r in read}),
                "cross_validated": read_validated,
                "fitted_on_all": figures(
                    decide_read(read, reader_model.reranker, reader_model.answerable),
                    reader_model.threshold,
                ),
            },
        ),
    )
    MODEL_PATH.write_text(json.dumps(model.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps({"heuristic": model.calibration, "reader": model.reader.calibration}, indent=2)
    )


if __name__ == "__main__":
    main()
