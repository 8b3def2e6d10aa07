"""The admin routes over real HTTP: `qa serve` as a subprocess, the real model, FAISS and SQLite."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa.store import build_lock
from tests.conftest import REPO
from tests.support.polling import wait_for
from tests.support.server import start_server

pytestmark = pytest.mark.integration

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LUMBRIDGE = "The Lumbridge council approved a 4.2 million pound bridge repair on Tuesday."
DRAYNOR = "The Draynor harbour authority banned jet skis after a collision near the pier on Sunday."
FALADOR = "Falador's mayor opened a new public library holding 80,000 books on Monday."


class AdminServer:
    """`qa serve` on a copy of the default corpus, with an HTTP client for its API."""

    def __init__(self, root: Path, token: str | None):
        self.root = root
        self.corpus, self.index = root / "corpus", root / "index"
        shutil.copytree(REPO / "corpus", self.corpus)
        self.server = start_server(
            self.index, root / "server.log", corpus=self.corpus, admin_token=token
        )
        self.process = self.server.process
        self.client = httpx.Client(base_url=self.server.url, timeout=120)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()

    def search(self, query: str) -> list[dict]:
        response = self.client.post("/api/search", json={"query": query, "k": 3})
        assert response.status_code == 200, response.text
        return response.json()["hits"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AdminServer, AdminServer]]:
    # Both start at once: each loads the model and builds its index.
    admin = AdminServer(tmp_path_factory.mktemp("admin"), TOKEN)
    plain = AdminServer(tmp_path_factory.mktemp("plain"), None)
    try:
        for running in (admin, plain):
            running.server.wait_until_healthy()
        yield admin, plain
    finally:
        admin.stop()
        plain.stop()


@pytest.fixture
def server(servers: tuple[AdminServer, AdminServer]) -> AdminServer:
    return servers[0]


def test_write_routes_are_forbidden_when_no_token_is_configured(servers):
    _, plain = servers
    article = {"text": LUMBRIDGE}
    for headers in ({}, AUTH, {"Authorization": "Bearer"}):
        assert plain.client.post("/api/articles", json=article, headers=headers).status_code == 403
        assert plain.client.post("/api/index/rebuild", headers=headers).status_code == 403
    assert plain.client.get("/api/index/status").status_code == 200
    assert not (plain.corpus / "uploads").exists()


def test_a_missing_or_wrong_token_is_unauthorized(server):
    article = {"text": LUMBRIDGE}
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        response = server.client.post("/api/articles", json=article, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert server.client.post("/api/index/rebuild", headers=headers).status_code == 401
    assert not (server.corpus / "uploads").exists()


def test_a_posted_article_is_searchable_at_once(server):
    response = server.client.post(
        "/api/articles",
        json={"title": "Bridge repair approved", "text": LUMBRIDGE, "source": "Lumbridge Post"},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["saved"]) == 1 and body["saved"][0].startswith("uploads/")
    assert body["articles"] == body["saved"] and body["report"]["added"] == body["saved"]
    assert (server.corpus / body["saved"][0]).is_file()

    hit = server.search("Which council approved a bridge repair?")[0]
    assert "Lumbridge" in hit["text"] and hit["source"] == "Lumbridge Post"


def test_an_uploaded_markdown_file_is_searchable(server):
    files = {"file": ("draynor.md", f"# Jet skis banned\n\n{DRAYNOR}\n".encode(), "text/markdown")}
    response = server.client.post("/api/articles", files=files, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json()["saved"] == ["uploads/draynor.md"]
    assert "jet skis" in server.search("Why were jet skis banned at the harbour?")[0]["text"]


def test_an_upload_over_the_limit_is_refused(server):
    big = b"Word " * 1_200_000  # 6 MB
    response = server.client.post("/api/articles", files={"file": ("big.txt", big)}, headers=AUTH)
    assert response.status_code == 413
    response = server.client.post(  # no Content-Length: counted while reading
        "/api/articles",
        content=iter([big[i : i + 1_000_000] for i in range(0, len(big), 1_000_000)]),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert not list(server.corpus.rglob("big*"))


def test_a_hostile_file_name_stays_inside_uploads(server):
    name = "../../../escape.md"
    files = {"file": (name, f"# Escape\n\nThe escape artist vanished. {LUMBRIDGE}\n".encode())}
    response = server.client.post("/api/articles", files=files, headers=AUTH)
    assert response.status_code == 201, response.text
    (saved,) = response.json()["saved"]
    assert saved.startswith("uploads/escape") and saved.count("/") == 1
    assert (server.corpus / saved).resolve().parent == (server.corpus / "uploads").resolve()
    escaped = [p for p in server.root.parent.rglob("escape*") if "uploads" not in p.parts]
    assert escaped == []


def test_refused_and_unreadable_uploads_say_why(server):
    response = server.client.post(
        "/api/articles", files={"file": ("run.exe", b"MZ\x90\x00")}, headers=AUTH
    )
    assert response.status_code == 422
    assert "not allowed" in response.json()["skipped"][0]["reason"]
    response = server.client.post(
        "/api/articles", files={"file": ("data.txt", b"abc\x00\x01binary")}, headers=AUTH
    )
    assert response.status_code == 422
    assert response.json()["skipped"] == [
        {"path": "data.txt", "reason": "binary file (contains NUL bytes)"}
    ]
    response = server.client.post("/api/articles", json={"title": "no text"}, headers=AUTH)
    assert response.status_code == 422 and "text" in response.json()["detail"]
    assert not list((server.corpus / "uploads").glob("run*"))
    assert not list((server.corpus / "uploads").glob("data*"))


def test_a_rebuild_runs_in_the_background_and_a_second_is_refused(server):
    # Holding the build lock (as another build would) keeps the first rebuild running.
    with build_lock(server.index):
        first = server.client.post("/api/index/rebuild", headers=AUTH)
        assert first.status_code == 202, first.text
        assert server.client.get("/api/index/status").json()["state"] == "running"
        second = server.client.post("/api/index/rebuild", headers=AUTH)
        assert second.status_code == 409
        assert second.json()["status"]["state"] == "running"

    def finished() -> dict | None:
        status = server.client.get("/api/index/status").json()
        return status if status["state"] != "running" else None

    status = wait_for(finished, "the rebuild to finish", timeout=120)
    assert status["state"] == "idle" and status["last_error"] is None
    assert status["operation"] == "rebuild" and status["finished_at"]
    assert status["last_report"]["removed"] == []


def test_an_index_built_by_another_process_is_picked_up_without_restart(server):
    pid = server.process.pid
    (server.corpus / "falador.txt").write_text(f"Library opens\n\n{FALADOR}\n", encoding="utf-8")
    command = ["index", "build", "--corpus", str(server.corpus), "--index", str(server.index)]
    built = subprocess.run(
        [sys.executable, "-m", "qa.cli", *command],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert "added 1," in built.stdout

    def found() -> bool:
        return any("Falador" in hit["text"] for hit in server.search("Who opened a library?"))

    wait_for(found, "the server to serve the new generation", timeout=60)
    assert server.process.poll() is None and server.process.pid == pid


def test_a_non_ascii_token_is_compared_as_the_utf8_bytes_a_client_sends():
    from ui.security import header_text as _header_text
    from ui.security import token_matches

    # Starlette hands a header over decoded as latin-1; the client sent UTF-8.
    header = " sécret ".encode().decode("latin-1")
    assert token_matches(_header_text(header), "sécret")
    assert not token_matches(_header_text(header), "secret")
    assert not token_matches(_header_text("s\xe9cret"), "sécret")  # latin-1 bytes: not the token
    assert not token_matches(_header_text("\xff\xfe"), "\ufffd\ufffd")  # undecodable bytes


@pytest.mark.parametrize(
    "article_id", ["../../etc/passwd", "a\u0000b", "/abs/olute", "line\nbreak", "./x"]
)
def test_an_article_id_that_is_no_usable_id_is_refused(server, article_id):
    response = server.client.post(
        "/api/articles", json={"id": article_id, "text": LUMBRIDGE}, headers=AUTH
    )
    assert response.status_code == 422, response.text
    assert "id: not a usable id" in response.json()["detail"]


def test_the_admin_session_cookie_lets_a_browser_upload_files(servers):
    admin, plain = servers
    assert plain.client.post("/api/admin/session", headers=AUTH).status_code == 403
    assert admin.client.post("/api/admin/session").status_code == 401
    wrong = {"Authorization": "Bearer wrong-token"}
    assert admin.client.post("/api/admin/session", headers=wrong).status_code == 401

    def upload(client: httpx.Client, **headers: str) -> httpx.Response:
        return client.post(
            "/gradio_api/upload", files={"files": ("a.txt", b"hello")}, headers=headers
        )

    with httpx.Client(base_url=admin.server.url, timeout=60) as browser:
        assert upload(browser).status_code == 403
        response = browser.post("/api/admin/session", headers=AUTH)
        assert response.status_code == 204
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        stored = upload(browser)
        assert stored.status_code == 200, stored.text
        assert upload(browser, origin=admin.server.url).status_code == 200
        # A page of another origin (another port of this host) cannot use the cookie.
        assert upload(browser, origin="http://127.0.0.1:1").status_code == 403
        (path,) = stored.json()
        assert Path(path).is_relative_to(admin.root / "gradio")
        assert browser.get(f"/gradio_api/file={path}").status_code == 200
        assert admin.client.get(f"/gradio_api/file={path}").status_code == 403  # no cookie
        assert browser.delete("/api/admin/session").status_code == 204
        assert upload(browser).status_code == 403
    assert upload(admin.client, Authorization=f"Bearer {TOKEN}").status_code == 200
    assert upload(plain.client, Authorization=f"Bearer {TOKEN}").status_code == 403


def test_build_errors_and_server_paths_need_the_token(server):
    """A failed build's error names the corpus folder: only the admin sees it."""
    moved = server.root / "corpus-away"
    server.corpus.rename(moved)
    try:
        assert server.client.post("/api/index/rebuild", headers=AUTH).status_code == 202

        def failed() -> dict | None:
            status = server.client.get("/api/index/status", headers=AUTH).json()
            return status if status["state"] == "failed" else None

        status = wait_for(failed, "the rebuild to fail", timeout=120)
        assert str(server.corpus) in status["last_error"]
        public = server.client.get("/api/index/status").json()
        assert public["state"] == "failed"
        assert public["last_error"] == "hidden: send the admin token to see it"
        assert str(server.root) not in json.dumps(public)
        assert not re.search(r'"/(tmp|home|root|work)/', json.dumps(public))
    finally:
        moved.rename(server.corpus)
    assert server.client.post("/api/index/rebuild", headers=AUTH).status_code == 202

    def idle() -> dict | None:
        status = server.client.get("/api/index/status").json()
        return status if status["state"] == "idle" else None

    assert wait_for(idle, "the rebuild to succeed", timeout=120)["last_error"] is None


def test_public_status_scrubs_paths():
    from ui.admin import public_status

    folders = [Path("/srv/qa/index"), Path("/srv/qa/corpus")]
    status = {
        "state": "failed",
        "last_error": "ValueError: corpus folder /srv/qa/corpus does not exist",
        "reload_error": None,
        "last_report": {"full_reason": "existing index unusable (index in /srv/qa/index is bad)"},
        "last_summary": "added 0 (full rebuild: existing index unusable (/var/x/y.sqlite3 bad))",
    }
    public = public_status(status, folders)
    assert public["last_error"] == "hidden: send the admin token to see it"
    assert public["reload_error"] is None
    assert public["last_report"]["full_reason"] == "existing index unusable (index in … is bad)"
    assert "/var" not in public["last_summary"] and "/srv" not in json.dumps(public)
