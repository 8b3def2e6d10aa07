"""Bad input on every door: corpus files, the command line and HTTP, each with the status and the
message it must get. Nothing is lost (the articles and the fixed answer stay) and nothing is
written outside the folder it belongs in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability_load import answer_key, ask
from qa.ingest import NOT_FOLLOWED
from tests.conftest import REPO
from tests.reliability.conftest import AUTH, LiveServer, write_corpus

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

BODY = "The Varrock council approved a new market hall on Tuesday after a two-hour debate."
SECRET = "Zanzibar-7731 secret notes"  # in a file outside the corpus that a link points at


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` (links not followed): relative path → (size, mtime ns)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            status = path.lstat()
            found[path.relative_to(folder).as_posix()] = (status.st_size, status.st_mtime_ns)
    return found


# --- corpus files -------------------------------------------------------------------------------


def _record(**fields: Any) -> bytes:
    return json.dumps({"text": BODY, **fields}).encode()


@dataclass(frozen=True)
class CorpusCase:
    name: str  # the file (or link) in the corpus
    content: bytes | Callable[[Path, Path], None]  # bytes, or makes the entry (path, outside)
    reason: str  # a part of the skip reason; "" when the file must be indexed
    skip_path: str = ""  # the skip's path when it is not `name` (a record or a line)


def _link_to(target: Callable[[Path], Path]) -> Callable[[Path, Path], None]:
    def make(path: Path, outside: Path) -> None:
        path.symlink_to(target(outside))

    return make


def _fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


CORPUS_CASES = [
    CorpusCase("empty.txt", b"", "empty file"),
    CorpusCase("blank.txt", b"   \n\n\t \n", "no text after cleaning"),
    CorpusCase("binary.txt", b"\x00\x01\x02\x03 binary", "binary file (contains NUL bytes)"),
    CorpusCase("utf16.txt", "Title\n\nSome text.".encode("utf-16"), "not UTF-8 text (UTF-16)"),
    CorpusCase("latin1.txt", "Café\n\nUn café à Paris.".encode("latin-1"), "not UTF-8 text"),
    CorpusCase("huge.txt", b"word " * 1_100_000, "larger than 5 MB limit (5.5 MB)"),
    CorpusCase("image.png", b"\x89PNG\r\n\x1a\n", "unsupported extension .png"),
    CorpusCase("NOTES", b"Some notes", "no file extension"),
    CorpusCase("bad-yaml.md", b"---\ntitle: [unclosed\n---\nText.", "invalid front matter"),
    CorpusCase("open-front.md", b"---\ntitle: x\nText.", "no closing '---' line"),
    CorpusCase(
        "unterminated.json",
        b'{"text": "abc',
        "invalid JSON: Unterminated string starting at line 1",
    ),
    CorpusCase("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    CorpusCase("number.json", b"42", "JSON must be an object or a list of objects"),
    CorpusCase("empty-list.json", b"[]", "no records"),
    CorpusCase("no-text.json", b'{"title": "x"}', 'missing "text" field'),
    CorpusCase("text-number.json", b'{"text": 5}', '"text" is not a string (int)'),
    CorpusCase(
        "bad-line.jsonl",
        _record(title="Fine") + b"\n{oops\n",
        "invalid JSON: Expecting property name",
        "bad-line.jsonl:2",
    ),
    CorpusCase(
        "undecodable.jsonl",
        _record(title="Fine") + b'\n{"text": "caf\xe9"}\n',
        "not UTF-8 text",
        "undecodable.jsonl:2",
    ),
    CorpusCase("nul-id.json", _record(id="a\u0000b"), "invalid id 'a\\x00b'"),
    CorpusCase("dotdot-id.json", _record(id="../../etc/passwd"), '".." segment'),
    CorpusCase("absolute-id.json", _record(id="/etc/passwd"), "absolute path"),
    CorpusCase("long-id.json", _record(id="x" * 1001), "longer than 1,000 characters"),
    CorpusCase(
        "duplicate.json",
        _record(id="000_1bfc4a3eb4545184.txt"),
        "duplicate id '000_1bfc4a3eb4545184.txt'",
    ),
    CorpusCase("chrome-only.html", b"<html><body><nav>Home</nav></body></html>", "no text"),
    CorpusCase("readme-link.md", _link_to(lambda _: REPO / "README.md"), NOT_FOLLOWED),
    CorpusCase("secret-link.txt", _link_to(lambda outside: outside / "secret.txt"), NOT_FOLLOWED),
    CorpusCase("dangling.txt", _link_to(lambda outside: outside / "missing.txt"), NOT_FOLLOWED),
    CorpusCase("folder-link", _link_to(lambda outside: outside), NOT_FOLLOWED),
    CorpusCase("pipe.txt", _fifo, "not a regular file"),
    CorpusCase("line\nbreak.txt", f"Line break\n\n{BODY}".encode(), "holds control characters"),
    # Hostile but harmless names: indexed under their own names.
    CorpusCase("-rf.txt", f"Dash name\n\n{BODY}".encode(), ""),
    CorpusCase("spaces and ; quotes '\".txt", f"Odd name\n\n{BODY}".encode(), ""),
    CorpusCase("日本語のニュース.txt", f"Japanese name\n\n{BODY}".encode(), ""),
    CorpusCase("n" * 240 + ".txt", f"Long name\n\n{BODY}".encode(), ""),
]


@pytest.fixture(scope="module")
def bad_corpus_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`qa index build --json` over the default corpus plus every corpus case."""
    root = tmp_path_factory.mktemp("bad-corpus")
    corpus, index, outside = root / "corpus", root / "index", root / "outside"
    write_corpus(corpus, squad_articles=0)
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{SECRET}\n\n{BODY}", encoding="utf-8")
    for case in CORPUS_CASES:
        path = corpus / case.name
        if isinstance(case.content, bytes):
            path.write_bytes(case.content)
        else:
            case.content(path, outside)
    before = tree(root)
    command = [sys.executable, "-m", "qa.cli", "index", "build", "--json"]
    done = subprocess.run(
        [*command, "--corpus", str(corpus), "--index", str(index)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    after = tree(root)
    return {
        "code": done.returncode,
        "stderr": done.stderr,
        "report": json.loads(done.stdout) if done.returncode == 0 else {},
        "changed": {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)},
        "index": index,
    }


@pytest.mark.parametrize("case", CORPUS_CASES, ids=lambda case: case.name[:40])
def test_a_bad_corpus_file_is_skipped_with_its_reason(bad_corpus_build, case) -> None:
    assert bad_corpus_build["code"] == 0, bad_corpus_build["stderr"]
    report = bad_corpus_build["report"]
    skips = {skip["path"]: skip["reason"] for skip in report["skipped"]}
    if not case.reason:
        assert case.name in report["added"], skips.get(case.name)
        return
    path = case.skip_path or case.name
    assert path in skips, f"{path!r} not skipped; skipped: {sorted(skips)}"
    assert case.reason in skips[path]
    assert " at at " not in skips[path]
    # One line each, a control character in the name shown escaped.
    shown = path.replace("\n", "\\n")
    assert f"skipped {shown}: {skips[path]}\n" in bad_corpus_build["stderr"]


def test_a_bad_corpus_loses_nothing_and_writes_only_the_index(bad_corpus_build) -> None:
    report = bad_corpus_build["report"]
    for good in ("000_1bfc4a3eb4545184.txt", "004_9a287114b1b7ba7a.txt", "bad-line.jsonl#1"):
        assert good in report["added"], good
    assert report["articles"] == len(report["added"])
    assert {path.split("/")[0] for path in bad_corpus_build["changed"]} == {"index"}
    # What a link pointed at never became an article.
    from qa.store import IndexReader

    reader = IndexReader.open(bad_corpus_build["index"])
    texts = [article.text for article in reader.articles()]
    reader.close()
    assert not any(SECRET in text or "qa — extractive" in text for text in texts)


# --- command line -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliCase:
    name: str
    args: list[str]  # "{index}", "{corpus}", "{binary}", "{damaged}", "{file}" are filled in
    code: int
    message: str


CLI_CASES = [
    CliCase(
        "missing corpus",
        ["index", "build", "--corpus", "{missing}", "--index", "{missing}/index"],
        2,
        "does not exist",
    ),
    CliCase("missing index", ["index", "stats", "--index", "{missing}"], 2, "no index in"),
    CliCase("damaged index", ["index", "stats", "--index", "{damaged}"], 2, "is damaged"),
    CliCase("bad date", ["search", "x", "--after", "yesterday"], 2, "must be a date like"),
    CliCase("bad mode", ["search", "x", "--mode", "fuzzy"], 2, "invalid choice: 'fuzzy'"),
    CliCase("bad k", ["search", "x", "-k", "many"], 2, "invalid int value: 'many'"),
    CliCase("no question", ["ask"], 2, "give a question"),
    CliCase("binary questions", ["ask", "--file", "{binary}"], 2, "can't decode byte"),
    CliCase(
        "missing questions file",
        ["ask", "--file", "{missing}"],
        2,
        "No such file",
    ),
    CliCase(
        "index is a file",
        ["index", "build", "--corpus", "{corpus}", "--index", "{file}"],
        2,
        "File exists",
    ),
]


@pytest.fixture(scope="module")
def cli_paths(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad-cli")
    damaged = root / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text('{"format_version": 3, "gener', encoding="utf-8")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00\x01 not text")
    (root / "a-file").write_text("not a folder", encoding="utf-8")
    return {
        "index": str(live.index),
        "corpus": str(live.corpus),
        "missing": str(root / "missing"),
        "damaged": str(damaged),
        "binary": str(root / "binary.txt"),
        "file": str(root / "a-file"),
    }


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CLI_CASES])
def test_bad_command_line_input_is_a_message_not_a_traceback(cli_paths, case: CliCase) -> None:
    args = [arg.format(**cli_paths) for arg in case.args]
    if "--index" not in args and args[0] in ("search", "ask"):
        args += ["--index", cli_paths["index"]]
    done = subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == case.code, done.stderr[-2000:]
    assert case.message in done.stderr


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCase:
    name: str
    method: str
    path: str
    status: int
    message: str = ""  # a part of the response body
    request: dict[str, Any] = field(default_factory=dict)  # httpx keyword arguments
    headers_absent: tuple[str, ...] = ()


def _json(raw: bytes) -> dict[str, Any]:
    return {"content": raw, "headers": {"content-type": "application/json"}}


QUERY = "Where did Blinken and Lavrov meet?"
MANY_IDS = [f"{i:06d}-not-an-article.txt" for i in range(300_000)]
FILE_DATA = {"path": "https://example.com/a.txt", "meta": {"_type": "gradio.FileData"}}
HTTP_CASES = [
    HttpCase("300k ids", "POST", "/api/search", 200, '"hits":[]',
             {"json": {"query": QUERY, "article_ids": MANY_IDS}}),
    HttpCase("nul query", "POST", "/api/search", 422, "holds control characters",
             {"json": {"query": "\u0000"}}),
    HttpCase("invisible query", "POST", "/api/search", 422, "no visible characters",
             {"json": {"query": "\u200b\u2060"}}),
    HttpCase("k as text", "POST", "/api/search", 422, "valid integer",
             {"json": {"query": QUERY, "k": "5"}}),
    HttpCase("k as bool", "POST", "/api/ask", 422, "valid integer",
             {"json": {"question": QUERY, "k": True}}),
    HttpCase("k as float", "POST", "/api/search", 422, "valid integer",
             {"json": {"query": QUERY, "k": 5.5}}),
    HttpCase("k huge", "POST", "/api/search", 422, "less than or equal to 100",
             {"json": {"query": QUERY, "k": 10**30}}),
    HttpCase("date as number", "POST", "/api/search", 422, "must be a date",
             {"json": {"query": QUERY, "published_after": 1699920000}}),
    HttpCase("10 MB source", "POST", "/api/search", 422, "at most 1000 characters",
             {"json": {"query": QUERY, "source": "x" * 10_000_000}}),
    HttpCase("17 MB body", "POST", "/api/ask", 413, "",
             {"json": {"question": QUERY, "source": "x" * 17_000_000}}),
    HttpCase("invalid UTF-8", "POST", "/api/search", 422, "not UTF-8 text",
             _json(b'{"query": "\xc3\x28"}')),
    HttpCase("deep JSON", "POST", "/api/ask", 422, "nested too deeply",
             _json(b"[" * 100_000 + b"]" * 100_000)),
    HttpCase("not JSON", "POST", "/api/search", 422, "JSON decode error", _json(b"query=x")),
    HttpCase("empty body", "POST", "/api/search", 422, "Field required", _json(b"")),
    HttpCase("array body", "POST", "/api/search", 422, "valid dictionary", _json(b"[]")),
    HttpCase("text body", "POST", "/api/search", 422, "",
             {"content": b"query", "headers": {"content-type": "text/plain"}}),
    HttpCase("unknown field", "POST", "/api/search", 422, "Extra inputs are not permitted",
             {"json": {"query": QUERY, "admin": True}}),
    HttpCase("nul id filter", "POST", "/api/search", 422, "holds control characters",
             {"json": {"query": QUERY, "article_ids": ["a\u0000b"]}}),
    HttpCase("wrong method", "PUT", "/api/search", 404, "Not Found"),
    HttpCase("nul article", "GET", "/api/articles/a%00b", 404, "no article with id"),
    HttpCase("traversal article", "GET", "/api/articles/..%2F..%2Fetc%2Fpasswd", 404,
             "no article with id"),
    HttpCase("no token", "POST", "/api/articles", 401, "missing or wrong bearer token",
             {"json": {"text": BODY}}),
    HttpCase("wrong token", "POST", "/api/index/rebuild", 401, "missing or wrong bearer token",
             {"headers": {"Authorization": "Bearer nope"}}),
    HttpCase("dotdot id", "POST", "/api/articles", 422, "not a usable id",
             {"json": {"id": "../../x", "text": BODY}, "headers": AUTH}),
    HttpCase("nul id", "POST", "/api/articles", 422, "not a usable id",
             {"json": {"id": "a\u0000b", "text": BODY}, "headers": AUTH}),
    HttpCase("blank text", "POST", "/api/articles", 422, "text is blank",
             {"json": {"text": " \n "}, "headers": AUTH}),
    HttpCase("exe upload", "POST", "/api/articles", 422, "is not allowed",
             {"files": {"file": ("run.exe", b"MZ\x90\x00")}, "headers": AUTH}),
    HttpCase("binary upload", "POST", "/api/articles", 422, "binary file",
             {"files": {"file": ("data.txt", b"ab\x00cd")}, "headers": AUTH}),
    HttpCase("empty upload", "POST", "/api/articles", 422, "empty file",
             {"files": {"file": ("empty.md", b"")}, "headers": AUTH}),
    HttpCase("6 MB upload", "POST", "/api/articles", 413, "byte limit",
             {"files": {"file": ("big.txt", b"word " * 1_200_000)}, "headers": AUTH}),
    HttpCase("plain text article", "POST", "/api/articles", 415, "send a JSON article",
             {"content": b"text", "headers": {**AUTH, "content-type": "text/plain"}}),
    HttpCase("broken JSON article", "POST", "/api/articles", 422, "invalid JSON",
             {"content": b"{", "headers": {**AUTH, "content-type": "application/json"}}),
    # A hostile name is no reason to refuse an article: it is saved under a safe name, in uploads/.
    HttpCase("hostile name", "POST", "/api/articles", 201, '"saved":["uploads/escape-',
             {"files": {"file": ("../../escape.md", f"# Escape\n\n{BODY}".encode())},
              "headers": AUTH}),
    HttpCase("gradio upload", "POST", "/gradio_api/upload", 403, "need the admin token",
             {"files": {"files": ("a.txt", b"anonymous")}}),
    HttpCase("gradio file", "GET", "/gradio_api/file=/etc/passwd", 403, ""),
    HttpCase("gradio repo file", "GET", f"/gradio_api/file={REPO}/README.md", 403, ""),
    HttpCase("gradio proxy", "GET", "/gradio_api/proxy=https://example.com/", 403, ""),
    HttpCase("gradio file event", "POST", "/gradio_api/queue/join", 403, "need the admin token",
             {"json": {"data": [FILE_DATA], "fn_index": 0, "session_hash": "x"}}),
    HttpCase("foreign origin", "GET", "/config", 200, "",
             {"headers": {"Origin": "http://localhost:1"}},
             ("access-control-allow-origin", "access-control-allow-credentials")),
    HttpCase("foreign preflight", "OPTIONS", "/api/search", 400, "Disallowed CORS origin",
             {"headers": {"Origin": "http://localhost:1", "Access-Control-Request-Method": "POST"}},
             ("access-control-allow-origin",)),
]  # fmt: skip


@pytest.fixture(scope="module")
def untouched(live: LiveServer) -> Iterator[dict[str, Any]]:
    """What must hold after all the HTTP cases: the articles, the answer, the files."""
    before = {
        "articles": live.client.get("/api/stats").json()["articles"],
        "files": tree(live.root),
    }
    yield before


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda case: case.name)
def test_bad_http_input_gets_its_status_and_message(live, untouched, case: HttpCase) -> None:
    response = live.client.request(case.method, case.path, **case.request)
    assert response.status_code == case.status, response.text[:500]
    assert case.message in response.text
    for header in case.headers_absent:
        assert header not in response.headers


def test_public_routes_show_no_path_of_the_server(live: LiveServer) -> None:
    stats = live.client.get("/api/stats").json()
    status = live.client.get("/api/index/status").json()
    for shown in (stats, status):
        text = json.dumps(shown)
        assert str(live.root) not in text and not re.search(r'"/(tmp|home|root|work)/', text)
    page = live.client.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_bad_http_input_lost_nothing_and_wrote_nothing(live: LiveServer, untouched) -> None:
    changed = {
        path
        for path, stamp in tree(live.root).items()
        if untouched["files"].get(path) != stamp and path.split("/")[0] != "index"
    }
    # The server's log grows and the accepted upload (the hostile name) is in corpus/uploads;
    # nothing else changed: no refused upload was saved, no Gradio file stored.
    saved = {path for path in changed if re.fullmatch(r"corpus/uploads/escape-\w+\.md", path)}
    assert changed - saved <= {"server.log", "corpus", "corpus/uploads"}, changed
    assert live.client.get("/api/stats").json()["articles"] == untouched["articles"] + len(saved)
    assert answer_key(ask(live.client)) == live.expected
    escaped = [p for p in live.root.parent.rglob("escape*") if p.parent.name != "uploads"]
    assert escaped == []
