"""Short-answer readers: find the words inside a passage that answer the question."""

from qa.reading.base import Reader, Span
from qa.reading.heuristic import HeuristicReader, is_kind, question_terms, question_type
from qa.reading.trained import Focus, Reading, TrainedReader

# Kept for a training run started before the rename; removed once it has finished.
TransformersReader = TrainedReader

__all__ = [
    "Focus",
    "HeuristicReader",
    "Reader",
    "Reading",
    "Span",
    "TrainedReader",
    "is_kind",
    "question_terms",
    "question_type",
]
