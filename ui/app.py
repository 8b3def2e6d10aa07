"""The web application: the retrieval API, the admin routes and the chat, on one index.

    app = create_app(Settings.from_env())
    uvicorn.run(app, host="127.0.0.1", port=7860)

The index is built (incrementally) before the app is returned, and the app follows every later
build of it: by the admin routes, by `qa index watch`, or by `qa index build` in another process.

Every response carries the security headers of `ui.security.SecurityHeaders`; Gradio's file
routes need the admin token (`ui.security.GradioFileGuard`); no other origin may read
responses (an empty CORS allow-list, which also turns Gradio's own CORS handling off).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from qa.application import Application, make_application
from qa.config import Settings
from ui.admin import admin_router
from ui.api import add_error_handlers, api_router
from ui.security import GradioFileGuard, SecurityHeaders


def create_app(
    settings: Settings, *, application: Application | None = None, chat: bool = True
) -> FastAPI:
    """The app over `settings.index_dir` (see `qa.application.make_application`).

    Args:
        application: the running parts, when the caller made them already.
        chat: mount the web chat at "/".

    Raises:
        IndexUnusable: there is no index and no corpus folder to build one from.
    """
    application = application or make_application(settings)
    app = FastAPI(
        title="qa",
        description="Extractive question answering over news articles, with exact citations.",
        version="0.1.0",
    )
    app.state.application = application
    app.include_router(api_router(application.live.get))
    add_error_handlers(app)
    app.include_router(
        admin_router(
            application.updater,
            admin_token=settings.admin_token,
            max_upload_bytes=settings.max_file_bytes,
        )
    )
    if chat:
        from ui.chat import mount_chat

        # Mounted last, at "/", so that the /api routes above keep precedence.
        app = mount_chat(app, application)
    # The last one added runs first: headers on every answer, the guard's 403s included.
    app.add_middleware(CORSMiddleware, allow_origins=[])
    app.add_middleware(GradioFileGuard, admin_token=settings.admin_token)
    app.add_middleware(SecurityHeaders)
    return app
