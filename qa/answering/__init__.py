"""Extractive answers: candidate sentences and their evidence, the fitted models, the answerer."""

from qa.answering.answerer import Answerer, answers_of_the_asked_kind, ranked, reranked
from qa.answering.features import (
    ANSWERABILITY_FEATURES,
    FEATURES,
    READER_ANSWERABILITY_FEATURES,
    READER_FEATURES,
    Candidate,
    answerability_features,
    reader_answerability_features,
    reader_features,
)
from qa.answering.model import AnswerModel, Linear, ReaderModel

__all__ = [
    "ANSWERABILITY_FEATURES",
    "FEATURES",
    "READER_ANSWERABILITY_FEATURES",
    "READER_FEATURES",
    "AnswerModel",
    "Answerer",
    "Candidate",
    "Linear",
    "ReaderModel",
    "answerability_features",
    "answers_of_the_asked_kind",
    "ranked",
    "reader_answerability_features",
    "reader_features",
    "reranked",
]
