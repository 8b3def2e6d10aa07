"""manifest.json, the commit record of an index: what it was built with, checked on open."""

from __future__ import annotations

import contextlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.store.schema import FORMAT_VERSION, MANIFEST


class IndexUnusable(Exception):
    """The index directory is missing, damaged, or does not match the configuration."""


@dataclass(frozen=True)
class Manifest:
    """What an index was built with, checked whenever it is opened."""

    generation: str
    model: str
    dimension: int
    chunk_tokens: int
    overlap_tokens: int
    articles: int
    chunks: int
    built_at: str
    created_at: str
    sentence_vectors: int = 0
    format_version: int = FORMAT_VERSION
    last_build: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "generation": self.generation,
            "embedding": {
                "model": self.model,
                "dimension": self.dimension,
                "normalized": True,
                "metric": "inner_product",
            },
            "chunking": {
                "splitter": "langchain RecursiveCharacterTextSplitter, model tokens",
                "chunk_tokens": self.chunk_tokens,
                "overlap_tokens": self.overlap_tokens,
            },
            "counts": {
                "articles": self.articles,
                "chunks": self.chunks,
                "sentence_vectors": self.sentence_vectors,
            },
            "created_at": self.created_at,
            "built_at": self.built_at,
            "last_build": self.last_build,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            format_version=int(data["format_version"]),
            generation=str(data["generation"]),
            model=str(data["embedding"]["model"]),
            dimension=int(data["embedding"]["dimension"]),
            chunk_tokens=int(data["chunking"]["chunk_tokens"]),
            overlap_tokens=int(data["chunking"]["overlap_tokens"]),
            articles=int(data["counts"]["articles"]),
            chunks=int(data["counts"]["chunks"]),
            sentence_vectors=int(data["counts"].get("sentence_vectors", 0)),
            created_at=str(data["created_at"]),
            built_at=str(data["built_at"]),
            last_build=dict(data.get("last_build", {})),
            versions=dict(data.get("versions", {})),
        )


def read_manifest(index_dir: Path) -> Manifest | None:
    """The live manifest, or None when no index was ever built here."""
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise IndexUnusable(
            f"{path} is damaged ({error}); rebuild it with `qa index build --full`"
        ) from error
    if manifest.format_version != FORMAT_VERSION:
        raise IndexUnusable(
            f"{path} has format version {manifest.format_version}, this version reads "
            f"{FORMAT_VERSION}; rebuild it with `qa index build --full`"
        )
    return manifest


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("qa-assistant", "faiss-cpu", "sentence-transformers", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    return versions
