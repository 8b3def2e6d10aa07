"""The web chat: a Gradio app over the live assistant, mounted at "/" beside the /api routes.

    token = os.environ.get("QA_ADMIN_TOKEN") or None
    app = create_app(settings, admin_token=token, mount_chat=chat_mounter(admin_token=token))

Each reply quotes the supporting sentence with the short answer in bold, numbered citation
markers and a sources panel; "No answer in the articles." comes with the closest passages.
Short follow-ups ("and when was that?") are resolved against the previous question
(`qa.conversation`). An "Add articles" tab, present only when the server has an admin token
(and asking for it), saves pasted or uploaded articles through the `IndexUpdater` and rebuilds.

Safety: Gradio renders chat messages and Markdown panels as Markdown with inline HTML. Every
string that comes from an article, an upload or the user (titles, sentences, outlets, file
names, skip reasons, questions) goes through `escape_text`, which writes each ASCII
punctuation character as a numeric character reference: neither the Markdown parser nor the
browser's HTML parser sees any syntax in it, so `<script>`, `<img onerror=…>`, `**`, `[x](…)`
and `$$…$$` all show as the characters they are. Links are built only from http(s) URLs
(`safe_url`). Gradio's own HTML sanitizer stays on underneath, and LaTeX rendering is off.

The formatting functions are pure and take the `Answer`, `Hit` and `AddResult` records, so they
are tested without a browser (tests/test_chat.py); tests/test_chat_browser.py drives the page.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import secrets
import string
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import gradio as gr

from qa.conversation import resolve_follow_up
from qa.live import UPLOAD_SUFFIXES, AddResult, IndexUpdater, Upload
from qa.types import Answer, Article, Citation, Hit

if TYPE_CHECKING:
    from fastapi import FastAPI

    from qa.live import LiveAssistant
    from qa.service import Assistant
    from ui.app import MountChat

log = logging.getLogger(__name__)

NO_ANSWER = "No answer in the articles."
ALL_OUTLETS = ""  # the outlet filter's value for "every outlet"
DEFAULT_K = 5
MAX_K = 20
MAX_QUESTION_CHARS = 1_000
MAX_EXAMPLES = 4
RELATED_SHOWN = 3
PASSAGE_CHARS = 320
ASK_CONCURRENCY = 4  # questions answered at once (Gradio's default is one at a time)
MAX_FIELD_CHARS = 1_000  # title, outlet, url and date of a pasted article (as the API allows)

# Every ASCII punctuation character: all of HTML's and Markdown's syntax is among them.
_ENTITIES = {ord(c): f"&#{ord(c)};" for c in string.punctuation}
_SPACE = re.compile(r"\s+")
_URL_SAFE = "/?:@&=+$,;-_.!~*#%[]"  # kept as they are; quotes, <>, (), `, \ and spaces encoded


# --- escaping -------------------------------------------------------------------------------------


def escape_text(text: object, *, strip: bool = True) -> str:
    """`text` as inert text for Gradio's Markdown-with-HTML renderer, on one line.

    Whitespace runs become one space (a blank line would end an HTML block and start Markdown);
    control characters are dropped; every ASCII punctuation character becomes a numeric
    character reference, which the browser shows as that character and which neither Markdown
    nor HTML reads as syntax.
    """
    value = "" if text is None else str(text)
    value = "".join(c for c in value if c.isspace() or unicodedata.category(c) != "Cc")
    value = _SPACE.sub(" ", value)
    if strip:
        value = value.strip()
    return value.translate(_ENTITIES)


def safe_url(url: object) -> str | None:
    """`url` ready for an href attribute if it is an absolute http(s) URL, else None.

    Anything else (javascript:, data:, relative or protocol-relative URLs, URLs with spaces
    or control characters) gives None, and the caller shows no link.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > 2_000:
        return None
    if any(c.isspace() or unicodedata.category(c)[0] == "C" for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return html.escape(quote(url, safe=_URL_SAFE), quote=True)


def _link(text: str, url: str) -> str:
    """`text` (already escaped) as a link to `url` when it is a safe URL, else as it is."""
    href = safe_url(url)
    if href is None:
        return text
    return f'<a href="{href}" target="_blank" rel="noopener noreferrer nofollow">{text}</a>'


def _shorten(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip() + " …"


# --- answers --------------------------------------------------------------------------------------


def highlight(sentence: str, start: int, end: int) -> str:
    """`sentence` escaped, with `sentence[start:end]` in bold when that is a non-empty span."""
    if not 0 <= start < end <= len(sentence):
        return escape_text(sentence)
    before = escape_text(sentence[:start], strip=False).lstrip()
    middle = escape_text(sentence[start:end])
    after = escape_text(sentence[end:], strip=False).rstrip()
    return f"{before}<strong>{middle}</strong>{after}"


def citation_sentence(citation: Citation) -> str:
    """The citation's sentence, escaped, with its own short-answer span in bold."""
    return highlight(
        citation.sentence,
        citation.span_start - citation.start,
        citation.span_end - citation.start,
    )


def source_line(title: str, source: str, published: str, url: str) -> str:
    """ "Title — Outlet · 2023-03-02", the title a link when there is a safe URL."""
    shown_title = escape_text(title) or "Untitled article"
    line = f'<span class="qa-title">{_link(shown_title, url)}</span>'
    meta = " · ".join(escape_text(x) for x in (source, published) if x and x.strip())
    if meta:
        line += f' <span class="qa-meta">— {meta}</span>'
    return line


def format_sources(citations: Sequence[Citation]) -> str:
    """The sources panel: per citation its marker, title, outlet, date, link and sentence."""
    items = []
    for number, citation in enumerate(citations, 1):
        head = source_line(citation.title, citation.source, citation.published, citation.url)
        items.append(
            f'<div class="qa-source"><p><span class="qa-marker">[{number}]</span> {head}</p>'
            f'<blockquote class="qa-quote">{citation_sentence(citation)}</blockquote></div>'
        )
    count = len(citations)
    label = f"Sources ({count})" if count != 1 else "Source (1)"
    return f'<details class="qa-sources" open><summary>{label}</summary>{"".join(items)}</details>'


def format_related(hits: Sequence[Hit], limit: int = RELATED_SHOWN) -> str:
    """The closest passages, for an unanswered question."""
    if not hits:
        return ""
    items = []
    for hit in hits[:limit]:
        head = source_line(hit.title, hit.source, hit.published, hit.url)
        passage = escape_text(_shorten(hit.text, PASSAGE_CHARS))
        items.append(
            f'<div class="qa-passage"><p>{head}</p>'
            f'<blockquote class="qa-quote">{passage}</blockquote></div>'
        )
    return (
        '<details class="qa-related" open><summary>Closest passages</summary>'
        f"{''.join(items)}</details>"
    )


def _read_as(resolved: str | None) -> str:
    if not resolved:
        return ""
    return f'<p class="qa-read-as"><em>Read as: {escape_text(resolved)}</em></p>'


def format_answer(answer: Answer, *, read_as: str | None = None) -> str:
    """The chat reply for `answer` (HTML on one line; every article string escaped).

    Found: the supporting sentence with the short answer in bold, citation markers [1] [2] …,
    "N sources agree" when more than one article supports it, and the sources panel. Not
    found: "No answer in the articles." and the closest passages. `read_as`: the question as
    resolved from a follow-up, shown so the reader knows what was asked.
    """
    if not answer.found:
        return (
            f'<div class="qa-reply qa-no-answer">{_read_as(read_as)}'
            f'<p class="qa-none">{NO_ANSWER}</p>{format_related(answer.related)}</div>'
        )
    citations = answer.citations
    if citations:
        first = citations[0]
        sentence = highlight(
            answer.sentence, first.span_start - first.start, first.span_end - first.start
        )
    else:
        sentence = escape_text(answer.sentence)
        if answer.text:
            sentence = highlight(answer.sentence, *_find(answer.sentence, answer.text))
    markers = " ".join(
        f'<span class="qa-marker">[{number}]</span>' for number in range(1, len(citations) + 1)
    )
    parts = [
        f'<div class="qa-reply qa-found">{_read_as(read_as)}',
        f'<blockquote class="qa-sentence">{sentence} {markers}</blockquote>',
    ]
    if answer.sources_agreeing > 1:
        parts.append(f'<p class="qa-agree">{answer.sources_agreeing} sources agree.</p>')
    if citations:
        parts.append(format_sources(citations))
    parts.append("</div>")
    return "".join(parts)


def _find(sentence: str, text: str) -> tuple[int, int]:
    start = sentence.find(text)
    return (start, start + len(text)) if start >= 0 else (0, 0)


def format_error(message: str) -> str:
    """A problem with the question or the settings, as a chat reply."""
    return f'<div class="qa-reply qa-error"><p>{escape_text(message)}</p></div>'


def format_question(question: str) -> str:
    """The user's own message, shown as typed (escaped like article text)."""
    return escape_text(question)


# --- settings -------------------------------------------------------------------------------------


def parse_date_setting(value: object, label: str) -> str | None:
    """An ISO date from a date box ("" → None), or a ValueError with a message for the chat."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(
            f"{label} must be a date like 2023-03-02 (year-month-day), not “{_shorten(text, 40)}”."
        ) from None


def date_range(after: object, before: object) -> tuple[str | None, str | None]:
    """The published-after/before filter, checked: ValueError with a message for the chat."""
    start = parse_date_setting(after, "Published after")
    end = parse_date_setting(before, "Published before")
    if start and end and start > end:
        raise ValueError(
            f"Published after ({start}) is later than published before ({end}): "
            "no article can match."
        )
    return start, end


def clamp_k(value: object) -> int:
    try:
        k = int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return DEFAULT_K
    return max(1, min(MAX_K, k))


# --- the start screen -----------------------------------------------------------------------------


def format_built_at(value: object) -> str:
    """'2026-11-23T16:26:51Z' → '2026-11-23 16:26 UTC' (anything else as it is)."""
    text = str(value or "").strip()
    if not text:
        return "at an unknown time"
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def stats_line(stats: Mapping[str, Any]) -> str:
    """'N articles indexed, built <time>' from `Assistant.stats()` (plain text)."""
    count = int(stats.get("articles") or 0)
    noun = "article" if count == 1 else "articles"
    return f"{count} {noun} indexed, built {format_built_at(stats.get('built_at'))}"


def start_screen(stats: Mapping[str, Any]) -> str:
    """The empty chat's placeholder: what to do and what is indexed."""
    return (
        '<div class="qa-start"><p><strong>Ask a question about the news articles.</strong></p>'
        f'<p class="qa-stats">{escape_text(stats_line(stats))}</p>'
        "<p>Answers are sentences copied from the articles, with their sources.</p></div>"
    )


_NAME = re.compile(r"[^\W\d_][\w’'-]*")
_SPEAKER_VERBS = r"(?:had\s+)?(?:said|says|told|noted|added|explained|urged|warned|announced)"
# Title words that are never the subject of an example question.
_COMMON = frozenset(
    """the and for with from into over after before since about says said new news report
    reports update live""".split()
)


def _names(article: Article) -> list[str]:
    """Proper names from the title, most mentioned in the text first.

    A title word counts when the text also writes it capitalised in mid-sentence (after a
    lower-case word or a comma): "Blinken" does, "Meets" does not.
    """
    counts: dict[str, int] = {}
    body = article.text.replace(article.title, " ") if article.title else article.text
    for word in _NAME.findall(article.title):
        if len(word) < 3 or not word[0].isupper() or word.lower() in _COMMON:
            continue
        pattern = rf"(?<=[a-z,;:’'])\s+{re.escape(word)}\b"
        found = len(re.findall(pattern, body))
        if found:
            counts[word] = max(counts.get(word, 0), found)
    return sorted(counts, key=lambda w: -counts[w])


def _question_about(name: str, text: str) -> str:
    if re.search(rf"\b{re.escape(name)}\s+{_SPEAKER_VERBS}\b", text):
        return f"What did {name} say?"
    if re.search(rf"\b(?:in|at)\s+{re.escape(name)}\b", text):
        return f"What happened in {name}?"
    return f"What do we know about {name}?"


def example_questions(articles: Sequence[Article], limit: int = MAX_EXAMPLES) -> list[str]:
    """Questions about the indexed articles, for the start screen: newest articles first,
    one question per article about the proper name its title and text share most, or about
    the title itself. Plain text (the chat shows examples as text)."""
    ordered = sorted(articles, key=lambda a: (a.published or "", a.title), reverse=True)
    questions: list[str] = []
    used: set[str] = set()
    for article in ordered:
        if len(questions) >= limit:
            break
        names = [n for n in _names(article) if n.casefold() not in used]
        title = " ".join(article.title.split())
        if names:
            used.add(names[0].casefold())
            question = _question_about(names[0], article.text)
        elif 2 <= len(title.split()) <= 16:
            question = f"What does “{title}” report?"
        else:
            continue
        if question not in questions:
            questions.append(question)
    return questions


# --- adding articles ------------------------------------------------------------------------------


def token_matches(given: object, expected: str | None) -> bool:
    """Whether `given` is the admin token (constant time); never with no token configured."""
    if not expected or not isinstance(given, str):
        return False
    return secrets.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8"))


def pasted_record(
    title: str, text: str, source: str = "", url: str = "", published: str = ""
) -> dict[str, str] | None:
    """The article record for the paste form, None when no text was pasted, or ValueError."""
    if not (text or "").strip():
        if any((x or "").strip() for x in (title, source, url, published)):
            raise ValueError("Paste the article's text too: it is the one required field.")
        return None
    record = {"text": text}
    for key, value, label in (
        ("title", title, "Title"),
        ("source", source, "Outlet"),
        ("url", url, "URL"),
        ("published", published, "Published"),
    ):
        value = (value or "").strip()
        if not value:
            continue
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"{label} is longer than {MAX_FIELD_CHARS:,} characters.")
        record[key] = value
    if "published" in record:
        record["published"] = parse_date_setting(record["published"], "Published") or ""
    if "url" in record and safe_url(record["url"]) is None:
        raise ValueError("URL must be an http:// or https:// address.")
    return record


def uploads_from_paths(paths: Sequence[str | Path] | None, max_bytes: int) -> list[Upload]:
    """The chosen files as `Upload`s under their own names (what the browser sent)."""
    uploads = []
    for path in paths or ():
        path = Path(path)
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(
                f"{path.name} is larger than the {max_bytes:,}-byte file limit ({size:,} bytes)."
            )
        uploads.append(Upload(path.name, path.read_bytes()))
    return uploads


def format_add_result(result: AddResult) -> str:
    """What adding did: the articles now searchable, the build summary, what was skipped."""
    parts = ['<div class="qa-add-result">']
    if result.articles:
        count = len(result.articles)
        noun = "article" if count == 1 else "articles"
        ids = ", ".join(f"<code>{escape_text(a)}</code>" for a in result.articles)
        parts.append(f"<p><strong>Added {count} {noun}</strong>: {ids}. Ask away.</p>")
    else:
        parts.append("<p><strong>Nothing was added.</strong></p>")
    if result.report is not None:
        parts.append(f'<p class="qa-summary">{escape_text(result.report.summary())}</p>')
    if result.skipped:
        items = "".join(
            f"<li><code>{escape_text(s.path)}</code>: {escape_text(s.reason)}</li>"
            for s in result.skipped
        )
        parts.append(f"<p>Skipped:</p><ul>{items}</ul>")
    parts.append("</div>")
    return "".join(parts)


def format_status(message: str, kind: str = "info") -> str:
    return f'<div class="qa-add-result qa-{kind}"><p>{escape_text(message)}</p></div>'


# --- the Gradio app -------------------------------------------------------------------------------

CSS = """
.qa-reply p, .qa-start p { margin: 0.3em 0; }
.qa-marker { font-size: 0.85em; color: var(--body-text-color-subdued); }
.qa-sources, .qa-related { margin-top: 0.6em; padding: 0.4em 0.8em;
  border: 1px solid var(--border-color-primary); border-radius: 6px; }
.qa-sources summary, .qa-related summary { cursor: pointer; font-weight: 600; }
.qa-source, .qa-passage { margin: 0.5em 0; }
.qa-sentence { margin: 0.2em 0; padding-left: 0.6em; font-size: 1.05em;
  border-left: 3px solid var(--color-accent); }
.qa-quote { margin: 0.2em 0 0.2em 1em; padding-left: 0.6em;
  border-left: 3px solid var(--border-color-primary); }
.qa-meta, .qa-read-as, .qa-stats { color: var(--body-text-color-subdued); }
.qa-agree { font-weight: 600; }
.qa-error p { color: var(--error-text-color, #b91c1c); }
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
    can_add = updater is not None and bool(admin_token)
    empty_stats = {"articles": 0, "built_at": ""}
    # Examples read every article: once per index build, not once per page load.
    examples_cache: dict[tuple[Any, ...], list[dict[str, str]]] = {}

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
                        max_length=MAX_QUESTION_CHARS,
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
            if can_add:
                add_outputs = _add_articles_tab()

        settings_inputs = [k_slider, outlet, after, before]
        turn_outputs = [question, chatbot, history_state, previous_state]
        # Questions run side by side (like the API's), a few at a time across all triggers.
        asking = {"concurrency_limit": ASK_CONCURRENCY, "concurrency_id": "ask"}
        for trigger in (question.submit, ask_button.click):
            trigger(
                respond,
                inputs=[question, history_state, previous_state, *settings_inputs],
                outputs=turn_outputs,
                api_visibility="private",
                **asking,
            )
        chatbot.example_select(
            on_example,
            inputs=[history_state, previous_state, *settings_inputs],
            outputs=turn_outputs,
            api_visibility="private",
            **asking,
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
        if can_add:
            button, inputs, status, clear_on_success = add_outputs

            def add(*values: Any) -> Iterator[tuple[Any, ...]]:
                unchanged = (gr.skip(),) * (3 + len(clear_on_success))
                for message, result in add_articles_steps(updater, admin_token, *values):
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


def _add_articles_tab() -> tuple[Any, list[Any], Any, list[Any]]:
    """The "Add articles" tab's components: (button, inputs, status box, boxes to clear)."""
    suffixes = sorted(UPLOAD_SUFFIXES)
    with gr.Tab("Add articles", id="add"):
        gr.Markdown(
            "Paste an article or upload files ("
            + ", ".join(suffixes)
            + "). They are saved into the corpus and indexed; the next question sees them."
        )
        token = gr.Textbox(label="Admin token", type="password", elem_id="qa-add-token")
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
    return button, [token, title, text, source, url, published, files], status, [title, text, files]


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
    if len(question) > MAX_QUESTION_CHARS:
        reply = format_error(f"The question is longer than {MAX_QUESTION_CHARS:,} characters.")
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


def chat_mounter(*, admin_token: str | None) -> MountChat:
    """A `MountChat` for `ui.app.create_app`: builds the chat and mounts it at "/".

    The "Add articles" tab is there only with an `admin_token`, and asks for it.
    """

    def mount(app: FastAPI, live: LiveAssistant) -> FastAPI:
        updater: IndexUpdater | None = getattr(app.state, "updater", None)
        settings = getattr(app.state, "settings", None)
        blocks = build_blocks(live.get, updater=updater, admin_token=admin_token)
        max_bytes = settings.max_file_bytes if settings is not None else None
        return gr.mount_gradio_app(
            app,
            blocks,
            path="/",
            ssr_mode=False,
            max_file_size=max_bytes,
            css=CSS,
            footer_links=["gradio"],
        )

    return mount
