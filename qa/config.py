"""Settings shared by every adapter (CLI, HTTP, chat); adapters fill them from flags and env."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path("index")
    corpus_dir: Path = Path("corpus")
    embedding_model: str = "default"  # the bundled all-MiniLM-L6-v2, or any ST name or path
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_bytes: int = 5_000_000
    embed_batch_size: int = 32
    query_runtime: str = "onnx"  # "onnx" (fast single queries) or "torch"
    reader: str = "heuristic"  # short-answer reader: "heuristic" or "transformers"
    reader_model: str = ""  # for "transformers": a Hugging Face QA model name or local path
