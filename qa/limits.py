"""Size limits shared by ingestion, the HTTP API and the chat, so that they cannot disagree."""

from __future__ import annotations

MAX_FILE_BYTES = 5_000_000  # an article file, in the corpus or uploaded
MAX_QUERY_CHARS = 1_000  # a question or a search query
MAX_FIELD_CHARS = 1_000  # one metadata field of a pasted article (title, outlet, URL, date…)
