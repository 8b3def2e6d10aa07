"""Watching the corpus folder: a build after every batch of changes to the files in it."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.embedding import Embedder
from qa.indexing import BuildReport
from qa.live.builds import locked_build

# Editors' and browsers' temporary files: a change to one is never a change to an article.
_TEMPORARY = re.compile(r"(~|\.sw[a-p]|\.tmp|\.temp|\.part|\.crdownload)$|^(#.*#|~\$.*)$")


def corpus_change_filter(
    corpus_dir: Path | str, *, ignore: Path | str | None = None
) -> Callable[[Any, str], bool]:
    """A watchfiles filter: False for hidden files or folders, editors' temporary files and
    anything under `ignore` (the index, should it live inside the corpus folder)."""
    corpus = Path(corpus_dir).absolute()
    ignored = Path(ignore).absolute() if ignore is not None else None

    def interesting(change: Any, path: str) -> bool:
        if ignored is not None and Path(path).absolute().is_relative_to(ignored):
            return False
        try:
            parts = Path(path).absolute().relative_to(corpus).parts
        except ValueError:
            parts = (Path(path).name,)
        if any(part.startswith(".") for part in parts):
            return False
        return not (parts and _TEMPORARY.search(parts[-1]))

    return interesting


def watch_corpus(
    settings: Settings,
    embedder: Embedder,
    on_report: Callable[[BuildReport], None],
    stop_event: threading.Event,
    *,
    on_error: Callable[[Exception], None] | None = None,
    debounce_ms: int = 800,
    force_polling: bool | None = None,
) -> None:
    """Build once, then again after every batch of changes under the corpus, until stopped.

    The watcher starts before the first build, so a file that arrives while that build runs
    is seen. A failing build is passed to `on_error` (and the watch goes on), or raised when
    there is no `on_error`. Ctrl-C raises KeyboardInterrupt; `stop_event` ends it quietly.
    """
    from watchfiles import watch

    corpus = Path(settings.corpus_dir)
    if not corpus.is_dir():
        raise ValueError(f"corpus folder {corpus} does not exist")

    def run_build() -> None:
        try:
            report = locked_build(settings, embedder)
        except Exception as error:
            if on_error is None:
                raise
            on_error(error)
            return
        on_report(report)

    first = True
    for changes in watch(
        corpus,
        watch_filter=corpus_change_filter(corpus, ignore=settings.index_dir),
        debounce=debounce_ms,
        step=50,
        rust_timeout=200,
        yield_on_timeout=True,  # the first (maybe empty) batch says the watcher is running
        stop_event=stop_event,
        force_polling=force_polling,
    ):
        if stop_event.is_set():
            return
        if first or changes:
            first = False
            run_build()
