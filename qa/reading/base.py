"""What every short-answer reader returns and offers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Span:
    """`passage[start:end]` answers the question with confidence `score` (0..1)."""

    start: int
    end: int
    score: float


class Reader(Protocol):
    """Finds the words inside each passage (a verbatim slice of an article) that answer the
    question: its best span as offsets into that passage, or None."""

    @property
    def name(self) -> str:
        """How answers name the reader that picked their short answer."""
        ...

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]: ...
