"""Shared fixtures: a deterministic fake embedder for unit tests, the real model for the rest."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
# ONNX exports made by the tests stay inside the checkout (tests/artifacts is ignored by git).
os.environ.setdefault("QA_CACHE_DIR", str(REPO / "tests" / "artifacts" / "cache"))
DEFAULT_CORPUS = REPO / "corpus"
SQUAD = REPO.parent / "shared" / "data" / "squad-dev-v1.1-given.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run tests/reliability at full size (2,000 requests under load, 20 kills of a "
        "build, 30 rebuilds for memory; about 15 minutes) instead of the quick default",
    )


class FakeEmbedder:
    """Bag of hashed lower-cased words: texts sharing words get similar vectors. No model."""

    def __init__(self, dimension: int = 64):
        self._dimension = dimension
        self.embedded: list[str] = []  # every document text it was asked to embed

    @property
    def model_id(self) -> str:
        return f"fake-hashed-words-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return 256

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self._dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            vector[int.from_bytes(digest, "little") % self._dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.embedded.extend(texts)
        return np.vstack([self._vector(t) for t in texts]).astype(np.float32)

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        progress: bool = False,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        pooled = [
            np.vstack([self._vector(text[s:e]) for s, e in text_spans]).astype(np.float32)
            if text_spans
            else np.zeros((0, self._dimension), dtype=np.float32)
            for text, text_spans in zip(texts, spans, strict=True)
        ]
        return self.embed_documents(texts), pooled

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    from qa.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the default corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(DEFAULT_CORPUS, target)
    return target
