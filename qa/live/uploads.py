"""Checking uploaded files and pasted article records, and saving them into the corpus folder.

Each upload or record is read the way a build would read it before it is saved; one that would
yield no article, or would take an article id another file uses, is refused with the reason and
never written. A client's file name is never used as a path (`safe_upload_name`).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.files import atomic_write_bytes
from qa.indexing import BuildReport
from qa.ingest import SUPPORTED_SUFFIXES, load_file, record_file_of
from qa.types import Article, Skipped

UPLOADS = "uploads"  # the corpus subfolder that uploaded and pasted articles are saved in
UPLOAD_SUFFIXES = frozenset(SUPPORTED_SUFFIXES)
RECORD_FIELDS = ("id", "title", "text", "source", "url", "published", "author")
_MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


@dataclass(frozen=True)
class CheckedFile:
    """An upload or a record that reads as articles, ready to be saved as `folder/name`."""

    name: str
    data: bytes
    article_ids: tuple[str, ...]


def check_articles(
    uploads: Sequence[Upload],
    records: Sequence[Mapping[str, Any]],
    *,
    folder: str,
    max_bytes: int,
    find_article: Callable[[str], Article | None] | None = None,
) -> tuple[list[CheckedFile], list[Skipped]]:
    """Read each upload and record as if saved under corpus/`folder`/.

    Returns the files to save, and what was refused or skipped (uploads, records, lines) with
    the reason. `find_article` looks up an id in the index: an article id that another file
    already uses is refused (None: not checked).
    """
    checked: list[CheckedFile] = []
    skipped: list[Skipped] = []
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
            rel = f"{folder}/{name}"
            if name in taken:
                raise UploadRefused(f"same file name ({rel}) as another article in the request")
            ids, notes = _check(rel, data, max_bytes, find_article)
        except UploadRefused as refused:
            skipped.append(Skipped(label, str(refused)))
            continue
        taken.add(name)
        skipped.extend(notes)
        checked.append(CheckedFile(name, data, tuple(ids)))
    return checked, skipped


def save_checked(files: Sequence[CheckedFile], corpus_dir: Path, folder: str) -> list[str]:
    """Write `files` into corpus_dir/`folder`/, each atomically; their corpus-relative paths."""
    corpus = Path(corpus_dir)
    if not corpus.is_dir():
        raise ValueError(f"corpus folder {corpus} does not exist")
    target = corpus / folder
    target.mkdir(parents=True, exist_ok=True)
    if not target.resolve().is_relative_to(corpus.resolve()):
        raise ValueError(f"{target} is outside the corpus folder {corpus}")
    saved = []
    for file in files:
        # Written under a hidden temporary name first: neither ingestion nor the watcher reads it.
        atomic_write_bytes(target / file.name, file.data)
        saved.append(f"{folder}/{file.name}")
    return saved


def _check(
    rel: str, data: bytes, max_bytes: int, find_article: Callable[[str], Article | None] | None
) -> tuple[list[str], list[Skipped]]:
    """Read `data` as if saved at `rel`: its article ids and skipped records, or refuse."""
    if len(data) > max_bytes:
        raise UploadRefused(f"larger than the {max_bytes:,}-byte file limit ({len(data):,} bytes)")
    with tempfile.TemporaryDirectory(prefix="qa-upload-") as scratch:
        path = Path(scratch, rel)
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        loaded = load_file(path, Path(scratch), max_bytes=max_bytes)
    if not loaded.articles:
        reasons = "; ".join(
            s.reason if record_file_of(s.path) == rel else f"{s.path}: {s.reason}"
            for s in loaded.skipped
        )
        raise UploadRefused(reasons or "no article in it")
    if find_article is not None:
        clashes = []
        for article in loaded.articles:
            existing = find_article(article.article_id)
            if existing is not None and record_file_of(existing.path) != rel:
                clashes.append(f"{article.article_id!r} (used by {existing.path})")
        if clashes:
            raise UploadRefused(f"article id already in use: {', '.join(clashes)}")
    return [a.article_id for a in loaded.articles], list(loaded.skipped)
