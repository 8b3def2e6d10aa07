"""Extractive question answering over news articles, with exact citations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qa.config import Settings
    from qa.service import Assistant
    from qa.types import Article, Chunk, Hit

__all__ = ["Article", "Assistant", "Chunk", "Hit", "Settings"]

_HOMES = {
    "Article": "qa.types",
    "Assistant": "qa.service",
    "Chunk": "qa.types",
    "Hit": "qa.types",
    "Settings": "qa.config",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: `import qa.config` should not load the whole service.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
