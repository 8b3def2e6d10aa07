"""The HTTP retrieval API: thin FastAPI routes over the `Assistant` service.

Requests are checked strictly: no type is coerced (`"k": "5"` and `"k": true` are refused),
every string has a length limit, and a body that is not JSON text (invalid UTF-8, nested too
deeply) is a 422 like any other invalid input; a body over `MAX_BODY_BYTES` is a 413.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.ingest import MAX_ID_CHARS
from qa.limits import MAX_FIELD_CHARS, MAX_QUERY_CHARS
from qa.retrieval import SearchMode
from qa.service import Assistant
from qa.store.sharded import ShardUnavailable
from qa.types import Article, Citation, Disagreement, Hit

MAX_BODY_BYTES = 16_000_000  # a search or ask request, article ids included
MAX_ARTICLE_IDS = 500_000  # in one `article_ids` filter
# C0 and C1 control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _valid_unicode(text: str) -> str:
    # JSON may escape lone surrogates ("\ud800"), which are not text and cannot be stored.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("not valid Unicode text") from error
    return text


def _no_control_characters(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError("holds control characters")
    return text


def _visible(text: str) -> str:
    # Letters, digits, punctuation or symbols: not only spaces, control or format characters.
    if not any(unicodedata.category(c)[0] not in "CZ" for c in text):
        raise ValueError("has no visible characters")
    return text


def _within_limit(text: str) -> str:
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"longer than {MAX_QUERY_CHARS} characters")
    return text


def _date_text(value: object) -> object:
    # Without this a number would be read as a Unix timestamp.
    if not isinstance(value, str):
        raise ValueError("must be a date like 2023-03-02 (a string)")
    return value


# Strings are strict: a number or a boolean is never turned into text.
Text = Annotated[
    str,
    StringConstraints(strict=True, max_length=MAX_FIELD_CHARS),
    AfterValidator(_valid_unicode),
    AfterValidator(_no_control_characters),
]
ArticleId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(_valid_unicode),
    AfterValidator(_no_control_characters),
]
IsoDate = Annotated[dt.date, BeforeValidator(_date_text)]

# Visible text up to the limit; surrounding white space is dropped.
Query = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1),
    AfterValidator(_valid_unicode),
    AfterValidator(_within_limit),
    AfterValidator(_no_control_characters),
    AfterValidator(_visible),
]


class Filters(BaseModel):
    """Which articles a request may draw on; the fields of `Assistant.search` and `ask`."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, le=100, strict=True, description="number of passages")
    source: Text | None = Field(None, description="only this outlet (case-insensitive)")
    published_after: IsoDate | None = Field(None, description="inclusive ISO date")
    published_before: IsoDate | None = Field(None, description="inclusive ISO date")
    article_ids: list[ArticleId] | None = Field(
        None, max_length=MAX_ARTICLE_IDS, description="only these articles"
    )

    def options(self) -> dict[str, Any]:
        """The filters as keyword arguments of `Assistant.search` and `Assistant.ask`."""
        return self.model_dump(
            include={"source", "published_after", "published_before", "article_ids"}
        )


class SearchRequest(Filters):
    query: Query = Field(description="what to search for", examples=["Where did they meet?"])
    mode: SearchMode = "hybrid"


class AskRequest(Filters):
    question: Query = Field(description="the question", examples=["Where did they meet?"])


class SearchResponse(BaseModel):
    hits: list[Hit]


class AnswerOut(BaseModel):
    question: str
    found: bool
    text: str
    sentence: str
    score: float
    sources_agreeing: int = Field(description="how many articles support the answer")
    independent_reports: int = Field(
        description="how many independent reports support it: near-duplicate articles (the "
        "same wire story under other headlines) count once"
    )
    corroboration: str = Field(
        description='"1 report, carried by 3 outlets", "2 independent reports", …'
    )
    as_of: str = Field(description="the newest publication date among the citations, or ''")
    citations: list[Citation] = Field(
        description="each with its article's `published` date, its `dates` (relative dates "
        "resolved against it), `speaker` (whom it quotes) and `report`"
    )
    disagreements: list[Disagreement] = Field(
        description="other values of the same kind (number, date, name) that other articles "
        "give, each with its citations"
    )
    related: list[Hit]


class JsonBodyRoute(APIRoute):
    """A route whose body, when not JSON text, is a 422 with the reason (FastAPI answers 400
    "There was an error parsing the body" for invalid UTF-8 and for JSON nested too deeply)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as error:  # FastAPI raises Starlette's own
                # Diagnosed only after FastAPI refused the body, so a good body is parsed once.
                problem = _body_problem(await request.body()) if error.status_code == 400 else None
                if problem is None:
                    raise
                raise RequestValidationError(
                    [{"type": "json_invalid", "loc": ("body",), "msg": problem, "input": None}]
                ) from error

        return checked


def _body_problem(body: bytes) -> str | None:
    """Why `body` is not JSON text, for the two cases FastAPI does not name; else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"the body is not UTF-8 text (byte {error.start})"
    try:
        json.loads(text)
    except RecursionError:
        return "the JSON body is nested too deeply"
    except ValueError:
        pass  # FastAPI names this one itself
    return None


def public_path(path: str | Path | None) -> str | None:
    """`path` as the public may see it: relative to the working folder (the project) when it
    lies inside it, else None. Absolute paths of the server's machine stay private."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return None


def api_router(assistant: Callable[[], Assistant]) -> APIRouter:
    """Routes under /api. `assistant` returns the current service (it may be reloaded)."""
    router = APIRouter(prefix="/api", route_class=JsonBodyRoute)

    @router.post("/search", response_model=SearchResponse, max_body_size=MAX_BODY_BYTES)
    def search(request: SearchRequest) -> dict[str, Any]:
        hits = assistant().search(request.query, request.k, mode=request.mode, **request.options())
        return {"hits": [hit.to_dict() for hit in hits]}

    @router.post("/ask", response_model=AnswerOut, max_body_size=MAX_BODY_BYTES)
    def ask(request: AskRequest) -> dict[str, Any]:
        return assistant().ask(request.question, request.k, **request.options()).to_dict()

    @router.get("/articles/{article_id:path}", response_model=Article)
    def article(article_id: str) -> dict[str, Any]:
        found = assistant().article(article_id)
        if found is None:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return found.to_dict()

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        found = assistant().stats()
        return {**found, "index_dir": public_path(found.get("index_dir"))}

    return router


def add_error_handlers(app: FastAPI) -> None:
    """422s that never echo the input back: it may not even be encodable (lone surrogates);
    503 with Retry-After when a shard of a sharded index served from a cluster is lost."""

    @app.exception_handler(ShardUnavailable)
    async def shard_unavailable(request: Request, error: ShardUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = [
            {key: value for key, value in item.items() if key in ("loc", "msg", "type")}
            for item in error.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)
