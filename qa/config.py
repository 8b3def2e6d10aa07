"""Settings shared by every adapter (CLI, HTTP, chat); adapters fill them from flags and env."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa.limits import MAX_FILE_BYTES


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path("index")
    corpus_dir: Path = Path("corpus")
    embedding_model: str = "default"  # the bundled all-MiniLM-L6-v2, or any ST name or path
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_bytes: int = MAX_FILE_BYTES
    embed_batch_size: int = 32
    query_runtime: str = "onnx"  # "onnx" (fast single queries) or "torch"
    reader: str = "trained"  # short-answer reader: "trained" or "heuristic"
    reader_model: str = ""  # the trained reader's folder; "" is the shipped models/reader
