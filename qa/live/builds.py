"""Running index builds one at a time, in the background or on request, for a live assistant."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.dates import utc_timestamp
from qa.embedding import Embedder
from qa.indexing import BuildReport
from qa.ingest import record_file_of
from qa.live.reload import LiveAssistant
from qa.live.uploads import UPLOADS, AddResult, Upload, check_articles, save_checked
from qa.service import build
from qa.types import Article, Skipped


def locked_build(
    settings: Settings,
    embedder: Embedder,
    *,
    full: bool = False,
    on_skip: Callable[[Skipped], None] | None = None,
) -> BuildReport:
    """`qa.service.build` (which holds the index's build lock); refuses a missing corpus folder.

    A missing corpus folder would otherwise read as "every article was deleted".
    """
    if not Path(settings.corpus_dir).is_dir():
        raise ValueError(f"corpus folder {settings.corpus_dir} does not exist")
    return build(settings, embedder, full=full, on_skip=on_skip)


class IndexUpdater:
    """Runs index builds one at a time and tells `live` about each new generation.

    Uploads are saved under `corpus/<uploads_subdir>/` and are refused above the settings'
    `max_file_bytes`, like any corpus file.

    Args:
        live: reloaded after every build, so the next query sees the result.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        live: LiveAssistant | None = None,
        *,
        uploads_subdir: str = UPLOADS,
    ):
        self.settings = settings
        self.live = live
        self._embedder = embedder
        self._uploads = uploads_subdir
        self._busy = threading.Lock()  # held for the whole of a build, waiting included
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._operation: str | None = None
        self._started_at: str | None = None
        self._finished_at: str | None = None
        self._last_report: BuildReport | None = None
        self._last_error: str | None = None
        self._builds = 0

    @property
    def uploads_dir(self) -> Path:
        return Path(self.settings.corpus_dir) / self._uploads

    @property
    def last_report(self) -> BuildReport | None:
        return self._last_report

    @property
    def running(self) -> bool:
        return self._busy.locked()

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            report = self._last_report
            status = {
                "state": self._state,
                "operation": self._operation,
                "started_at": self._started_at,
                "finished_at": self._finished_at,
                "builds": self._builds,
                "last_report": report.to_dict() if report else None,
                "last_summary": report.summary() if report else None,
                "last_error": self._last_error,
            }
        if self.live is not None:
            status["generation"] = self.live.generation
            status["revision"] = self.live.revision
            status["reload_error"] = self.live.last_error
        return status

    def start_rebuild(self, *, full: bool = False) -> bool:
        """Start a build in a background thread; False (and nothing started) if one is running."""
        if not self._busy.acquire(blocking=False):
            return False
        operation = "full rebuild" if full else "rebuild"
        try:
            self._begin(operation)
            thread = threading.Thread(
                target=self._background, args=(full,), name="qa-rebuild", daemon=True
            )
            self._thread = thread
            thread.start()
        except BaseException:
            self._busy.release()
            raise
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def build_now(self, *, full: bool = False, operation: str = "build") -> BuildReport:
        """Build in this thread, after any build in progress; raises what the build raises."""
        with self._busy:
            self._begin(operation)
            return self._run(full)

    def add_articles(
        self,
        uploads: Sequence[Upload] = (),
        records: Sequence[Mapping[str, Any]] = (),
    ) -> AddResult:
        """Save uploaded files and pasted article records under corpus/uploads/, then build.

        Each upload or record is checked the way a build would read it before it is saved;
        one that would yield no article is refused with the reason and never written. The
        build runs in this thread (after any build in progress) and the live assistant is
        reloaded before this returns.
        """
        find_article = self._find_article if self.live is not None else None
        result = AddResult()
        checked, result.skipped = check_articles(
            uploads,
            records,
            folder=self._uploads,
            max_bytes=self.settings.max_file_bytes,
            find_article=find_article,
        )
        if not checked:
            return result
        result.saved = save_checked(checked, Path(self.settings.corpus_dir), self._uploads)
        result.report = self.build_now(operation="add articles")
        saved = set(result.saved)
        for skip in result.report.skipped:
            if record_file_of(skip.path) in saved and skip not in result.skipped:
                result.skipped.append(skip)
        for file in checked:
            for article_id in file.article_ids:
                if find_article is None or find_article(article_id) is not None:
                    result.articles.append(article_id)
        return result

    def _find_article(self, article_id: str) -> Article | None:
        """The article with this id in the index the live assistant serves now."""
        assert self.live is not None
        return self.live.get().article(article_id)

    def _background(self, full: bool) -> None:
        try:
            self._run(full)
        except Exception:  # recorded in status(); there is no caller to raise to
            pass
        finally:
            self._busy.release()

    def _begin(self, operation: str) -> None:
        with self._state_lock:
            self._state = "running"
            self._operation = operation
            self._started_at = utc_timestamp()
            self._finished_at = None

    def _run(self, full: bool) -> BuildReport:
        try:
            report = locked_build(self.settings, self._embedder, full=full)
            if self.live is not None:
                self.live.refresh()
        except Exception as error:
            with self._state_lock:
                self._state = "failed"
                self._finished_at = utc_timestamp()
                self._last_error = f"{type(error).__name__}: {error}"
                self._builds += 1
            raise
        with self._state_lock:
            self._state = "idle"
            self._finished_at = utc_timestamp()
            self._last_report = report
            self._last_error = None
            self._builds += 1
        return report
