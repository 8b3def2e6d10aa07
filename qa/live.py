"""Keeping a running assistant in step with an index that changes underneath it.

- `LiveAssistant` holds the `Assistant` for the generation that manifest.json names and swaps in
  a freshly loaded one when a build (by this process, the watcher or a CLI build) names a new
  generation. A new generation is loaded completely before the swap; queries already running
  keep the object they started with, whose files stay open (the store keeps one previous
  generation on disk, and an open generation stays readable even once it is deleted).
- `IndexUpdater` runs builds, one at a time, in the background or on request, and saves
  uploaded or pasted articles into the corpus folder, which stays the one source of truth.
- `watch_corpus` rebuilds whenever files under the corpus folder change.

Every build holds an exclusive lock on `<index>/.build.lock` (see `qa.store.build_lock`), so
the server, the watcher and `qa index build` never build the same index at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.embedding import Embedder
from qa.indexing import BuildReport
from qa.ingest import SUPPORTED_SUFFIXES, load_file
from qa.service import Assistant, build
from qa.store import IndexReader, IndexUnusable, read_manifest
from qa.types import Skipped

UPLOADS = "uploads"  # the corpus subfolder that uploaded and pasted articles are saved in
UPLOAD_SUFFIXES = frozenset(SUPPORTED_SUFFIXES)
RECORD_FIELDS = ("id", "title", "text", "source", "url", "published", "author")
_MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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


# --- the live assistant -----------------------------------------------------------------------


class LiveAssistant:
    """The current `Assistant` for `index_dir`, reloaded when the index gets a new generation.

    `get()` reads manifest.json's generation at most every `check_interval` seconds (a 1 kB
    file). A reload happens in the one thread that noticed the change, while the others go on
    with the previous assistant. If loading fails (say the generation was removed while it was
    being opened), the previous assistant stays, and a later check tries again once the
    manifest names another generation (`refresh()` always tries again).

    Args:
        embedder: shared by every loaded generation, so the model is loaded once.
        make_assistant: builds the service over an opened index (default: `Assistant`).
    """

    def __init__(
        self,
        index_dir: Path | str,
        embedder: Embedder,
        *,
        check_interval: float = 1.0,
        make_assistant: Callable[[IndexReader, Embedder], Assistant] | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.check_interval = check_interval
        self._embedder = embedder
        self._make = make_assistant or (lambda reader, emb: Assistant(reader, emb))
        self._current: Assistant | None = None
        self._generation: str | None = None
        self._failed_generation: str | None = None
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
                except Exception:  # recorded in last_error; keep serving what is loaded
                    pass
                finally:
                    self._reload_lock.release()
        return self._current or current

    def refresh(self) -> bool:
        """Check now (after any reload in progress); True if a new generation was swapped in.

        Raises the loading error, if any, and keeps the previous assistant.
        """
        with self._reload_lock:
            before = self._generation
            self._load_if_new(retry_failed=True)
            return self._generation != before

    def status(self) -> dict[str, Any]:
        return {
            "generation": self._generation,
            "loaded_at": self._loaded_at,
            "reloads": self._reloads,
            "last_error": self._last_error,
        }

    def _load_if_new(self, *, retry_failed: bool) -> None:
        """Load the generation manifest.json names unless it is loaded already. Lock held."""
        manifest = None
        try:
            manifest = read_manifest(self.index_dir)
            if manifest is None:
                if self._current is not None:
                    return  # manifest gone (index being replaced by hand?): keep serving
                raise IndexUnusable(
                    f"no index in {self.index_dir}; build one with "
                    f"`qa index build --index {self.index_dir}`"
                )
            if manifest.generation == self._generation:
                return
            if manifest.generation == self._failed_generation and not retry_failed:
                return
            reader = IndexReader.open(self.index_dir)
            try:
                assistant = self._make(reader, self._embedder)
            except BaseException:
                reader.close()
                raise
        except Exception as error:
            self._last_error = f"{type(error).__name__}: {error}"
            self._failed_generation = manifest.generation if manifest else None
            raise
        # The previous assistant is not closed: a query may still be using it. Its files are
        # closed when the last reference to it goes.
        self._current = assistant
        self._generation = reader.manifest.generation
        self._failed_generation = None
        self._loaded_at = _now()
        self._next_check = time.monotonic() + self.check_interval
        self._reloads += 1
        self._last_error = None


# --- saving articles into the corpus ----------------------------------------------------------


class UploadRefused(ValueError):
    """An upload that is not saved: a refused name, an unreadable file, a clashing id."""


@dataclass(frozen=True)
class Upload:
    """A file as a client sent it. `name` is untrusted and is never used as a path."""

    name: str
    data: bytes


@dataclass
class AddResult:
    """What `IndexUpdater.add_articles` did.

    `saved`: corpus-relative paths written. `articles`: ids of the added articles now in the
    index. `skipped`: uploads, records or lines that were not ingested, with the reason.
    `report`: the build that ran (None when nothing was saved).
    """

    saved: list[str] = field(default_factory=list)
    articles: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    report: BuildReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "saved": list(self.saved),
            "articles": list(self.articles),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "report": self.report.to_dict() if self.report else None,
            "summary": self.report.summary() if self.report else None,
        }


def safe_upload_name(name: str) -> str:
    """A safe file name for a client-supplied `name`, or `UploadRefused`.

    Only the last path component is kept (either slash), characters outside [A-Za-z0-9._-]
    become "_", leading dots go (no hidden files), and the extension must be one the corpus
    reads. When the name had to change, a short hash of the original is appended, so two
    different client names never land on one file while the same name always does.
    """
    original = name
    if not isinstance(name, str) or not name.strip():
        raise UploadRefused("no file name")
    # NFKC first: it turns look-alikes such as "／" and "．" into the characters they imitate.
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = name.strip().rstrip(". ")  # trailing dots and spaces are no part of an extension
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE.sub("_", name).lstrip("._-")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        raise UploadRefused(
            f"file name {_shown(original)} has no extension; allowed: {_allowed_suffixes()}"
        )
    suffix = f".{suffix.lower()}"
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadRefused(
            f"extension {_shown(suffix)} is not allowed; allowed: {_allowed_suffixes()}"
        )
    stem = stem.strip("._-")[:_MAX_STEM].rstrip("._-") or "upload"
    safe = f"{stem}{suffix}"
    if safe != original:
        safe = f"{stem}-{_short_hash(original)}{suffix}"
    return safe


def _printable(text: str) -> str:
    """`text` as valid Unicode (a lone surrogate becomes its escape), to show a client."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _allowed_suffixes() -> str:
    return " ".join(sorted(UPLOAD_SUFFIXES))


def _shown(text: str) -> str:
    return repr(text[:100])


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-") or "article"


def record_file(record: Mapping[str, Any]) -> tuple[str, bytes]:
    """The file name and .json content a pasted article record is saved as.

    With an `id` the name follows from the id, so posting the same id again updates that
    article; without one it follows from the content, so posting the same article twice
    changes nothing.
    """
    if not isinstance(record, Mapping):
        raise UploadRefused("an article must be a JSON object")
    kept = {key: record[key] for key in RECORD_FIELDS if record.get(key) is not None}
    try:
        content = json.dumps(kept, ensure_ascii=False, indent=2) + "\n"
        data = content.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate ("\ud800") is not text
        raise UploadRefused("not valid Unicode text (lone surrogate)") from error
    except (TypeError, ValueError) as error:
        raise UploadRefused(f"cannot save as JSON: {error}") from error
    if kept.get("id") not in (None, ""):
        key = str(kept["id"])
        name = f"{_slug(key)}-{_short_hash(key)}.json"
    else:
        title = str(kept.get("title") or "") or str(kept.get("text") or "")[:80]
        name = f"{_slug(title)}-{_short_hash(content)}.json"
    return name, data


def _write_atomically(path: Path, data: bytes) -> None:
    # The temporary name is hidden: neither ingestion nor the watcher looks at it.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _file_of(article_path: str) -> str:
    """The corpus file an article came from ("a.jsonl:3" and "a.json#0" → their file)."""
    return re.sub(r"(:\d+|#\d+)$", "", article_path)


# --- the updater -------------------------------------------------------------------------------


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
        result = AddResult()
        staged: list[tuple[str, bytes, list[str]]] = []  # (name, data, article ids)
        taken: set[str] = set()
        candidates: list[tuple[str, Upload | Mapping[str, Any]]] = [
            (_printable(u.name), u) for u in uploads
        ]
        candidates += [(f"articles[{i}]", record) for i, record in enumerate(records)]
        for label, item in candidates:
            try:
                if isinstance(item, Upload):
                    name, data = safe_upload_name(item.name), item.data
                else:
                    name, data = record_file(item)
                rel = f"{self._uploads}/{name}"
                if name in taken:
                    raise UploadRefused(f"same file name ({rel}) as another article in the request")
                ids, notes = self._check(rel, data)
            except UploadRefused as refused:
                result.skipped.append(Skipped(label, str(refused)))
                continue
            taken.add(name)
            result.skipped.extend(notes)
            staged.append((name, data, ids))
        if not staged:
            return result

        folder = self.uploads_dir
        corpus = Path(self.settings.corpus_dir)
        if not corpus.is_dir():
            raise ValueError(f"corpus folder {corpus} does not exist")
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.resolve().is_relative_to(corpus.resolve()):
            raise ValueError(f"{folder} is outside the corpus folder {corpus}")
        for name, data, _ in staged:
            _write_atomically(folder / name, data)
            result.saved.append(f"{self._uploads}/{name}")

        result.report = self.build_now(operation="add articles")
        saved = set(result.saved)
        for skip in result.report.skipped:
            if _file_of(skip.path) in saved and skip not in result.skipped:
                result.skipped.append(skip)
        assistant = self.live.get() if self.live is not None else None
        for _, _, ids in staged:
            for article_id in ids:
                present = assistant.article(article_id) if assistant is not None else True
                if present:
                    result.articles.append(article_id)
        return result

    def _check(self, rel: str, data: bytes) -> tuple[list[str], list[Skipped]]:
        """Read `data` as if saved at `rel`: its article ids and skipped records, or refuse."""
        limit = self.settings.max_file_bytes
        if len(data) > limit:
            raise UploadRefused(f"larger than the {limit:,}-byte file limit ({len(data):,} bytes)")
        with tempfile.TemporaryDirectory(prefix="qa-upload-") as scratch:
            path = Path(scratch, rel)
            path.parent.mkdir(parents=True)
            path.write_bytes(data)
            loaded = load_file(path, Path(scratch), max_bytes=limit)
        if not loaded.articles:
            reasons = "; ".join(
                s.reason if _file_of(s.path) == rel else f"{s.path}: {s.reason}"
                for s in loaded.skipped
            )
            raise UploadRefused(reasons or "no article in it")
        if self.live is not None:
            clashes = []
            assistant = self.live.get()
            for article in loaded.articles:
                existing = assistant.article(article.article_id)
                if existing is not None and _file_of(existing.path) != rel:
                    clashes.append(f"{article.article_id!r} (used by {existing.path})")
            if clashes:
                raise UploadRefused(f"article id already in use: {', '.join(clashes)}")
        return [a.article_id for a in loaded.articles], list(loaded.skipped)

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
            self._started_at = _now()
            self._finished_at = None

    def _run(self, full: bool) -> BuildReport:
        try:
            report = locked_build(self.settings, self._embedder, full=full)
            if self.live is not None:
                self.live.refresh()
        except Exception as error:
            with self._state_lock:
                self._state = "failed"
                self._finished_at = _now()
                self._last_error = f"{type(error).__name__}: {error}"
                self._builds += 1
            raise
        with self._state_lock:
            self._state = "idle"
            self._finished_at = _now()
            self._last_report = report
            self._last_error = None
            self._builds += 1
        return report


# --- watching the corpus ------------------------------------------------------------------------

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
