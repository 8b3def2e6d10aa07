"""Serving the newest index state: a new one is loaded beside the old, then swapped in.

A new state (a build's revision: a new generation or a new version of the live one) is loaded
completely before the swap; queries already running keep the object they started with, whose
read transaction and files stay open (the store keeps one previous generation on disk, and an
open generation stays readable even once it is deleted). The replaced state is
released when the last query using it ends: nothing holds an assistant in a reference cycle, and
`IndexReader` closes its SQLite file when it is freed, so this needs no cycle collector.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.dates import utc_timestamp
from qa.embedding import Embedder
from qa.service import Assistant
from qa.store import AnyIndex, IndexUnusable, open_index, read_any_manifest


class LiveAssistant:
    """The current `Assistant` for `index_dir`, reloaded when a build changed the index.

    `get()` reads the index's revision (manifest.json and the database's state row) at most
    every `check_interval` seconds. A reload happens in the one thread that noticed the change,
    while the others go on with the previous assistant. If loading fails (say the generation
    was removed while it was being opened), the previous assistant stays, and a later check
    tries again once the index has another revision (`refresh()` always tries again).

    Args:
        embedder: shared by every loaded generation, so the model is loaded once.
        make_assistant: builds the service over an opened index (default: `Assistant`).
        open_reader: opens the index (default: `qa.store.open_index`, in this process;
            `qa.cluster.serve` passes one that serves the shards from a Ray cluster).
    """

    def __init__(
        self,
        index_dir: Path | str,
        embedder: Embedder,
        *,
        check_interval: float = 1.0,
        make_assistant: Callable[[AnyIndex, Embedder], Assistant] | None = None,
        open_reader: Callable[[Path], AnyIndex] = open_index,
    ):
        self.index_dir = Path(index_dir)
        self.check_interval = check_interval
        self._embedder = embedder
        self._make = make_assistant or (lambda reader, emb: Assistant(reader, emb))
        self._open = open_reader
        self._current: Assistant | None = None
        self._reader: AnyIndex | None = None
        self._replaced: weakref.ref[AnyIndex] | None = None
        self._log_released = False
        self._generation: str | None = None
        self._revision: str | None = None
        self._failed_revision: str | None = None
        self._next_check = 0.0
        self._reload_lock = threading.Lock()
        self._loaded_at: str | None = None
        self._reloads = 0
        self._last_error: str | None = None

    @property
    def generation(self) -> str | None:
        """The generation the current assistant reads, or None before the first load."""
        return self._generation

    @property
    def revision(self) -> str | None:
        """What the current assistant reads (generation and version: every build moves it)."""
        return self._revision

    @property
    def last_error(self) -> str | None:
        """Why the last reload failed; None once a reload succeeds."""
        return self._last_error

    def get(self) -> Assistant:
        """The assistant for the newest loadable generation. Never fails once one is loaded."""
        current = self._current
        if current is None:
            with self._reload_lock:
                if self._current is None:
                    self._load_if_new(retry_failed=True)
            assert self._current is not None
            return self._current
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            # Whoever gets the lock reloads; everyone else keeps answering from `current`.
            if self._reload_lock.acquire(blocking=False):
                try:
                    self._load_if_new(retry_failed=False)
                    self._release_log()
                except Exception:  # recorded in last_error; keep serving what is loaded
                    pass
                finally:
                    self._reload_lock.release()
        return self._current or current

    def _release_log(self) -> None:
        """Once no query uses the replaced reader any more, let the database restart its
        write-ahead log (`IndexReader.release_log`). Lock held."""
        if self._log_released or self._reader is None:
            return
        if self._replaced is not None and self._replaced() is not None:
            return  # a query still runs on the replaced state
        self._log_released = self._reader.release_log()

    def refresh(self) -> bool:
        """Check now (after any reload in progress); True if a new generation was swapped in.

        Raises the loading error, if any, and keeps the previous assistant.
        """
        with self._reload_lock:
            before = self._revision
            self._load_if_new(retry_failed=True)
            return self._revision != before

    def status(self) -> dict[str, Any]:
        return {
            "generation": self._generation,
            "revision": self._revision,
            "loaded_at": self._loaded_at,
            "reloads": self._reloads,
            "last_error": self._last_error,
        }

    def _load_if_new(self, *, retry_failed: bool) -> None:
        """Load the index's current revision unless it is loaded already. Lock held."""
        manifest = None
        try:
            manifest = read_any_manifest(self.index_dir)
            if manifest is None:
                if self._current is not None:
                    return  # manifest gone (index being replaced by hand?): keep serving
                raise IndexUnusable(
                    f"no index in {self.index_dir}; build one with "
                    f"`qa index build --index {self.index_dir}`"
                )
            if manifest.revision == self._revision:
                return
            if manifest.revision == self._failed_revision and not retry_failed:
                return
            reader = self._open(self.index_dir)
            try:
                assistant = self._make(reader, self._embedder)
            except BaseException:
                reader.close()
                raise
        except Exception as error:
            self._last_error = f"{type(error).__name__}: {error}"
            self._failed_revision = manifest.revision if manifest else None
            raise
        # The previous assistant is not closed: a query may still be using it. Its files are
        # closed, and its memory freed, when the last reference to it goes (at once: no cycle).
        self._replaced = weakref.ref(self._reader) if self._reader is not None else None
        self._reader = reader
        self._log_released = False
        self._current = assistant
        self._generation = reader.manifest.generation
        self._revision = reader.manifest.revision
        self._failed_revision = None
        self._loaded_at = utc_timestamp()
        self._next_check = time.monotonic() + self.check_interval
        self._reloads += 1
        self._last_error = None
