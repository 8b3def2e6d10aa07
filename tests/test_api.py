"""The HTTP API over real HTTP: `qa serve` in a subprocess, the real model, the default corpus."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from qa.cli import _parser
from qa.config import Settings
from qa.service import Assistant, build
from tests.conftest import DEFAULT_CORPUS, REPO
from tests.support.server import Server, running_server

pytestmark = pytest.mark.integration

HIT_FIELDS = {
    "ranks",
    "chunk_id",
    "article_id",
    "title",
    "source",
    "url",
    "published",
    "text",
    "start",
    "end",
    "score",
}
ARTICLE_FIELDS = {
    "article_id",
    "title",
    "text",
    "source",
    "url",
    "published",
    "author",
    "path",
    "content_hash",
}
QUESTION = "Where did Blinken and Lavrov meet?"
MODES = ["hybrid", "dense", "lexical"]
REAL_ID = re.compile(r"\d{3}_[0-9a-f]{16}\.txt")

EXAMPLE_ID = "example-wire.md"
EXAMPLE = """---
title: G20 ministers leave New Delhi without a joint statement
source: Example Wire
published: 2023-03-09
author: Sam Example
---
Foreign ministers of the Group of 20 left New Delhi without agreeing on a joint statement,
after a two-day meeting overshadowed by the war in Ukraine.

India, which holds the presidency this year, had hoped to keep the talks focused on food and
energy security, debt relief for poorer countries and climate finance. Instead, delegates spent
much of the meeting arguing over how to describe the fighting, and the chair issued a summary
in its own name.

Secretary of State Antony Blinken and Foreign Minister Sergey Lavrov spoke briefly on the
sidelines, the first in-person contact between the two since the invasion. Officials on both
sides described the exchange as short and said no negotiations took place.

Diplomats said the outcome mirrored the finance ministers' meeting in Bengaluru a week earlier,
which also ended without a communique. Several delegations praised India for keeping the
discussion going and for securing agreement on a chair's summary that listed the points where
members converged, including the need to protect supply chains for grain and fertiliser.

The next round of G20 ministerial meetings is due to take place later in the spring, before the
leaders' summit in New Delhi in September. Analysts expect the same divisions to return there,
and some warned that the group's habit of issuing joint statements may be coming to an end.
"""


def _serve_takes_a_corpus() -> bool:
    try:
        _parser().parse_args(["serve", "--corpus", "corpus"])
    except SystemExit:
        return False
    return True


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Settings:
    """The default corpus plus one front-matter article, indexed with the real model."""
    root = tmp_path_factory.mktemp("api")
    corpus = root / "corpus"
    shutil.copytree(DEFAULT_CORPUS, corpus)
    (corpus / EXAMPLE_ID).write_text(EXAMPLE, encoding="utf-8")
    settings = Settings(index_dir=root / "index", corpus_dir=corpus)
    report = build(settings, real_embedder)
    assert report.articles == 3 and not report.skipped
    return settings


@pytest.fixture(scope="module")
def server(built: Settings) -> Iterator[Server]:
    # `qa serve` brings the index up to date with its corpus before serving (default: ./corpus),
    # so it is pointed at the corpus the index was built from.
    corpus = ("--corpus", str(built.corpus_dir)) if _serve_takes_a_corpus() else ()
    log = built.index_dir.parent / "server.log"
    with running_server(built.index_dir, log, extra_args=corpus) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as http:
        yield http


def search(client: httpx.Client, **body: Any) -> list[dict[str, Any]]:
    response = client.post("/api/search", json={"query": QUESTION, **body})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def assert_unprocessable(response: httpx.Response, field: str | int) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert any(error["loc"][-1] == field and error["msg"] for error in detail), detail


# --- search -------------------------------------------------------------------------------------


def test_search_returns_hits_with_exactly_the_documented_fields(client: httpx.Client) -> None:
    response = client.post("/api/search", json={"query": QUESTION, "k": 3})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"hits"}
    hits = body["hits"]
    assert len(hits) == 3
    for hit in hits:
        assert set(hit) == HIT_FIELDS
        assert isinstance(hit["chunk_id"], int) and isinstance(hit["score"], float)
        assert isinstance(hit["start"], int) and isinstance(hit["end"], int)
        assert 0 <= hit["start"] < hit["end"]
        assert hit["end"] - hit["start"] == len(hit["text"])
        assert hit["ranks"] and set(hit["ranks"]) <= {"lexical", "sentence", "dense"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any("New Delhi" in hit["text"] for hit in hits)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_is_respected(client: httpx.Client, k: int) -> None:
    assert len(search(client, k=k)) == k


def test_k_defaults_to_five_at_most(client: httpx.Client) -> None:
    response = client.post("/api/search", json={"query": QUESTION})
    assert response.status_code == 200
    assert 0 < len(response.json()["hits"]) <= 5


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_answers(client: httpx.Client, mode: str) -> None:
    hits = search(client, k=3, mode=mode)
    assert 0 < len(hits) <= 3
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any("Lavrov" in hit["text"] for hit in hits)


@pytest.mark.parametrize("source", ["example wire", "Example Wire", "EXAMPLE WIRE"])
@pytest.mark.parametrize("mode", MODES)
def test_source_filter_returns_only_that_outlet(client: httpx.Client, mode, source) -> None:
    hits = search(client, k=3, source=source, mode=mode)
    assert hits
    assert {hit["article_id"] for hit in hits} == {EXAMPLE_ID}
    assert {(hit["source"], hit["published"]) for hit in hits} == {("Example Wire", "2023-03-09")}


def test_unfiltered_search_also_finds_the_other_articles(client: httpx.Client) -> None:
    hits = search(client, k=5)
    assert any(REAL_ID.fullmatch(hit["article_id"]) for hit in hits)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"published_after": "2023-03-09"}, {EXAMPLE_ID}),
        ({"published_before": "2023-03-09"}, {EXAMPLE_ID}),
        ({"published_after": "2023-03-01", "published_before": "2023-03-31"}, {EXAMPLE_ID}),
        ({"published_after": "2023-03-10"}, set()),
        ({"published_before": "2023-03-08"}, set()),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_date_filters_are_inclusive_and_drop_undated_articles(client, mode, dates, expected):
    # The two articles of the default corpus carry no date, so any date filter excludes them.
    hits = search(client, k=3, mode=mode, **dates)
    assert {hit["article_id"] for hit in hits} == expected


def test_article_ids_filter(client: httpx.Client) -> None:
    real_id = next(h["article_id"] for h in search(client, k=5) if h["article_id"] != EXAMPLE_ID)
    hits = search(client, k=3, article_ids=[real_id])
    assert hits and {hit["article_id"] for hit in hits} == {real_id}
    assert search(client, k=3, article_ids=[]) == []
    assert search(client, k=3, article_ids=["nope.txt"]) == []


def test_fts5_syntax_in_a_query_is_not_a_server_error(client: httpx.Client) -> None:
    for query in ['"NEAR( -*', "title:x", "NEAR(a b)", "AND OR NOT", "((", "*", '"', "🙂"]:
        for mode in MODES:
            response = client.post("/api/search", json={"query": query, "mode": mode})
            assert response.status_code == 200, (query, mode, response.text)
            assert isinstance(response.json()["hits"], list)


def test_concurrent_searches_all_succeed_and_agree(client: httpx.Client) -> None:
    queries = [QUESTION, "New START nuclear treaty", "G20 joint statement", "grain fertiliser"]
    expected = {q: search(client, query=q, k=3) for q in queries}

    def ask(query: str) -> tuple[str, int, Any]:
        response = client.post("/api/search", json={"query": query, "k": 3})
        return query, response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, queries * 4))
    for query, status, body in answers:
        assert status == 200, body
        assert [h["chunk_id"] for h in body["hits"]] == [h["chunk_id"] for h in expected[query]]


# --- articles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_hit_points_at_the_exact_characters_of_its_article(client, mode) -> None:
    for hit in search(client, k=5, mode=mode):
        response = client.get(f"/api/articles/{hit['article_id']}")
        assert response.status_code == 200, response.text
        article = response.json()
        assert set(article) == ARTICLE_FIELDS
        assert article["article_id"] == hit["article_id"]
        assert article["title"] == hit["title"]
        assert article["text"][hit["start"] : hit["end"]] == hit["text"]


def test_real_article_ids_look_like_their_file_names(client: httpx.Client) -> None:
    ids = {hit["article_id"] for hit in search(client, k=10, article_ids=None)}
    real = ids - {EXAMPLE_ID}
    assert real and all(REAL_ID.fullmatch(article_id) for article_id in real)
    article = client.get(f"/api/articles/{sorted(real)[0]}").json()
    assert article["path"] == article["article_id"]
    assert article["text"].startswith(article["title"] + "\n\n")
    assert "fbpx" not in article["text"]  # cleaned, not the raw file


def test_the_front_matter_article_keeps_its_metadata(client: httpx.Client) -> None:
    response = client.get(f"/api/articles/{EXAMPLE_ID}")
    assert response.status_code == 200
    article = response.json()
    assert article["title"] == "G20 ministers leave New Delhi without a joint statement"
    assert (article["source"], article["published"]) == ("Example Wire", "2023-03-09")
    assert article["author"] == "Sam Example"
    assert "---" not in article["text"] and "published:" not in article["text"]


@pytest.mark.parametrize("article_id", ["nope.txt", "000_0000000000000000.txt", "a/b/c.md"])
def test_an_unknown_article_is_404_with_a_message(client: httpx.Client, article_id) -> None:
    response = client.get(f"/api/articles/{article_id}")
    assert response.status_code == 404
    assert article_id in response.json()["detail"]


# --- health, stats, docs ------------------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_stats(client: httpx.Client) -> None:
    response = client.get("/api/stats")
    assert response.status_code == 200
    stats = response.json()
    assert stats["articles"] == 3
    assert stats["chunks"] >= 3
    assert stats["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert stats["dimension"] == 384
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stats["built_at"])


def test_stats_name_no_absolute_path_of_the_server(client: httpx.Client, built: Settings) -> None:
    stats = client.get("/api/stats").json()
    # The index lies outside the project (a temporary folder): its path is not shown at all.
    assert "index_dir" in stats and stats["index_dir"] is None
    assert str(built.index_dir.parent) not in json.dumps(stats)


def test_public_path_is_relative_to_the_project(tmp_path: Path, monkeypatch) -> None:
    from ui.api import public_path

    monkeypatch.chdir(tmp_path)
    assert public_path(tmp_path / "index") == "index"
    assert public_path("index") == "index"
    assert public_path(tmp_path.parent / "elsewhere") is None


def test_docs_and_openapi(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "swagger" in docs.text.lower()
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "post" in paths["/api/search"]
    assert {"/api/health", "/api/stats", "/api/articles/{article_id}"} <= set(paths)


# --- validation ---------------------------------------------------------------------------------

LONGEST = ("Blinken Lavrov New Delhi G20 meeting " * 40)[:999] + "x"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   \n\t "}, "query"),
        ({"query": LONGEST + "y"}, "query"),
        ({}, "query"),
        ({"query": None}, "query"),
        ({"query": 42}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": -1}, "k"),
        ({"query": "x", "k": 101}, "k"),
        ({"query": "x", "k": "many"}, "k"),
        ({"query": "x", "published_after": "2023-13-45"}, "published_after"),
        ({"query": "x", "published_after": "yesterday"}, "published_after"),
        ({"query": "x", "published_before": "2023-13-45"}, "published_before"),
        ({"query": "x", "published_before": "yesterday"}, "published_before"),
        ({"query": "x", "bogus": 1}, "bogus"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "mode": ""}, "mode"),
        ({"query": "x", "article_ids": "000.txt"}, "article_ids"),
        # Only control or invisible characters.
        ({"query": "\u0000"}, "query"),
        ({"query": " \u0001\u0002 "}, "query"),
        ({"query": "\u200b\u200d"}, "query"),
        ({"query": "Blinken\u0000Lavrov"}, "query"),
        # No coercion: a string, a boolean or a float is not a count, a number is not a date.
        ({"query": "x", "k": "5"}, "k"),
        ({"query": "x", "k": True}, "k"),
        ({"query": "x", "k": 5.0}, "k"),
        ({"query": "x", "published_after": 1699920000}, "published_after"),
        ({"query": "x", "published_before": True}, "published_before"),
        ({"query": ["x"]}, "query"),
        ({"query": "x", "source": 5}, "source"),
        # Every string has a limit.
        ({"query": "x", "source": "x" * 1001}, "source"),
        ({"query": "x", "source": "Example\u0000Wire"}, "source"),
        ({"query": "x", "article_ids": ["x" * 1001]}, 0),
        ({"query": "x", "article_ids": ["a\u0000b"]}, 0),
        ({"query": "x", "article_ids": [""]}, 0),
        ({"query": "x", "article_ids": [5]}, 0),
    ],
)
def test_invalid_requests_are_422_with_a_message(client: httpx.Client, body, field) -> None:
    assert_unprocessable(client.post("/api/search", json=body), field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "\u0000"}, "question"),
        ({"question": "Who?", "k": "5"}, "k"),
        ({"question": "Who?", "k": False}, "k"),
        ({"question": "Who?", "source": "x" * 1001}, "source"),
    ],
)
def test_invalid_questions_are_422_with_a_message(client: httpx.Client, body, field) -> None:
    assert_unprocessable(client.post("/api/ask", json=body), field)


@pytest.mark.parametrize("route", ["/api/search", "/api/ask"])
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"query": "Blinken \xff\xfe", "question": "x"}', "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"query": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_json_text_is_422_not_400(client, route, raw, message) -> None:
    response = client.post(route, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"][0]["msg"]


def test_a_10_mb_field_is_422_and_a_body_over_the_limit_413(client: httpx.Client) -> None:
    response = client.post("/api/search", json={"query": QUESTION, "source": "x" * 10_000_000})
    assert_unprocessable(response, "source")
    response = client.post("/api/search", json={"query": QUESTION, "source": "x" * 17_000_000})
    assert response.status_code == 413


def test_300000_article_ids_are_searched_not_a_server_error(client: httpx.Client) -> None:
    real_id = next(h["article_id"] for h in search(client, k=5) if h["article_id"] != EXAMPLE_ID)
    many = [f"{i:06d}_{'0' * 16}.txt" for i in range(300_000)]
    response = client.post(
        "/api/search", json={"query": QUESTION, "k": 3, "article_ids": [*many, real_id]}
    )
    assert response.status_code == 200, response.text[:500]
    assert {hit["article_id"] for hit in response.json()["hits"]} == {real_id}
    response = client.post("/api/ask", json={"question": QUESTION, "article_ids": many})
    assert response.status_code == 200 and response.json()["found"] is False


def test_the_query_length_limit_names_the_limit(client: httpx.Client) -> None:
    response = client.post("/api/search", json={"query": LONGEST + "y"})
    assert response.status_code == 422
    assert "1000 characters" in response.json()["detail"][0]["msg"]


def test_a_query_of_exactly_1000_characters_is_accepted(client: httpx.Client) -> None:
    assert len(LONGEST) == 1000 and not LONGEST[0].isspace() and not LONGEST[-1].isspace()
    for mode in MODES:
        response = client.post("/api/search", json={"query": LONGEST, "mode": mode})
        assert response.status_code == 200, response.text
        assert response.json()["hits"]


def test_surrounding_whitespace_does_not_count_towards_the_limit(client: httpx.Client) -> None:
    response = client.post("/api/search", json={"query": f"  {LONGEST}\n", "k": 1})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("k", [1, 100])
def test_k_bounds_are_inclusive(client: httpx.Client, k: int) -> None:
    response = client.post("/api/search", json={"query": QUESTION, "k": k})
    assert response.status_code == 200
    assert 0 < len(response.json()["hits"]) <= k


def test_a_body_that_is_not_json_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/api/search", content=b"query=x", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


# --- what the server shows and stores for anyone -------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/health", "/docs"])
def test_every_response_has_the_security_headers(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    if response.headers["content-type"].startswith("text/html"):
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


@pytest.mark.parametrize("origin", ["http://localhost:9999", "http://127.0.0.1:1", "null"])
@pytest.mark.parametrize("path", ["/config", "/gradio_api/info", "/api/health", "/"])
def test_no_other_origin_may_read_responses(client: httpx.Client, origin: str, path: str) -> None:
    response = client.get(path, headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    preflight = client.options(
        path, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_gradio_stores_no_file_without_an_admin_token(client: httpx.Client, server: Server):
    """This server has no admin token: Gradio's upload route is closed to everyone."""
    gradio_temp = server.log.parent / "gradio"
    before = sorted(gradio_temp.rglob("*"))
    for headers in ({}, {"Authorization": "Bearer anything"}):
        response = client.post(
            "/gradio_api/upload", files={"files": ("a.txt", b"anonymous")}, headers=headers
        )
        assert response.status_code == 403, response.text
        assert "no admin token" in response.json()["detail"]
    for path in ("/gradio_api/file=/etc/hostname", f"/gradio_api/file={REPO}/README.md"):
        assert client.get(path).status_code == 403
    joined = client.post(
        "/gradio_api/queue/join",
        json={
            "data": [{"path": "https://example.com/a.txt", "meta": {"_type": "gradio.FileData"}}],
            "fn_index": 0,
            "session_hash": "anonymous",
        },
    )
    assert joined.status_code == 403
    assert sorted(gradio_temp.rglob("*")) == before


# --- binding ------------------------------------------------------------------------------------


def test_serve_binds_to_loopback_by_default(server: Server) -> None:
    assert _parser().parse_args(["serve"]).host == "127.0.0.1"
    help_text = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert "default 127.0.0.1" in " ".join(help_text.split())
    # The fixture started the server without --host.
    assert f"on http://127.0.0.1:{server.port}" in server.output()


def _outward_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_the_server_is_not_reachable_on_other_interfaces(server: Server) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with pytest.raises(OSError), socket.create_connection((address, server.port), timeout=5):
        pass


@pytest.mark.parametrize("field", ["query", "source"])
def test_a_lone_surrogate_in_the_body_is_422_not_500(client: httpx.Client, field: str) -> None:
    # Valid JSON ("\ud800" is a legal escape) that decodes to a string that is not valid Unicode.
    body = {"query": "Blinken Lavrov"}
    raw = json.dumps({**body, field: "Blinken \ud800 Lavrov"}).encode()
    assert b"\\ud800" in raw
    response = client.post("/api/search", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_query_that_is_not_valid_unicode_does_not_crash_the_service(
    built: Settings, real_embedder, mode: str
) -> None:
    assistant = Assistant.load(built.index_dir, embedder=real_embedder)
    try:
        hits = assistant.search("Blinken caf\udce9 Lavrov", k=2, mode=mode)
    finally:
        assistant.close()
    assert isinstance(hits, list)


def test_serving_an_index_without_naming_its_corpus_keeps_its_articles(
    built: Settings, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(built.index_dir, index)
    # Exactly the documented way to serve an index: `qa serve --index IDX --port PORT`.
    with running_server(index, tmp_path / "server.log") as other:
        stats = httpx.get(f"{other.url}/api/stats", timeout=60).json()
        example = httpx.get(f"{other.url}/api/articles/{EXAMPLE_ID}", timeout=60)
    assert stats["articles"] == 3
    assert example.status_code == 200
