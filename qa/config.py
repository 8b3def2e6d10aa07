"""Settings shared by every adapter (CLI, HTTP, chat); adapters fill them from flags and env."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qa.limits import MAX_FILE_BYTES

# Environment variables read by `Settings.from_env`, and the setting each one fills.
ENVIRONMENT = {
    "QA_INDEX": "index_dir",
    "QA_CORPUS": "corpus_dir",
    "QA_MODEL": "embedding_model",
    "QA_RUNTIME": "runtime",
    "QA_PASSAGE_PRECISION": "passage_precision",
    "QA_READER": "reader",
    "QA_READER_MODEL": "reader_model",
    "QA_READER_PRECISION": "reader_precision",
    "QA_ADMIN_TOKEN": "admin_token",
    "QA_CLUSTER": "cluster",
}


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path("index")
    corpus_dir: Path = Path("corpus")
    embedding_model: str = "default"  # the bundled all-MiniLM-L6-v2, or any ST name or path
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_bytes: int = MAX_FILE_BYTES  # an article file, in the corpus or uploaded
    embed_batch_size: int = 32
    runtime: str = "onnx"  # the embedding model's runtime: "onnx" (faster) or "torch"
    # Passages embedded for a build: "bf16" (PyTorch, bfloat16 products), "fp32" (the runtime
    # as is) or "auto": bf16 where the CPU multiplies bfloat16 natively (`qa.embedding`).
    passage_precision: str = "auto"
    # Vector segments this big or bigger are searched approximately (IVF-PQ, exact re-scoring);
    # taken by a new index (a first or full build), then kept in its manifest.
    approximate_threshold: int = 200_000
    reader: str = "trained"  # short-answer reader: "trained" or "heuristic"
    reader_model: str = ""  # the trained reader's folder; "" is the shipped models/reader
    # The trained reader's weights as run: "int8" (quantized but for the early feed-forward
    # matrices, 1.4-1.5x as fast, F1 within 0.2 on unseen articles) or "fp32" (as trained).
    reader_precision: str = "int8"
    # A Ray cluster to build and serve on ("auto", "local" or an address; `qa.cluster`), None:
    # this process only. Builds on a cluster write a sharded index (`qa.store.sharded`).
    cluster: str | None = None
    shards: int | None = None  # the shard count of a new sharded index (default 3 on a cluster)
    cluster_workers: int = 2  # embedding actors of a cluster build
    shard_replicas: int = 1  # Ray Serve replicas of each shard
    # The bearer token of the admin routes and the chat's "Add articles" tab; None: disabled.
    admin_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The defaults, overridden by the QA_* variables of `ENVIRONMENT` that are set."""
        environ = os.environ if environ is None else environ
        found = {name: environ.get(variable) for variable, name in ENVIRONMENT.items()}
        return cls().with_values(**{name: value for name, value in found.items() if value})

    def with_values(self, **values: Any) -> Settings:
        """A copy with the given settings changed; None leaves one as it is. Folder settings
        become paths."""
        given = {name: value for name, value in values.items() if value is not None}
        for name in ("index_dir", "corpus_dir"):
            if name in given:
                given[name] = Path(given[name])
        return replace(self, **given)
