"""What keeps the web app's surface small: the admin token check, the admin session cookie, the
guard in front of Gradio's file routes, and the security headers of every response.

- `token_matches`: the one comparison of a given token with the configured admin token.
- The admin session: `POST /api/admin/session` (ui.admin) checks the bearer token and sets an
  HttpOnly, SameSite=Strict cookie holding `session_value(token)` (an HMAC of the token, never
  the token itself). The chat's token box calls it, so that the browser may upload files.
- `GradioFileGuard`: Gradio's own routes store files for anyone (POST /gradio_api/upload), serve
  them back (/gradio_api/file=...), fetch URLs (/gradio_api/proxy=...) and download the files a
  request names. Without the admin session (or the bearer token) these answer 403; with no
  admin token configured they are closed to everyone. The chat never needs them to answer.
- `SecurityHeaders`: no framing, no MIME sniffing, and a Content-Security-Policy on HTML.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_COOKIE = "qa_admin"
GRADIO_API = "/gradio_api"
MAX_GRADIO_BODY_BYTES = 20_000_000  # a chat request holds the conversation so far

# The Gradio page runs inline scripts and builds functions from strings (its `js` events), so
# 'unsafe-inline' and 'unsafe-eval' stay; everything else is this origin only (fonts excepted:
# the default theme asks Google Fonts for them).
CHAT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
        "font-src 'self' data: https://fonts.gstatic.com",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# FastAPI's /docs and /redoc pages load their scripts and styles from a CDN.
DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src 'self' data: https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)
_DOCS_PATHS = ("/docs", "/redoc")


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


def header_text(value: str) -> str:
    """A header value as the text the client sent: Starlette decodes header bytes as latin-1."""
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def bearer_matches(headers: Headers, token: str | None) -> bool:
    """Whether the request's `Authorization: Bearer ...` header holds the admin token."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(header_text(given), token)


def session_value(token: str) -> str:
    """The admin session cookie's value for `token`: an HMAC, so the cookie never holds the
    token, and changing the token ends every session."""
    key = token.encode("utf-8", "surrogatepass")
    return hmac.new(key, b"qa admin session", hashlib.sha256).hexdigest()


def has_admin_session(scope: Scope, token: str | None) -> bool:
    """Whether the request carries the admin session cookie, sent by a page of this origin.

    A cookie is sent by the browser whoever asks; the Origin check refuses a request that a page
    of another origin (another port of the same host, say) makes the browser send.
    """
    if not token:
        return False
    headers = Headers(scope=scope)
    given = _cookie(headers.get("cookie", ""), ADMIN_COOKIE)
    if given is None or not hmac.compare_digest(given, session_value(token)):
        return False
    origin = headers.get("origin")
    return origin is None or origin == f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


def is_admin(scope: Scope, token: str | None) -> bool:
    """The bearer token or the admin session cookie."""
    return bool(token) and (
        bearer_matches(Headers(scope=scope), token) or has_admin_session(scope, token)
    )


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _normalised(path: str) -> str:
    return re.sub(r"/{2,}", "/", path).rstrip("/") or "/"


class GradioFileGuard:
    """ASGI middleware: Gradio's file routes for the admin only (see the module docstring).

    Refused without the admin session: storing uploads, recording, serving cached files,
    proxying URLs, and any event request whose data names a file (Gradio would download or
    move it into its cache before the handler runs).
    """

    def __init__(self, app: ASGIApp, *, admin_token: str | None):
        self.app = app
        self.admin_token = admin_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GRADIO_API):
            await self.app(scope, receive, send)
            return
        path = _normalised(scope["path"])[len(GRADIO_API) :]
        admin = is_admin(scope, self.admin_token)
        if _file_route(path) and not admin:
            await _forbidden(scope, receive, send, self.admin_token)
            return
        if scope["method"] == "POST" and _event_route(path) and not admin:
            body = await _read_body(receive, MAX_GRADIO_BODY_BYTES)
            if body is None:
                await JSONResponse({"detail": "request too large"}, 413)(scope, receive, send)
                return
            if _names_a_file(body):
                await _forbidden(scope, receive, send, self.admin_token)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


def _file_route(path: str) -> bool:
    return path in ("/upload", "/process_recording") or path.startswith(
        ("/file=", "/file/", "/proxy=")
    )


def _event_route(path: str) -> bool:
    return path == "/queue/join" or path.startswith(("/run/", "/call/", "/api/"))


async def _forbidden(scope: Scope, receive: Receive, send: Send, token: str | None) -> None:
    detail = (
        "file uploads need the admin token (enter it in the Add articles tab)"
        if token
        else "file uploads are disabled: the server has no admin token"
    )
    await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _names_a_file(body: bytes) -> bool:
    """Whether an event request's JSON data holds a Gradio file object (or cannot be read)."""
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        return False  # Gradio refuses it itself, before any file is touched
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            meta = item.get("meta")
            if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData":
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class SecurityHeaders:
    """ASGI middleware: `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and a
    referrer policy on every response, and a Content-Security-Policy on HTML."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(_DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = DOCS_POLICY if docs else CHAT_POLICY
            await send(message)

        await self.app(scope, receive, send_with_headers)
