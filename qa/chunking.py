"""Splitting an article into passages that fit the embedder, each with exact character offsets."""

from __future__ import annotations

import re
from collections.abc import Callable

from qa.types import Article, Chunk

# Coarsest boundary first: paragraph, line, sentence, clause, word, character.
_SEPARATORS = [
    r"\n\n",
    r"\n",
    r"(?<=[.!?])\s+(?=[\"“‘'(\[A-Z0-9])",
    r"(?<=[.!?][\"”’')\]])\s+",
    r"(?<=[;:])\s+",
    r"(?<=,)\s+",
    r"\s+",
    "",
]


class Chunker:
    """Recursive paragraph → sentence → word splitting, with length measured in model tokens.

    Args:
        count_tokens: the embedder's own token counter, so no chunk is silently truncated.
        chunk_tokens: the most tokens in one chunk.
        overlap_tokens: tokens repeated from the end of one chunk at the start of the next.
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        *,
        chunk_tokens: int = 200,
        overlap_tokens: int = 32,
    ):
        if chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, not {chunk_tokens}")
        if not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError(
                f"overlap_tokens must be in 0..{chunk_tokens - 1}, not {overlap_tokens}"
            )
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self._count_tokens = count_tokens
        # Imported here: only builds split text, and the import costs a query process 0.3 s.
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        self._splitter = RecursiveCharacterTextSplitter(
            separators=_SEPARATORS,
            is_separator_regex=True,
            # Separators stay attached to the following piece, so every chunk is a verbatim slice.
            keep_separator="start",
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=count_tokens,
            strip_whitespace=True,
        )

    def split(self, article: Article) -> list[Chunk]:
        """Chunks of `article.text`, in order, each with `article.text[start:end] == text`."""
        pieces = [
            piece for text in self._splitter.split_text(article.text) for piece in self._fit(text)
        ]
        chunks: list[Chunk] = []
        cursor, covered = 0, 0
        for piece in pieces:
            # Each chunk reaches past the previous one; without overlap it starts after it, too.
            # Both rules matter only for repetitive text, where a piece occurs more than once.
            start = article.text.find(piece, cursor)
            while start >= 0 and start + len(piece) <= covered:
                start = article.text.find(piece, start + 1)
            if start < 0:  # cannot happen while pieces are slices; fail loudly if it ever does
                raise ValueError(f"chunk of {article.article_id!r} is not a slice of its text")
            end = start + len(piece)
            chunks.append(Chunk(article.article_id, len(chunks), start, end, piece))
            cursor = end if self.overlap_tokens == 0 else start + 1
            covered = end
        return chunks

    def _fit(self, text: str) -> list[str]:
        """Halve a chunk at whitespace until it fits: token counts of parts do not always add up."""
        if self._count_tokens(text) <= self.chunk_tokens:
            return [text]
        middle = len(text) // 2
        spaces = [m.start() for m in re.finditer(r"\s+", text)]
        cut = min(spaces, key=lambda i: abs(i - middle)) if spaces else middle
        cut = cut if 0 < cut < len(text) else middle
        return self._fit(text[:cut].rstrip()) + self._fit(text[cut:].lstrip())
