"""Fit the answer scorer and the no-answer threshold on SQuAD; write qa/answer_model.json.

    python benchmarks/calibrate_answers.py [--limit N]

Articles are split 24 / 8 (every fourth, by name, is held out). For each question of the 24
training articles, the candidate sentences are collected twice: with the whole corpus (a
sentence is positive when it comes from the question's own article and contains a gold answer)
and with the question's own article filtered out (every sentence negative: the corpus cannot
answer it). A logistic regression over the candidate features is fitted on these rows, and the
threshold on the best sentence's probability is chosen to balance answers kept against wrong
answers declined. The held-out articles' questions then report, in the same two settings:
sentence hit@1, the share of answerable questions lost, and the share correctly declined.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.squad_common import Question, load_squad, questions, write_corpus
from qa.answering import Answerer, AnswerModel, Logistic
from qa.config import Settings
from qa.service import Assistant, build, make_embedder
from qa.store import ChunkFilter

CACHE = Path(__file__).resolve().parent / ".cache"
MODEL_PATH = Path(__file__).resolve().parent.parent / "qa" / "answer_model.json"


def held_out(article_ids: list[str]) -> set[str]:
    return set(sorted(article_ids)[3::4])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (a handful of features, many rows)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    weights = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ weights, -30, 30)))
        gradient = design.T @ (p - y) + l2 * np.r_[weights[:-1], 0.0]
        hessian = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights[:-1], float(weights[-1])


def collect(
    answerer: Answerer, asked: list[Question], all_ids: list[str], k: int
) -> list[tuple[Question, bool, list]]:
    """Candidates of each question with its article present (True) and absent (False)."""
    rows = []
    for question in asked:
        others = ChunkFilter(article_ids=tuple(a for a in all_ids if a != question.article_id))
        vector = answerer._embedder.embed_query(question.question)
        for present, filters in ((True, None), (False, others)):
            found, _ = answerer.candidates(question.question, k, filters, vector)
            rows.append((question, present, found))
    return rows


def is_correct(question: Question, candidate) -> bool:
    return candidate.hit.article_id == question.article_id and any(
        answer in candidate.text for answer in question.answers
    )


def evaluate(model: AnswerModel, rows, threshold: float) -> dict[str, float]:
    """Sentence hit@1, answerable questions lost and unanswerable ones declined, in percent."""
    answerable = [(q, cs) for q, present, cs in rows if present]
    unanswerable = [cs for _, present, cs in rows if not present]

    def best(cs):
        return max(cs, key=lambda c: model.scorer.probability(c.features)) if cs else None

    def kept(cs) -> bool:
        return bool(cs) and model.scorer.probability(best(cs).features) >= threshold

    hit = sum(1 for q, cs in answerable if cs and is_correct(q, best(cs)))
    lost = sum(1 for _, cs in answerable if not kept(cs))
    declined = sum(1 for cs in unanswerable if not kept(cs))
    return {
        "sentence_hit_at_1": round(100 * hit / len(answerable), 1),
        "answerable_lost": round(100 * lost / len(answerable), 1),
        "unanswerable_declined": round(100 * declined / len(unanswerable), 1),
        "answerable_questions": len(answerable),
    }


def _fitted(x: np.ndarray, y: np.ndarray) -> Logistic:
    weights, bias = fit_logistic(x, y)
    return Logistic(tuple(float(w) for w in weights), bias)


def _labels(rows) -> np.ndarray:
    return np.array([float(present and is_correct(q, c)) for q, present, cs in rows for c in cs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000, help="training questions to use")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()

    data = load_squad()
    corpus = CACHE / "squad-corpus"
    write_corpus(corpus, data)
    settings = Settings(corpus_dir=corpus, index_dir=CACHE / "squad-index-200-32")
    embedder = make_embedder(settings)
    print(build(settings, embedder).summary())
    assistant = Assistant.load(settings.index_dir, embedder=embedder)
    answerer: Answerer = assistant._answerer  # the scorer is what is being fitted

    asked = questions(data)
    all_ids = sorted({q.article_id for q in asked})
    test_ids = held_out(all_ids)
    rng = random.Random(0)
    train = [q for q in asked if q.article_id not in test_ids]
    test = [q for q in asked if q.article_id in test_ids]
    train = rng.sample(train, min(args.limit, len(train)))
    test = rng.sample(test, min(args.limit, len(test)))

    # The candidates' features do not depend on the model; only their order does.
    rows = collect(answerer, train, all_ids, args.k)
    features = np.array([c.features for _, _, cs in rows for c in cs], dtype=float)
    model = AnswerModel(_fitted(features, _labels(rows)), 0.5)

    # The threshold that balances answerable questions kept against unanswerable declined.
    best_threshold, best_value = 0.5, -1.0
    for threshold in np.linspace(0.02, 0.98, 49):
        figures = evaluate(model, rows, float(threshold))
        value = (100 - figures["answerable_lost"]) + figures["unanswerable_declined"]
        if value > best_value:
            best_threshold, best_value = float(threshold), value

    answerer.model = model
    held = evaluate(model, collect(answerer, test, all_ids, args.k), best_threshold)
    trained = evaluate(model, rows, best_threshold)
    model = AnswerModel(
        model.scorer,
        round(best_threshold, 4),
        {
            "date": dt.date.today().isoformat(),
            "command": "python benchmarks/calibrate_answers.py " + " ".join(sys.argv[1:]),
            "data": "SQuAD v1.1 dev, 32 articles (CC BY-SA 4.0); 24 train / 8 held out",
            "training_questions": len(train),
            "held_out": held,
            "training": trained,
        },
    )
    MODEL_PATH.write_text(json.dumps(model.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(json.dumps(model.to_dict(), indent=2))


if __name__ == "__main__":
    main()
