"""Admin HTTP routes: add articles, rebuild the index, and see how the last build went.

    POST /api/articles        bearer token; a JSON article (or a list) or a multipart `file`
    POST /api/index/rebuild   bearer token; 202 and a build in the background, 409 while one runs
    GET  /api/index/status    the updater's state and its last build report

Without a configured admin token the write routes answer 403, whatever the request says; with
one, a missing or wrong token gets 401.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.datastructures import UploadFile

from qa.limits import MAX_FIELD_CHARS, MAX_FILE_BYTES
from qa.live import IndexUpdater, Upload

MAX_ARTICLES_PER_REQUEST = 1_000
MAX_FILES_PER_REQUEST = 20
_MULTIPART_OVERHEAD = 64_000  # boundaries and part headers around the file itself

Text = Annotated[str, Field(max_length=MAX_FIELD_CHARS)]


def token_matches(given: str | None, expected: str | None) -> bool:
    """Whether `given`, surrounding spaces aside, is the admin token (compared in constant time).

    Never true when no token is configured. Both sides are compared as their UTF-8 bytes;
    "surrogatepass" lets text that is not valid Unicode compare too (never equal to valid text).
    """
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _header_text(value: str) -> str:
    """A header value as the text the client sent: Starlette decodes header bytes as latin-1."""
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


class ArticleIn(BaseModel):
    """One pasted article; only `text` is required. The chat's paste form checks with it too."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="the article text")
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
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        matches = token_matches(_header_text(given), admin_token)
        if scheme.lower() != "bearer" or not matches:
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
    def index_status() -> dict[str, Any]:
        """State (idle, running, failed), times and the last build report."""
        return updater.status()

    return router
