"""The HTTP retrieval API: thin FastAPI routes over the `Assistant` service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from qa.limits import MAX_QUERY_CHARS
from qa.retrieval import SearchMode
from qa.service import Assistant
from qa.types import Article, Citation, Hit


def _valid_unicode(text: str) -> str:
    # JSON may escape lone surrogates ("\ud800"), which are not text and cannot be stored.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("not valid Unicode text") from error
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]


def _within_limit(text: str) -> str:
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"longer than {MAX_QUERY_CHARS} characters")
    return text


# Any non-blank text up to the limit; surrounding white space is dropped.
Query = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1),
    AfterValidator(_valid_unicode),
    AfterValidator(_within_limit),
]


class Filters(BaseModel):
    """Which articles a request may draw on; the fields of `Assistant.search` and `ask`."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, le=100, description="number of passages")
    source: Text | None = Field(None, description="only this outlet (case-insensitive)")
    published_after: dt.date | None = Field(None, description="inclusive ISO date")
    published_before: dt.date | None = Field(None, description="inclusive ISO date")
    article_ids: list[Text] | None = Field(None, description="only these articles")

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
    citations: list[Citation]
    related: list[Hit]


def api_router(assistant: Callable[[], Assistant]) -> APIRouter:
    """Routes under /api. `assistant` returns the current service (it may be reloaded)."""
    router = APIRouter(prefix="/api")

    @router.post("/search", response_model=SearchResponse)
    def search(request: SearchRequest) -> dict[str, Any]:
        hits = assistant().search(request.query, request.k, mode=request.mode, **request.options())
        return {"hits": [hit.to_dict() for hit in hits]}

    @router.post("/ask", response_model=AnswerOut)
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
        return assistant().stats()

    return router


def add_error_handlers(app: FastAPI) -> None:
    """422s that never echo the input back: it may not even be encodable (lone surrogates)."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = [
            {key: value for key, value in item.items() if key in ("loc", "msg", "type")}
            for item in error.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)
