"""The web chat: a Gradio app over the live assistant, mounted at "/" beside the /api routes.

    app = create_app(Settings.from_env())  # ui.app: the API, then this chat at "/"

Each reply quotes the supporting sentence with the short answer in bold, numbered citation
markers and a sources panel; "No answer in the articles." comes with the closest passages.
Short follow-ups ("and when was that?") are resolved against the previous question
(`qa.conversation`). An "Add articles" tab, present only when the server has an admin token
(and asking for it), saves pasted or uploaded articles through the `IndexUpdater` and rebuilds.

This module wires the page together; the HTML and its escaping are in `ui.rendering`, the
checks of what the forms send in `ui.forms`, the start screen's questions in `ui.examples`.
`chat_turn` and `add_articles_steps` are the handlers, tested without a browser
(tests/test_chat.py); tests/test_chat_browser.py drives the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from qa.conversation import resolve_follow_up
from qa.limits import MAX_QUERY_CHARS
from qa.live import UPLOAD_SUFFIXES, AddResult, IndexUpdater
from ui.examples import example_questions
from ui.forms import DEFAULT_K, MAX_K, clamp_k, date_range, pasted_record, uploads_from_paths
from ui.rendering import (
    CSS,
    escape_text,
    format_add_result,
    format_answer,
    format_error,
    format_question,
    format_status,
    start_screen,
    stats_line,
)
from ui.security import token_matches

if TYPE_CHECKING:
    from fastapi import FastAPI
    from gradio.components.chatbot import ExampleMessage

    from qa.application import Application
    from qa.service import Assistant

log = logging.getLogger(__name__)

ALL_OUTLETS = ""  # the outlet filter's value for "every outlet"
ASK_CONCURRENCY = 4  # questions answered at once (Gradio's default is one at a time)

# Runs in the browser whenever the admin token box changes: asks the server for the admin
# session cookie (ui.security), without which Gradio's upload route refuses the chosen files.
# A header carries bytes: the token's UTF-8 bytes as one character each (the server reads them
# back as UTF-8). The relative URL keeps working behind a proxy that serves the app in a folder.
SESSION_JS = """
async (token) => {
  token = (token || "").trim();
  let response;
  try {
    response = await fetch("api/admin/session", {
      method: token ? "POST" : "DELETE",
      headers: token ? {Authorization: "Bearer " + unescape(encodeURIComponent(token))} : {},
      credentials: "same-origin",
    });
  } catch (error) {
    return "The token could not be checked: " + error;
  }
  if (!token) return "";
  return response.ok
    ? "Admin token accepted: you can upload files."
    : "Wrong admin token: files cannot be uploaded.";
}
"""


def build_blocks(
    assistant: Callable[[], Assistant],
    *,
    updater: IndexUpdater | None = None,
    admin_token: str | None = None,
) -> gr.Blocks:
    """The chat UI over `assistant()` (called per request: it follows index updates).

    The "Add articles" tab exists only with both an `updater` and an `admin_token`.
    """
    adding_to = updater if admin_token else None  # no token to ask for: no way to add
    empty_stats = {"articles": 0, "built_at": ""}
    # Examples read every article: once per index build, not once per page load.
    examples_cache: dict[tuple[Any, ...], list[ExampleMessage]] = {}

    def outlet_choices(current: Assistant) -> list[tuple[str, str]]:
        # Shown as text by the dropdown (never as HTML), so outlet names need no escaping.
        return [("All outlets", ALL_OUTLETS), *((s, s) for s in current.sources())]

    def refreshed(current: Assistant) -> tuple[Any, Any, Any]:
        stats = current.stats()
        key = (stats.get("index_dir"), stats.get("built_at"), stats.get("articles"))
        if key not in examples_cache:
            examples_cache.clear()
            examples_cache[key] = [{"text": q} for q in example_questions(current.articles())]
        examples = examples_cache[key]
        return (
            # Only the props named here change: the conversation stays.
            gr.Chatbot(placeholder=start_screen(stats), examples=examples or None),
            gr.Dropdown(choices=outlet_choices(current)),
            escape_text(stats_line(stats)),
        )

    def on_load() -> tuple[Any, Any, Any]:
        return refreshed(assistant())

    def respond(
        message: str,
        history: list[dict[str, Any]],
        previous: list[str],
        k: float,
        outlet: str,
        after: str,
        before: str,
    ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        history = list(history or [])
        previous = list(previous or [])
        history, previous = chat_turn(
            assistant,
            message,
            history,
            previous,
            k=k,
            outlet=outlet,
            after=after,
            before=before,
        )
        return "", history, history, previous

    def on_example(
        selection: gr.SelectData,
        history: list[dict[str, Any]],
        previous: list[str],
        k: float,
        outlet: str,
        after: str,
        before: str,
    ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        value = selection.value
        text = value.get("text", "") if isinstance(value, dict) else str(value or "")
        return respond(text, history, previous, k, outlet, after, before)

    def clear() -> tuple[list[Any], list[Any], list[str], str]:
        return [], [], [], ""

    with gr.Blocks(
        title="qa: questions about the news",
        analytics_enabled=False,
        delete_cache=(3_600, 86_400),  # uploaded files: hourly, remove those older than a day
    ) as blocks:
        gr.Markdown("## Questions about the news", elem_id="qa-header")
        stats_box = gr.Markdown(elem_id="qa-stats", latex_delimiters=[])
        history_state = gr.State([])
        previous_state = gr.State([])
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"):
                chatbot = gr.Chatbot(
                    elem_id="qa-chat",
                    label="Conversation",
                    height=560,
                    latex_delimiters=[],
                    sanitize_html=True,
                    allow_tags=False,
                    feedback_options=None,
                    placeholder=start_screen(empty_stats),
                    # No copy buttons: they would copy the escaped markup, not the text.
                    buttons=[],
                )
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="qa-question",
                        placeholder="Ask a question about the articles: who, what, where, when…",
                        show_label=False,
                        scale=5,
                        max_length=MAX_QUERY_CHARS,
                        autofocus=True,
                    )
                    ask_button = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask")
                    new_button = gr.Button("New conversation", scale=1, elem_id="qa-new")
                with gr.Accordion("Settings", open=False, elem_id="qa-settings"):
                    k_slider = gr.Slider(
                        1, MAX_K, value=DEFAULT_K, step=1, label="Passages to read (k)"
                    )
                    outlet = gr.Dropdown(
                        choices=[("All outlets", ALL_OUTLETS)],
                        value=ALL_OUTLETS,
                        label="Outlet",
                        elem_id="qa-outlet",
                    )
                    with gr.Row():
                        after = gr.Textbox(
                            label="Published after", placeholder="YYYY-MM-DD", elem_id="qa-after"
                        )
                        before = gr.Textbox(
                            label="Published before",
                            placeholder="YYYY-MM-DD",
                            elem_id="qa-before",
                        )
            if adding_to is not None:
                add_outputs = _add_articles_tab()

        settings_inputs = [k_slider, outlet, after, before]
        turn_outputs = [question, chatbot, history_state, previous_state]
        # Questions run side by side (like the API's), a few at a time across all triggers.
        for trigger in (question.submit, ask_button.click):
            trigger(
                respond,
                inputs=[question, history_state, previous_state, *settings_inputs],
                outputs=turn_outputs,
                api_visibility="private",
                concurrency_limit=ASK_CONCURRENCY,
                concurrency_id="ask",
            )
        chatbot.example_select(
            on_example,
            inputs=[history_state, previous_state, *settings_inputs],
            outputs=turn_outputs,
            api_visibility="private",
            concurrency_limit=ASK_CONCURRENCY,
            concurrency_id="ask",
        )
        new_button.click(
            clear,
            outputs=[chatbot, history_state, previous_state, question],
            api_visibility="private",
        )
        # The chat's own trash button empties the messages; the conversation goes with them.
        chatbot.clear(
            clear,
            outputs=[chatbot, history_state, previous_state, question],
            api_visibility="private",
        )
        blocks.load(on_load, outputs=[chatbot, outlet, stats_box], api_visibility="private")
        if adding_to is not None:
            button, inputs, status, clear_on_success, token_status = add_outputs
            # In the browser only (no server function): sets or clears the session cookie.
            # `change`, not `input`: a pasted or filled-in token counts too.
            inputs[0].change(
                None, inputs=[inputs[0]], outputs=[token_status], js=SESSION_JS, queue=False
            )

            def add(*values: Any) -> Iterator[tuple[Any, ...]]:
                unchanged = (gr.skip(),) * (3 + len(clear_on_success))
                for message, result in add_articles_steps(adding_to, admin_token, *values):
                    if result is None:
                        yield (message, *unchanged)
                        continue
                    chat, outlet_update, stats = refreshed(assistant())
                    # After a success the form is emptied for the next article.
                    cleared = ("", "", None) if result.articles else unchanged[3:]
                    yield (message, chat, outlet_update, stats, *cleared)

            button.click(
                add,
                inputs=inputs,
                outputs=[status, chatbot, outlet, stats_box, *clear_on_success],
                api_visibility="private",
                concurrency_limit=1,
            )
    return blocks


def _add_articles_tab() -> tuple[Any, list[Any], Any, list[Any], Any]:
    """The "Add articles" tab's components: (button, inputs, status box, boxes to clear, the
    token's status box)."""
    suffixes = sorted(UPLOAD_SUFFIXES)
    with gr.Tab("Add articles", id="add"):
        gr.Markdown(
            "Paste an article or upload files ("
            + ", ".join(suffixes)
            + "). They are saved into the corpus and indexed; the next question sees them."
        )
        token = gr.Textbox(label="Admin token", type="password", elem_id="qa-add-token")
        token_status = gr.Markdown(elem_id="qa-add-token-status", latex_delimiters=[])
        with gr.Row():
            title = gr.Textbox(label="Title", elem_id="qa-add-title", scale=3)
            source = gr.Textbox(label="Outlet (optional)", elem_id="qa-add-source")
            published = gr.Textbox(
                label="Published (optional)", placeholder="YYYY-MM-DD", elem_id="qa-add-published"
            )
        url = gr.Textbox(label="URL (optional)", elem_id="qa-add-url")
        text = gr.Textbox(label="Text", lines=8, elem_id="qa-add-text")
        files = gr.File(
            label="Or upload files",
            file_count="multiple",
            file_types=suffixes,
            elem_id="qa-add-files",
        )
        button = gr.Button("Add articles", variant="primary", elem_id="qa-add-button")
        status = gr.Markdown(elem_id="qa-add-result", latex_delimiters=[])
    inputs = [token, title, text, source, url, published, files]
    return button, inputs, status, [title, text, files], token_status


def add_articles_steps(
    updater: IndexUpdater,
    admin_token: str | None,
    token: str,
    title: str,
    text: str,
    source: str,
    url: str,
    published: str,
    files: Sequence[str | Path] | None,
) -> Iterator[tuple[str, AddResult | None]]:
    """The messages of one "Add articles" click, as (HTML, result or None) pairs."""
    if not token_matches(token, admin_token):
        yield format_status("Wrong or missing admin token: nothing was added.", "error"), None
        return
    try:
        record = pasted_record(title, text, source, url, published)
        uploads = uploads_from_paths(files, updater.settings.max_file_bytes)
    except (ValueError, OSError) as error:
        yield format_status(str(error), "error"), None
        return
    records = [record] if record else []
    count = len(records) + len(uploads)
    if not count:
        yield format_status("Paste an article's text or choose files to upload.", "error"), None
        return
    noun = "article" if count == 1 else "articles"
    yield format_status(f"Saving and indexing {count} {noun}… (this can take a while)"), None
    try:
        result = updater.add_articles(uploads, records)
    except ValueError as error:
        yield format_status(f"Could not add: {error}", "error"), None
        return
    except Exception as error:  # the files are saved; the next build will index them
        log.exception("adding articles failed")
        yield format_status(f"The index build failed: {error}", "error"), None
        return
    yield format_add_result(result), result


def chat_turn(
    assistant: Callable[[], Assistant],
    message: str,
    history: list[dict[str, Any]],
    previous: list[str],
    *,
    k: object = DEFAULT_K,
    outlet: str | None = None,
    after: object = None,
    before: object = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One question and its reply appended to `history` (chat messages) and `previous`
    (the questions asked, follow-ups resolved). Problems become replies, never exceptions."""
    question = (message or "").strip()
    if not question:
        return history, previous
    history = [*history, {"role": "user", "content": format_question(question)}]
    if len(question) > MAX_QUERY_CHARS:
        reply = format_error(f"The question is longer than {MAX_QUERY_CHARS:,} characters.")
        return [*history, {"role": "assistant", "content": reply}], previous
    try:
        published_after, published_before = date_range(after, before)
    except ValueError as error:
        return [*history, {"role": "assistant", "content": format_error(str(error))}], previous
    resolved = resolve_follow_up(question, previous)
    try:
        answer = assistant().ask(
            resolved,
            clamp_k(k),
            source=outlet or None,
            published_after=published_after,
            published_before=published_before,
        )
    except ValueError as error:
        return [*history, {"role": "assistant", "content": format_error(str(error))}], previous
    except Exception as error:
        log.exception("answering %r failed", resolved)
        reply = format_error(f"Something went wrong while answering: {type(error).__name__}.")
        return [*history, {"role": "assistant", "content": reply}], previous
    reply = format_answer(answer, read_as=resolved if resolved != question else None)
    return [*history, {"role": "assistant", "content": reply}], [*previous, resolved]


def mount_chat(app: FastAPI, application: Application) -> FastAPI:
    """The chat over `application`, mounted at "/" of `app`.

    The "Add articles" tab is there only when the settings hold an admin token, and asks for it.
    """
    settings = application.settings
    blocks = build_blocks(
        application.live.get, updater=application.updater, admin_token=settings.admin_token
    )
    return gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        ssr_mode=False,
        max_file_size=settings.max_file_bytes,
        css=CSS,
        footer_links=["gradio"],
    )
