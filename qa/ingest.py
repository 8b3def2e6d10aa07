"""Load a folder of news articles (.txt, .md, .html, .json, .jsonl) into cleaned `Article`s.

Nothing here raises on bad input or prints: every file or record that cannot be used becomes a
`Skipped(path, reason)` and the rest of the corpus still loads.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import trafilatura
import yaml

from qa.cleaning import clean_text, split_title
from qa.dates import iso_date
from qa.limits import MAX_FILE_BYTES
from qa.types import Article, FileStamp, IngestResult, Skipped

TEXT_SUFFIXES = frozenset({".txt", ".md"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".json", ".jsonl"}

_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%b. %d, %Y", "%B %d %Y", "%d %B %Y", "%d %b %Y")
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)")
# The record paths `_parse_json` and `_parse_jsonl` give: "a.json#0" (list index), "a.jsonl:3"
# (line number).
_RECORD_NUMBER = re.compile(r"(?:(?<=\.json)#|(?<=\.jsonl):)\d+$", re.IGNORECASE)
# Reasons that name a policy, not a fault (see `refused_by_policy`).
NOT_FOLLOWED = "symbolic link, not followed"
_INVALID_ID = "invalid id "
MAX_ID_CHARS = 1_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _SkipError(Exception):
    """Raised inside this module for input that cannot be used; becomes a `Skipped`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Reads the given corpus files (each with `load_file`), yielding one result per path in the
# order given: in this process (`read_files`) or on a cluster (`qa.cluster.build`).
FileReader = Callable[[Sequence[Path], Path, int], Iterable[IngestResult]]


def read_files(paths: Sequence[Path], corpus_dir: Path, max_bytes: int) -> Iterator[IngestResult]:
    for path in paths:
        yield load_file(path, corpus_dir, max_bytes=max_bytes)


def load_corpus(
    corpus_dir: Path,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    known: Mapping[str, FileStamp] | None = None,
    reader: FileReader = read_files,
) -> IngestResult:
    """Load every supported file under `corpus_dir` (recursively, sorted, hidden ones ignored).

    Article ids are unique in the result: a later article with an id already seen is skipped.
    A file whose size and modification time match its stamp in `known` is not read: it is
    listed in `unchanged` instead (an incremental build takes its articles as indexed).
    `reader` reads the other files (in parallel, on a cluster, if it likes); their results are
    taken in path order, so the outcome does not depend on it.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        return IngestResult(skipped=[Skipped(str(corpus_dir), "corpus folder not found")])
    result = IngestResult()
    to_read: list[tuple[Path, str, FileStamp | None]] = []
    for path in _walk(corpus_dir):
        rel = _relative(path, corpus_dir)
        stamp = _stamp(path, rel)
        if stamp is not None and known is not None and known.get(rel) == stamp:
            result.unchanged.append(rel)
        else:
            to_read.append((path, rel, stamp))
    first_seen: dict[str, str] = {}
    loaded_files = reader([path for path, _, _ in to_read], corpus_dir, max_bytes)
    for (path, rel, stamp), loaded in zip(to_read, loaded_files, strict=True):
        skips = len(result.skipped) + len(loaded.skipped)
        result.skipped.extend(loaded.skipped)
        _add_unique(loaded.articles, first_seen, result.articles, result.skipped)
        # Only a file read whole, without a skip (duplicate ids included), is taken as
        # unchanged next time; and not one modified just now, whose next change could keep
        # the same size and time stamp.
        settled = stamp is not None and time.time_ns() - stamp.mtime_ns > 2_000_000_000
        if settled and len(result.skipped) == skips and _stamp(path, rel) == stamp:
            assert stamp is not None
            result.stamps.append(stamp)
    return result


def _stamp(path: Path, rel: str) -> FileStamp | None:
    try:
        status = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return FileStamp(rel, status.st_size, status.st_mtime_ns)


def load_file(path: Path, corpus_dir: Path, *, max_bytes: int = MAX_FILE_BYTES) -> IngestResult:
    """Load the article(s) in one file; paths and default ids are relative to `corpus_dir`."""
    path = Path(path)
    rel = _relative(path, Path(corpus_dir))
    articles: list[Article] = []
    skipped: list[Skipped] = []
    first_seen: dict[str, str] = {}
    try:
        for item in _parse_file(path, rel, max_bytes):
            if isinstance(item, Skipped):
                skipped.append(item)
            else:
                _add_unique([item], first_seen, articles, skipped)
    except _SkipError as error:
        skipped.append(Skipped(rel, error.reason))
    return IngestResult(articles=articles, skipped=skipped)


def article_id_problem(article_id: str) -> str | None:
    """Why `article_id` cannot name an article, or None when it can.

    An id is shown, sent back in URLs (/api/articles/{id}) and compared as text: no control
    characters, no "." or ".." path segments, no leading slash, at most MAX_ID_CHARS characters.
    """
    if not article_id:
        return "it is empty"
    if len(article_id) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS:,} characters"
    if _CONTROL.search(article_id):
        return "it holds control characters"
    if article_id.startswith("/") or {".", ".."} & set(re.split(r"[/\\]", article_id)):
        return 'it is an absolute path or holds a "." or ".." segment'
    return None


def refused_by_policy(skip: Skipped) -> bool:
    """Whether `skip` is input refused by rule (a symbolic link, an invalid id) rather than input
    that could not be read: an article indexed from it before is removed by the next build,
    not kept as its last good version."""
    return skip.reason == NOT_FOLLOWED or skip.reason.startswith(_INVALID_ID)


def record_file_of(path: str) -> str:
    """The corpus file of an article or skip path: "a.jsonl:3" → "a.jsonl", "a.json#0" →
    "a.json"; the path of a whole file comes back as it is."""
    return _RECORD_NUMBER.sub("", path)


# --- files -------------------------------------------------------------------------------------


def _walk(corpus_dir: Path) -> list[Path]:
    """Every file, and every link to a folder (not followed: reported as skipped), sorted."""
    found: list[Path] = []
    for root, dirs, files in os.walk(corpus_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # prune hidden folders in place
        found.extend(Path(root, name) for name in dirs if Path(root, name).is_symlink())
        found.extend(Path(root, name) for name in files if not name.startswith("."))
    return sorted(found, key=lambda p: p.relative_to(corpus_dir).as_posix())


def _relative(path: Path, corpus_dir: Path) -> str:
    for candidate, base in ((path, corpus_dir), (path.absolute(), corpus_dir.absolute())):
        try:
            return candidate.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.name


def _parse_file(path: Path, rel: str, max_bytes: int) -> Iterator[Article | Skipped]:
    # A link may point anywhere on the machine, and the API serves what is indexed.
    if path.is_symlink():
        raise _SkipError(NOT_FOLLOWED)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise _SkipError(f"unsupported extension {suffix}" if suffix else "no file extension")
    data = _read_bytes(path, max_bytes)
    if suffix in TEXT_SUFFIXES:
        yield _parse_text(_decode(data), rel, markdown=suffix == ".md")
    elif suffix in HTML_SUFFIXES:
        yield _parse_html(_decode_html(data), rel)
    elif suffix == ".json":
        yield from _parse_json(_decode(data), rel)
    else:
        yield from _parse_jsonl(data, rel)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        # O_NOFOLLOW: a file swapped for a link after the check above is still not followed.
        # O_NONBLOCK: opening a named pipe does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _SkipError(NOT_FOLLOWED) from error
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise _SkipError("not a regular file") from error
        raise _SkipError(f"cannot read file: {error.strerror or error}") from error
    with os.fdopen(fd, "rb") as handle:
        try:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise _SkipError("not a regular file")
            # Checked before reading so a huge file is never loaded; the read is bounded too, in
            # case the file grows in between.
            if status.st_size > max_bytes:
                raise _SkipError(_too_large(status.st_size, max_bytes))
            data = handle.read(max_bytes + 1)
        except OSError as error:
            raise _SkipError(f"cannot read file: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise _SkipError(_too_large(len(data), max_bytes))
    if not data:
        raise _SkipError("empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _SkipError("not UTF-8 text (UTF-16)")
    if b"\x00" in data:
        raise _SkipError("binary file (contains NUL bytes)")
    return data


def _too_large(size: int, max_bytes: int) -> str:
    limit, actual = _human_size(max_bytes), _human_size(size)
    if actual == limit:  # rounding hid the difference
        actual = f"{size:,} bytes"
    return f"larger than {limit} limit ({actual})"


def _human_size(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("kB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _SkipError("not UTF-8 text") from error


def _decode_html(data: bytes) -> str:
    # Saved web pages may declare another charset; honour it when UTF-8 fails.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        declared = _HTML_CHARSET.search(data[:4096])
        if declared:
            try:
                return data.decode(declared.group(1).decode("ascii"))
            except (LookupError, UnicodeDecodeError):
                pass
    raise _SkipError("not UTF-8 text")


# --- formats -----------------------------------------------------------------------------------


def _parse_text(text: str, rel: str, *, markdown: bool) -> Article:
    meta, body = _split_front_matter(text)
    if markdown:
        body = _strip_markdown(body)
    # Whoever wrote a text file put its title on the first line: keep it even if one word.
    return _build_article(body, meta, path=rel, default_id=rel, first_line_title=True)


def _split_front_matter(text: str) -> tuple[Mapping[str, Any], str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].strip() != "---":
        return {}, text
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise _SkipError("invalid front matter: no closing '---' line")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        raise _SkipError(f"invalid front matter: {_yaml_problem(error)}") from error
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise _SkipError("invalid front matter: not a mapping of fields")
    return meta, "\n".join(lines[end + 1 :])


def _yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None) or str(error).split("\n")[0]
    mark = getattr(error, "problem_mark", None)
    # +2: YAML counts from 0 and the block starts after the opening '---' line
    return f"{problem} (line {mark.line + 2})" if mark is not None else str(problem)


def _strip_markdown(text: str) -> str:
    text = _MD_HEADING.sub(r"\1", text)
    text = _MD_IMAGE.sub("", text)
    return _MD_LINK.sub(r"\1", text)


def _parse_html(html: str, rel: str) -> Article:
    try:
        doc = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False)
    except Exception as error:  # a third-party parser on untrusted input: never let it escape
        raise _SkipError(f"cannot parse HTML: {error}") from error
    text = getattr(doc, "text", None) if doc is not None else None
    if not text:
        raise _SkipError("no text after cleaning")
    meta = {
        "title": getattr(doc, "title", None),
        "source": getattr(doc, "sitename", None) or getattr(doc, "hostname", None),
        "url": getattr(doc, "url", None),
        "published": getattr(doc, "date", None),
        "author": getattr(doc, "author", None),
    }
    # trafilatura puts one block (paragraph, heading, list item) per line.
    return _build_article(text.replace("\n", "\n\n"), meta, path=rel, default_id=rel)


def _parse_json(text: str, rel: str) -> Iterator[Article | Skipped]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _SkipError(f"invalid JSON: {_json_problem(error)} at line {error.lineno}") from error
    except RecursionError as error:
        raise _SkipError("invalid JSON: nested too deeply") from error
    if isinstance(data, dict):
        yield _record_article(data, path=rel, default_id=rel)
        return
    if not isinstance(data, list):
        raise _SkipError("JSON must be an object or a list of objects")
    if not data:
        raise _SkipError("no records")
    for index, record in enumerate(data):
        path = f"{rel}#{index}"  # the format `record_file_of` reads back
        yield _record_article(record, path=path, default_id=path)


def _parse_jsonl(data: bytes, rel: str) -> Iterator[Article | Skipped]:
    found = False
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        if not raw_line.strip():
            continue
        found = True
        path = f"{rel}:{number}"  # the format `record_file_of` reads back
        try:
            record = json.loads(raw_line.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError:
            yield Skipped(path, "not UTF-8 text")
            continue
        except json.JSONDecodeError as error:
            yield Skipped(path, f"invalid JSON: {_json_problem(error)} at column {error.colno}")
            continue
        except RecursionError:
            yield Skipped(path, "invalid JSON: nested too deeply")
            continue
        yield _record_article(record, path=path, default_id=f"{rel}#{number}")
    if not found:
        raise _SkipError("no records")


def _json_problem(error: json.JSONDecodeError) -> str:
    # Some of json's messages end in "at" ("Unterminated string starting at"): the position
    # follows; without this the reason read "... starting at at line 1".
    return error.msg.removesuffix(" at")


def _record_article(record: object, *, path: str, default_id: str) -> Article | Skipped:
    if not isinstance(record, dict):
        return Skipped(path, "record is not a JSON object")
    if "text" not in record:
        return Skipped(path, 'missing "text" field')
    if not isinstance(record["text"], str):
        return Skipped(path, f'"text" is not a string ({type(record["text"]).__name__})')
    try:
        return _build_article(record["text"], record, path=path, default_id=default_id)
    except _SkipError as error:
        return Skipped(path, error.reason)


# --- records -----------------------------------------------------------------------------------


def _build_article(
    text: str,
    meta: Mapping[str, Any],
    *,
    path: str,
    default_id: str,
    first_line_title: bool = False,
) -> Article:
    cleaned = clean_text(text, title=_as_text(meta.get("title")), first_line_title=first_line_title)
    if not cleaned:
        raise _SkipError("no text after cleaning")
    title, _ = split_title(cleaned)
    article_id = _as_text(meta.get("id")) or default_id
    problem = article_id_problem(article_id)
    if problem is not None:
        raise _SkipError(f"{_INVALID_ID}{_shown_id(article_id)}: {problem}")
    fields = {
        "article_id": article_id,
        "title": title,
        "text": cleaned,
        "source": _as_text(meta.get("source")),
        "url": _as_text(meta.get("url")),
        "published": _normalise_date(meta.get("published") or meta.get("date")),
        "author": _as_text(meta.get("author")),
    }
    return Article(**fields, path=path, content_hash=_content_hash(fields))


def _shown_id(article_id: str) -> str:
    return repr(article_id if len(article_id) <= 80 else article_id[:80] + "…")


def _content_hash(fields: Mapping[str, str]) -> str:
    # Canonical JSON of text and metadata, so that a metadata-only edit changes the hash too.
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _as_text(value: object) -> str:
    """A metadata value as one line of text; lists are joined, other structures ignored."""
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, list):
        return ", ".join(part for part in map(_as_text, value) if part)
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())


def _normalise_date(value: object) -> str:
    """An ISO date "YYYY-MM-DD", or "" when absent or unparseable."""
    if not isinstance(value, str):
        return iso_date(value) or ""  # YAML front matter gives dates and datetimes
    text = " ".join(value.split())
    found = iso_date(text)
    if found is not None or not text:
        return found or ""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        return parsedate_to_datetime(text).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return ""


def _add_unique(
    new: list[Article], first_seen: dict[str, str], articles: list[Article], skipped: list[Skipped]
) -> None:
    for article in new:
        earlier = first_seen.get(article.article_id)
        if earlier is not None:
            skipped.append(
                Skipped(
                    article.path, f"duplicate id {article.article_id!r} (already used by {earlier})"
                )
            )
            continue
        first_seen[article.article_id] = article.path
        articles.append(article)
