"""What an index is: manifest.json (its generation and what it was built with, written by full
builds) plus the state row of that generation's database (counts and version, moved by every
build in the same transaction as the rows)."""

from __future__ import annotations

import contextlib
import json
import platform
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.store.schema import DATABASE, FORMAT_VERSION, MANIFEST, connect
from qa.store.vectors import AnnSettings


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
    version: int = 1  # of the generation's rows: every build moves it
    ann: AnnSettings = field(default_factory=AnnSettings)

    @property
    def revision(self) -> str:
        """Names what a reader sees: changes with every build, full or incremental."""
        return f"{self.generation}.v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "generation": self.generation,
            "version": self.version,
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
            "approximate_search": self.ann.to_dict(),
            "created_at": self.created_at,
            "built_at": self.built_at,
            "last_build": self.last_build,
            "versions": self.versions,
        }

    def stats(self) -> dict[str, Any]:
        """Counts, model, chunk settings and build times: the part of `qa index stats` that
        the manifest holds."""
        return {
            "articles": self.articles,
            "chunks": self.chunks,
            "sentence_vectors": self.sentence_vectors,
            "model": self.model,
            "dimension": self.dimension,
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
            "built_at": self.built_at,
            "created_at": self.created_at,
        }

    def file_dict(self) -> dict[str, Any]:
        """What manifest.json holds: what the generation is, not what it holds now."""
        data = self.to_dict()
        for moving in ("version", "counts", "built_at", "last_build"):
            del data[moving]
        return data

    @classmethod
    def from_parts(cls, data: dict[str, Any], state: sqlite3.Row) -> Manifest:
        """From manifest.json's content and the generation's state row."""
        return cls(
            format_version=int(data["format_version"]),
            generation=str(data["generation"]),
            model=str(data["embedding"]["model"]),
            dimension=int(data["embedding"]["dimension"]),
            chunk_tokens=int(data["chunking"]["chunk_tokens"]),
            overlap_tokens=int(data["chunking"]["overlap_tokens"]),
            ann=AnnSettings.from_dict(dict(data.get("approximate_search", {}))),
            created_at=str(data["created_at"]),
            versions=dict(data.get("versions", {})),
            version=int(state["version"]),
            articles=int(state["articles"]),
            chunks=int(state["chunks"]),
            sentence_vectors=int(state["sentence_vectors"]),
            built_at=str(state["built_at"]),
            last_build=dict(json.loads(state["last_build"])),
        )


def read_manifest_file(index_dir: Path) -> dict[str, Any] | None:
    """manifest.json's content, checked; None when no index was ever built here."""
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        format_version = int(data["format_version"])
        str(data["generation"])
    except (ValueError, KeyError, TypeError) as error:
        raise IndexUnusable(
            f"{path} is damaged ({error}); rebuild it with `qa index build --full`"
        ) from error
    if format_version != FORMAT_VERSION:
        raise IndexUnusable(
            f"{path} has format version {format_version}, this version reads "
            f"{FORMAT_VERSION}; rebuild it with `qa index build --full`"
        )
    return dict(data)


def read_state(db: sqlite3.Connection) -> sqlite3.Row:
    row = db.execute("SELECT * FROM state WHERE id = 1").fetchone()
    if row is None:
        raise sqlite3.DatabaseError("the state row is missing")
    return row


def read_manifest(index_dir: Path) -> Manifest | None:
    """What the live index is now, or None when no index was ever built here."""
    data = read_manifest_file(Path(index_dir))
    if data is None:
        return None
    path = Path(index_dir) / str(data["generation"]) / DATABASE
    try:
        db = connect(path, read_only=True)
        try:
            return Manifest.from_parts(data, read_state(db))
        finally:
            db.close()
    except (sqlite3.Error, ValueError, KeyError, TypeError) as error:
        raise IndexUnusable(
            f"index in {index_dir} is damaged ({path}: {error}); rebuild it with "
            "`qa index build --full`"
        ) from error


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("qa-assistant", "faiss-cpu", "sentence-transformers", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    return versions
