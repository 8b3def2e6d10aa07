"""Restricting a search: filters as SQL conditions over articles."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChunkFilter:
    """Restricts a search to articles by outlet, publication date (inclusive) or id."""

    source: str | None = None
    published_after: str | None = None  # ISO date, inclusive
    published_before: str | None = None  # ISO date, inclusive
    article_ids: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        return any(
            value is not None
            for value in (
                self.source,
                self.published_after,
                self.published_before,
                self.article_ids,
            )
        )

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE condition over `articles a`, and its parameters."""
        conditions, parameters = ["1"], []
        if self.source is not None:
            conditions.append("casefold(a.source) = ?")
            parameters.append(self.source.casefold())
        if self.published_after is not None:
            conditions.append("a.published <> '' AND a.published >= ?")
            parameters.append(self.published_after)
        if self.published_before is not None:
            # A date-only bound includes the whole day, whatever the stored precision.
            conditions.append("a.published <> '' AND substr(a.published, 1, 10) <= ?")
            parameters.append(self.published_before)
        if self.article_ids is not None:
            conditions.append(f"a.article_id IN {IN_LIST}")
            parameters.append(json_list(self.article_ids))
        return " AND ".join(conditions), parameters


# A list of any length as one parameter: `IN (?, ?, ...)` stops at SQLite's variable limit
# (32,766), and a filter may name hundreds of thousands of articles.
IN_LIST = "(SELECT value FROM json_each(?))"


def json_list(values: Iterable[Any]) -> str:
    return json.dumps(list(values), ensure_ascii=False)
