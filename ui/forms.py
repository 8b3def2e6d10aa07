"""What the chat's forms send, checked: the question's settings and the "Add articles" form.

Each function returns the checked values or raises a ValueError whose message is shown in the
chat as it is. A pasted article is checked with the admin API's `ArticleIn`, so the chat and the
API accept the same articles.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from qa.dates import iso_date
from qa.limits import MAX_FIELD_CHARS
from qa.live import Upload
from ui.admin import ArticleIn
from ui.rendering import safe_url, shorten

DEFAULT_K = 5
MAX_K = 20

# The paste form's boxes, by `ArticleIn` field, as the form labels them.
_LABELS = {
    "title": "Title",
    "text": "Text",
    "source": "Outlet",
    "url": "URL",
    "published": "Published",
}


# --- the question's settings ----------------------------------------------------------------------


def parse_date_setting(value: object, label: str) -> str | None:
    """An ISO date from a date box ("" → None), or a ValueError with a message for the chat."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    found = iso_date(text)
    if found is None:
        raise ValueError(
            f"{label} must be a date like 2023-03-02 (year-month-day), not “{shorten(text, 40)}”."
        )
    return found


def date_range(after: object, before: object) -> tuple[str | None, str | None]:
    """The published-after/before filter, checked: ValueError with a message for the chat."""
    start = parse_date_setting(after, "Published after")
    end = parse_date_setting(before, "Published before")
    if start and end and start > end:
        raise ValueError(
            f"Published after ({start}) is later than published before ({end}): "
            "no article can match."
        )
    return start, end


def clamp_k(value: object) -> int:
    """The number of passages to read, from the slider: within 1…MAX_K, DEFAULT_K if unreadable."""
    if not isinstance(value, (int, float, str)):
        return DEFAULT_K
    try:
        k = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_K
    return max(1, min(MAX_K, k))


# --- adding articles ------------------------------------------------------------------------------


def pasted_record(
    title: str, text: str, source: str = "", url: str = "", published: str = ""
) -> dict[str, str] | None:
    """The article record for the paste form, None when no text was pasted, or ValueError."""
    if not (text or "").strip():
        if any((x or "").strip() for x in (title, source, url, published)):
            raise ValueError("Paste the article's text too: it is the one required field.")
        return None
    fields = {"title": title, "source": source, "url": url, "published": published}
    given = {key: value.strip() for key, value in fields.items() if (value or "").strip()}
    try:
        article = ArticleIn.model_validate({"text": text, **given})
    except ValidationError as error:
        raise ValueError(_form_problem(error)) from None
    record: dict[str, str] = article.model_dump(exclude_none=True)
    # Stricter than the API, which stores any date text and any link: a person typing can fix
    # a date ingestion would not read, or a URL the chat would not link.
    if "published" in record:
        record["published"] = parse_date_setting(record["published"], "Published") or ""
    if "url" in record and safe_url(record["url"]) is None:
        raise ValueError("URL must be an http:// or https:// address.")
    return record


def _form_problem(error: ValidationError) -> str:
    """The first problem `ArticleIn` found, in the words of the paste form."""
    problem = error.errors(include_url=False)[0]
    location = problem.get("loc") or ("",)
    label = _LABELS.get(str(location[0]), str(location[0]))
    if problem["type"] == "string_too_long":
        limit = problem.get("ctx", {}).get("max_length", MAX_FIELD_CHARS)
        return f"{label} is longer than {limit:,} characters."
    return f"{label}: {str(problem['msg']).removeprefix('Value error, ')}."


def uploads_from_paths(paths: Sequence[str | Path] | None, max_bytes: int) -> list[Upload]:
    """The chosen files as `Upload`s under their own names (what the browser sent)."""
    uploads = []
    for path in paths or ():
        path = Path(path)
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(
                f"{path.name} is larger than the {max_bytes:,}-byte file limit ({size:,} bytes)."
            )
        uploads.append(Upload(path.name, path.read_bytes()))
    return uploads
