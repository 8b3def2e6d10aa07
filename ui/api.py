"""The HTTP retrieval API: thin FastAPI routes over the `Assistant` service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from qa.retrieval import SearchMode
from qa.service import Assistant

MAX_QUERY_CHARS = 1_000

Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Query = Field(description="what to search for", examples=["Where did they meet?"])
    k: int = Field(5, ge=1, le=100, description="number of passages")
    source: str | None = Field(None, description="only this outlet (case-insensitive)")
    published_after: dt.date | None = Field(None, description="inclusive ISO date")
    published_before: dt.date | None = Field(None, description="inclusive ISO date")
    article_ids: list[str] | None = Field(None, description="only these articles")
    mode: SearchMode = "hybrid"

    @field_validator("query")
    @classmethod
    def _not_too_long(cls, query: str) -> str:
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"query is longer than {MAX_QUERY_CHARS} characters")
        return query


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Query = Field(description="the question", examples=["Where did they meet?"])
    k: int = Field(5, ge=1, le=100, description="number of passages to read")
    source: str | None = Field(None, description="only this outlet (case-insensitive)")
    published_after: dt.date | None = Field(None, description="inclusive ISO date")
    published_before: dt.date | None = Field(None, description="inclusive ISO date")
    article_ids: list[str] | None = Field(None, description="only these articles")

    @field_validator("question")
    @classmethod
    def _not_too_long(cls, question: str) -> str:
        if len(question) > MAX_QUERY_CHARS:
            raise ValueError(f"question is longer than {MAX_QUERY_CHARS} characters")
        return question


class HitOut(BaseModel):
    chunk_id: int
    article_id: str
    title: str
    source: str
    url: str
    published: str
    text: str
    start: int
    end: int
    score: float


class SearchResponse(BaseModel):
    hits: list[HitOut]


class CitationOut(BaseModel):
    article_id: str
    title: str
    source: str
    url: str
    published: str
    sentence: str
    start: int
    end: int
    span_start: int
    span_end: int
    score: float


class AnswerOut(BaseModel):
    question: str
    found: bool
    text: str
    sentence: str
    score: float
    sources_agreeing: int
    citations: list[CitationOut]
    related: list[HitOut]


class ArticleOut(BaseModel):
    article_id: str
    title: str
    text: str
    source: str
    url: str
    published: str
    author: str
    path: str
    content_hash: str


def api_router(assistant: Callable[[], Assistant]) -> APIRouter:
    """Routes under /api. `assistant` returns the current service (it may be reloaded)."""
    router = APIRouter(prefix="/api")

    @router.post("/search", response_model=SearchResponse)
    def search(request: SearchRequest) -> dict[str, Any]:
        hits = assistant().search(
            request.query,
            request.k,
            source=request.source,
            published_after=request.published_after,
            published_before=request.published_before,
            article_ids=request.article_ids,
            mode=request.mode,
        )
        return {"hits": [hit.to_dict() for hit in hits]}

    @router.post("/ask", response_model=AnswerOut)
    def ask(request: AskRequest) -> dict[str, Any]:
        answer = assistant().ask(
            request.question,
            request.k,
            source=request.source,
            published_after=request.published_after,
            published_before=request.published_before,
            article_ids=request.article_ids,
        )
        return answer.to_dict()

    @router.get("/articles/{article_id:path}", response_model=ArticleOut)
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


def create_app(assistant: Callable[[], Assistant]) -> FastAPI:
    app = FastAPI(
        title="qa",
        description="Extractive question answering over news articles, with exact citations.",
        version="0.1.0",
    )
    app.include_router(api_router(assistant))
    add_error_handlers(app)
    return app
