"""Admin HTTP routes: add articles, rebuild the index, and see how the last build went.

    POST /api/articles        bearer token; a JSON article (or a list) or a multipart `file`
    POST /api/index/rebuild   bearer token; 202 and a build in the background, 409 while one runs
    GET  /api/index/status    the updater's state and its last build report; errors and server
                              paths only with the bearer token
    POST /api/admin/session   bearer token; sets the admin session cookie that lets the chat's
                              browser upload files (ui.security); DELETE ends it

Without a configured admin token the write routes answer 403, whatever the request says; with
one, a missing or wrong token gets 401.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.datastructures import UploadFile

from qa.ingest import article_id_problem
from qa.limits import MAX_FIELD_CHARS, MAX_FILE_BYTES
from qa.live import IndexUpdater, Upload
from ui.api import public_path
from ui.security import ADMIN_COOKIE, bearer_matches, session_value

MAX_ARTICLES_PER_REQUEST = 1_000
MAX_FILES_PER_REQUEST = 20
_MULTIPART_OVERHEAD = 64_000  # boundaries and part headers around the file itself

Text = Annotated[str, Field(max_length=MAX_FIELD_CHARS)]


class ArticleIn(BaseModel):
    """One pasted article; only `text` is required. The chat's paste form checks with it too."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_FILE_BYTES, description="the article text")
    title: Text | None = None
    source: Text | None = Field(None, description="the outlet")
    url: Text | None = None
    published: Text | None = Field(None, description="ISO date, e.g. 2023-03-02")
    author: Text | None = None
    id: Annotated[str, Field(max_length=300)] | None = Field(
        None, description="a stable id; posting the same id again updates the article"
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text

    @field_validator("id")
    @classmethod
    def _usable_id(cls, article_id: str | None) -> str | None:
        # The same rule as for ids in corpus files, which ingestion would skip.
        problem = article_id_problem(article_id) if article_id is not None else None
        if problem is not None:
            raise ValueError(f"not a usable id: {problem}")
        return article_id


_ARTICLE_LIST = TypeAdapter(
    Annotated[list[ArticleIn], Field(min_length=1, max_length=MAX_ARTICLES_PER_REQUEST)]
)


def _parse_articles(body: bytes) -> list[ArticleIn]:
    """One article object or a list of them, or a 422 that says what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise HTTPException(422, f"invalid JSON: {error}") from error
    try:
        if isinstance(data, dict):
            return [ArticleIn.model_validate(data)]
        if isinstance(data, list):
            return _ARTICLE_LIST.validate_python(data)
    except ValidationError as error:
        raise HTTPException(422, _validation_message(error)) from error
    raise HTTPException(422, "send an article object or a list of article objects")


class _TooLarge(Exception):
    pass


def _limited(receive: Callable[[], Awaitable[Any]], limit: int) -> Callable[[], Awaitable[Any]]:
    """An ASGI `receive` that raises `_TooLarge` once the body passes `limit` bytes."""
    received = 0

    async def limited_receive() -> Any:
        nonlocal received
        message = await receive()
        if message.get("type") == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
        return message

    return limited_receive


def _validation_message(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item.get("loc", ()))
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    # Never echo what cannot be encoded: a key may hold a lone surrogate.
    return "; ".join(problems[:10]).encode("utf-8", "backslashreplace").decode("utf-8")


def admin_router(
    updater: IndexUpdater,
    *,
    admin_token: str | None,
    max_upload_bytes: int = MAX_FILE_BYTES,
) -> APIRouter:
    """The admin routes under /api. `admin_token` None or empty disables the write routes."""
    router = APIRouter(prefix="/api", tags=["admin"])
    body_limit = max_upload_bytes + _MULTIPART_OVERHEAD

    def authorize(request: Request) -> None:
        if not admin_token:
            raise HTTPException(403, "admin routes are disabled: the server has no admin token")
        if not bearer_matches(request.headers, admin_token):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    def too_large() -> HTTPException:
        return HTTPException(413, f"upload larger than the {max_upload_bytes:,}-byte limit")

    @router.post("/articles", status_code=201, dependencies=[Depends(authorize)])
    async def add_articles(request: Request) -> JSONResponse:
        """Add articles: a JSON article object or a list of them, or a multipart `file`."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPException(400, "invalid Content-Length")
            if int(declared) > body_limit:
                raise too_large()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        limited = Request(request.scope, _limited(request.receive, body_limit))
        uploads: list[Upload] = []
        records: list[dict[str, Any]] = []
        try:
            if media == "application/json":
                body = await limited.body()
                if len(body) > max_upload_bytes:
                    raise too_large()
                records = [a.model_dump(exclude_none=True) for a in _parse_articles(body)]
            elif media == "multipart/form-data":
                form = await limited.form(
                    max_files=MAX_FILES_PER_REQUEST, max_fields=MAX_FILES_PER_REQUEST
                )
                try:
                    files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
                    if not files:
                        raise HTTPException(422, 'send the article as a multipart field "file"')
                    for file in files:
                        data = await file.read(max_upload_bytes + 1)
                        if len(data) > max_upload_bytes:
                            raise too_large()
                        uploads.append(Upload(file.filename or "", data))
                finally:
                    await form.close()
            else:
                raise HTTPException(
                    415, "send a JSON article (application/json) or a file (multipart/form-data)"
                )
        except _TooLarge:
            raise too_large() from None

        try:
            result = await run_in_threadpool(updater.add_articles, uploads, records)
        except ValueError as error:  # e.g. the corpus folder is missing
            raise HTTPException(503, str(error)) from error
        except Exception as error:  # the files are saved; the next build will index them
            raise HTTPException(500, f"the index build failed: {error}") from error
        answer = result.to_dict()
        if not result.articles:
            answer["detail"] = "nothing was ingested: " + "; ".join(
                f"{s.path}: {s.reason}" for s in result.skipped
            )
            return JSONResponse(answer, status_code=422)
        return JSONResponse(answer, status_code=201)

    @router.post("/index/rebuild", status_code=202, dependencies=[Depends(authorize)])
    def rebuild(full: bool = False) -> JSONResponse:
        """Bring the index in line with the corpus in the background (`full`: re-embed all)."""
        if not updater.start_rebuild(full=full):
            return JSONResponse(
                {"detail": "a build is already running", "status": updater.status()},
                status_code=409,
            )
        return JSONResponse(
            {"detail": "rebuild started", "status": updater.status()}, status_code=202
        )

    @router.get("/index/status")
    def index_status(request: Request) -> dict[str, Any]:
        """State (idle, running, failed), times and the last build report; the errors' text and
        server paths with the bearer token only."""
        status = updater.status()
        if bearer_matches(request.headers, admin_token):
            return status
        settings = updater.settings
        return public_status(status, [Path(settings.index_dir), Path(settings.corpus_dir)])

    @router.post("/admin/session", status_code=204, dependencies=[Depends(authorize)])
    def start_session(request: Request) -> Response:
        """Set the admin session cookie (HttpOnly, SameSite=Strict) for this browser."""
        assert admin_token  # `authorize` checked it
        response = Response(status_code=204)
        response.set_cookie(
            ADMIN_COOKIE,
            session_value(admin_token),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.delete("/admin/session", status_code=204)
    def end_session() -> Response:
        """Remove the admin session cookie (no token needed: it only takes rights away)."""
        response = Response(status_code=204)
        response.delete_cookie(ADMIN_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router


HIDDEN = "hidden: send the admin token to see it"
# An absolute path, up to white space, a quote or a closing bracket.
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.~])/[^\s'"()\[\],;]*""")


def public_status(status: dict[str, Any], folders: list[Path]) -> dict[str, Any]:
    """`IndexUpdater.status()` without what only the admin may read: the errors' text (hidden)
    and absolute paths of the server (relative to the project when inside it, else "…")."""

    def scrub(text: str) -> str:
        for folder in folders:
            shown = public_path(folder) or "…"
            for form in {str(folder.resolve()), str(folder.absolute())}:
                text = text.replace(form, shown)
        return _ABSOLUTE_PATH.sub("…", text)

    def scrubbed(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, dict):
            return {key: scrubbed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrubbed(item) for item in value]
        return value

    public = scrubbed(status)
    for key in ("last_error", "reload_error"):
        if public.get(key) is not None:
            public[key] = HIDDEN
    return dict(public)
