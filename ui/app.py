"""The web application: the retrieval API, the admin routes and (later) the chat, on one index.

    app = create_app(Settings(corpus_dir=Path("corpus"), index_dir=Path("index")),
                     admin_token="...")
    uvicorn.run(app, host="127.0.0.1", port=7860)

The index is built (incrementally) before the app is returned, and the app follows every later
build of it: by the admin routes, by `qa index watch`, or by `qa index build` in another process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from qa.config import Settings
from qa.embedding import Embedder
from qa.limits import MAX_FILE_BYTES
from qa.live import IndexUpdater, LiveAssistant
from qa.service import Assistant, make_embedder, make_short_reader
from qa.store import IndexReader
from ui.admin import admin_router
from ui.api import add_error_handlers, api_router

# Called last with the app and the live assistant; mounts the web chat at "/" and returns the
# app (gradio.mount_gradio_app(app, blocks, path="/") does exactly that).
MountChat = Callable[[FastAPI, LiveAssistant], FastAPI | None]


def create_app(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    admin_token: str | None = None,
    max_upload_bytes: int = MAX_FILE_BYTES,
    check_interval: float = 1.0,
    mount_chat: MountChat | None = None,
) -> FastAPI:
    """The app over `settings.index_dir`, brought up to date with `settings.corpus_dir` first.

    Args:
        embedder: shared by searches and builds (default: the configured model).
        admin_token: the bearer token of the admin routes; None disables them (403).
        max_upload_bytes: the largest article upload accepted (413 above it).
        check_interval: how often, at most, a request looks for a new index generation.
        mount_chat: mounts the web chat at "/" (see `MountChat`).

    Raises:
        IndexUnusable: there is no index and no corpus folder to build one from.
    """
    shared: Embedder = embedder or make_embedder(settings)
    # Built once and shared by every generation, like the embedder: a transformers reader
    # loads a model on first use, which should not happen again after each index update.
    short_reader = make_short_reader(settings)

    def make_assistant(reader: IndexReader, embedder: Embedder) -> Assistant:
        return Assistant(reader, embedder, short_reader=short_reader)

    live = LiveAssistant(
        settings.index_dir, shared, check_interval=check_interval, make_assistant=make_assistant
    )
    updater = IndexUpdater(settings, shared, live)
    if Path(settings.corpus_dir).is_dir():
        updater.build_now(operation="startup build")  # a no-op when the index is up to date
    live.get()  # load now, so that a missing or unusable index fails here and not per request

    app = FastAPI(
        title="qa",
        description="Extractive question answering over news articles, with exact citations.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.live = live
    app.state.updater = updater
    app.include_router(api_router(live.get))
    add_error_handlers(app)
    app.include_router(
        admin_router(updater, admin_token=admin_token, max_upload_bytes=max_upload_bytes)
    )
    # The web chat goes at "/", mounted last so that the /api routes above keep precedence.
    if mount_chat is not None:
        app = mount_chat(app, live) or app
    return app
