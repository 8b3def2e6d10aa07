"""The fitted answer models: how candidate sentences are ranked and when none is an answer.

Both are linear and shipped as JSON (qa/answering/answer_model.json, no pickle), fitted on
SQuAD by benchmarks/calibrate_answers.py. There is one set per reader: with the trained
reader, a second ranker re-orders the sentences it read by its scores, and the answerability
model sees them too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from qa.answering.features import (
    ANSWERABILITY_FEATURES,
    FEATURES,
    READER_ANSWERABILITY_FEATURES,
    READER_FEATURES,
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
class ReaderModel:
    """With the trained reader: `reranker` orders the sentences it read (READER_FEATURES);
    `answerable` (READER_ANSWERABILITY_FEATURES) and `threshold` decide whether to answer."""

    reranker: Linear
    answerable: Linear
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerModel:
    """How candidate sentences are ranked, and when the best of them is not an answer.

    `ranker` orders one question's sentences (fitted listwise: only the differences between a
    question's sentences matter); `answerable` gives the probability that the passages hold an
    answer, from ANSWERABILITY_FEATURES; below `threshold` the answer is withheld. `reader` is
    the set used instead of the last two when the trained reader reads the best sentences.
    """

    ranker: Linear
    answerable: Linear
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)
    reader: ReaderModel | None = None

    @classmethod
    def default(cls) -> AnswerModel:
        text = resources.files("qa.answering").joinpath("answer_model.json").read_text("utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerModel:
        reader = data.get("reader")
        return cls(
            ranker=_linear(data["ranker"], FEATURES, "ranker"),
            answerable=_linear(data["answerable"], ANSWERABILITY_FEATURES, "answerable"),
            threshold=float(data["threshold"]),
            calibration=dict(data.get("calibration", {})),
            reader=None
            if reader is None
            else ReaderModel(
                reranker=_linear(reader["reranker"], READER_FEATURES, "reader.reranker"),
                answerable=_linear(
                    reader["answerable"], READER_ANSWERABILITY_FEATURES, "reader.answerable"
                ),
                threshold=float(reader["threshold"]),
                calibration=dict(reader.get("calibration", {})),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ranker": _linear_dict(self.ranker, FEATURES),
            "answerable": _linear_dict(self.answerable, ANSWERABILITY_FEATURES),
            "threshold": self.threshold,
            "calibration": self.calibration,
        }
        if self.reader is not None:
            data["reader"] = {
                "reranker": _linear_dict(self.reader.reranker, READER_FEATURES),
                "answerable": _linear_dict(self.reader.answerable, READER_ANSWERABILITY_FEATURES),
                "threshold": self.reader.threshold,
                "calibration": self.reader.calibration,
            }
        return data


def _linear(model: dict[str, Any], names: tuple[str, ...], part: str) -> Linear:
    if tuple(model["features"]) != names:
        raise ValueError(f"answer model {part} features do not match {list(names)}")
    return Linear(tuple(map(float, model["weights"])), float(model["bias"]))


def _linear_dict(model: Linear, names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "features": list(names),
        "weights": [round(w, 6) for w in model.weights],
        "bias": round(model.bias, 6),
    }
