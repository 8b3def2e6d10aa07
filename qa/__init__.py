"""Extractive question answering over news articles, with exact citations."""

from qa.config import Settings
from qa.service import Assistant
from qa.types import Article, Chunk, Hit

__all__ = ["Article", "Assistant", "Chunk", "Hit", "Settings"]
