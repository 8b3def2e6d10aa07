"""SQuAD-format data for training and judging a reader: examples, article splits, EM and F1."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.terms import normalize_answer


@dataclass(frozen=True)
class Example:
    """One question about one paragraph, with its gold answers as character offsets."""

    article: str  # the article's title, the unit of every split
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]


def load_examples(path: Path, articles: Iterable[str] | None = None) -> list[Example]:
    """Every question of a SQuAD-format JSON file, optionally only those of `articles`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    wanted = None if articles is None else set(articles)
    examples = []
    for entry in data:
        if wanted is not None and entry["title"] not in wanted:
            continue
        for paragraph in entry["paragraphs"]:
            for qa in paragraph["qas"]:
                examples.append(
                    Example(
                        article=entry["title"],
                        question=qa["question"],
                        context=paragraph["context"],
                        answers=tuple(a["text"] for a in qa["answers"]),
                        answer_starts=tuple(a["answer_start"] for a in qa["answers"]),
                    )
                )
    return examples


def article_titles(path: Path) -> list[str]:
    return [entry["title"] for entry in json.loads(Path(path).read_text("utf-8"))["data"]]


def held_out_articles(titles: Sequence[str], folds: int = 4) -> list[str]:
    """Every `folds`-th article by name: the held-out fold the answer benchmarks also use."""
    return [title for i, title in enumerate(sorted(titles)) if i % folds == 0]


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD's token F1, the best over the gold answers."""
    return max((_f1(prediction, gold) for gold in golds), default=0.0)


def _f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)
