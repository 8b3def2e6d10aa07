"""The chat's HTML: answers with their sources, the start screen, and what adding did.

Safety: Gradio renders chat messages and Markdown panels as Markdown with inline HTML. Every
string that comes from an article, an upload or the user (titles, sentences, outlets, file
names, skip reasons, questions) goes through `escape_text`, which writes each ASCII
punctuation character as a numeric character reference: neither the Markdown parser nor the
browser's HTML parser sees any syntax in it, so `<script>`, `<img onerror=…>`, `**`, `[x](…)`
and `$$…$$` all show as the characters they are. Links are built only from http(s) URLs
(`safe_url`). Gradio's own HTML sanitizer stays on underneath, and LaTeX rendering is off.

The functions are pure and take the `Answer`, `Hit` and `AddResult` records, so they are tested
without a browser (tests/test_chat.py).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from qa.live import AddResult
from qa.news.dates import describe, format_day
from qa.types import Answer, Citation, Hit

NO_ANSWER = "No answer in the articles."
RELATED_SHOWN = 3
PASSAGE_CHARS = 320

# Every ASCII punctuation character: all of HTML's and Markdown's syntax is among them.
_ENTITIES = {ord(c): f"&#{ord(c)};" for c in string.punctuation}
_SPACE = re.compile(r"\s+")
_URL_SAFE = "/?:@&=+$,;-_.!~*#%[]"  # kept as they are; quotes, <>, (), `, \ and spaces encoded

# The look of the classes the markup below uses.
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
.qa-news, .qa-as-of { margin: 0.1em 0 0.1em 1em; font-size: 0.9em;
  color: var(--body-text-color-subdued); }
.qa-differ { margin-top: 0.6em; padding: 0.4em 0.8em; border-left: 3px solid #d97706; }
.qa-error p { color: var(--error-text-color, #b91c1c); }
"""


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


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut at a word to at most `limit` characters and an ellipsis."""
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


def citation_news(citation: Citation) -> str:
    """Under a quoted sentence: whom it quotes, its relative dates resolved, and the report
    it belongs to when that is another article's (a copy of the same wire story)."""
    notes = []
    if citation.speaker is not None:
        notes.append(f'<span class="qa-speaker">Quotes {escape_text(citation.speaker.name)}</span>')
    notes += [f'<span class="qa-date">{escape_text(describe(m))}</span>' for m in citation.dates]
    if citation.report and citation.report != citation.article_id:
        notes.append(f'<span class="qa-copy">Same report as {escape_text(citation.report)}</span>')
    return f'<p class="qa-news">{" · ".join(notes)}</p>' if notes else ""


def format_sources(citations: Sequence[Citation], *, label: str = "", first: int = 1) -> str:
    """The sources panel: per citation its marker (numbered from `first`), title, outlet, date
    ("undated" when it has none), link and sentence, and what `citation_news` adds."""
    items = []
    for number, citation in enumerate(citations, first):
        published = citation.published or "undated"
        head = source_line(citation.title, citation.source, published, citation.url)
        items.append(
            f'<div class="qa-source"><p><span class="qa-marker">[{number}]</span> {head}</p>'
            f'<blockquote class="qa-quote">{citation_sentence(citation)}</blockquote>'
            f"{citation_news(citation)}</div>"
        )
    count = len(citations)
    label = label or (f"Sources ({count})" if count != 1 else "Source (1)")
    return f'<details class="qa-sources" open><summary>{label}</summary>{"".join(items)}</details>'


def format_disagreements(answer: Answer) -> str:
    """ "Outlets differ: …" with each other value and its sources, when there are any."""
    if not answer.disagreements:
        return ""
    own = ", ".join(escape_text(c.source or c.title) for c in answer.citations)
    parts = [
        f'<div class="qa-differ"><p><strong>Outlets differ.</strong> '
        f"{own} {'say' if len(answer.citations) > 1 else 'says'} "
        f"<strong>{escape_text(answer.text)}</strong>"
    ]
    for disagreement in answer.disagreements:
        others = ", ".join(escape_text(c.source or c.title) for c in disagreement.citations)
        parts.append(f"; {others} <strong>{escape_text(disagreement.text)}</strong>")
    parts.append(".</p>")
    first = len(answer.citations) + 1  # numbered after the answer's own sources
    for disagreement in answer.disagreements:
        label = f"Says {escape_text(disagreement.text)} ({len(disagreement.citations)})"
        parts.append(format_sources(disagreement.citations, label=label, first=first))
        first += len(disagreement.citations)
    parts.append("</div>")
    return "".join(parts)


def format_related(hits: Sequence[Hit], limit: int = RELATED_SHOWN) -> str:
    """The closest passages, for an unanswered question."""
    if not hits:
        return ""
    items = []
    for hit in hits[:limit]:
        head = source_line(hit.title, hit.source, hit.published, hit.url)
        passage = escape_text(shorten(hit.text, PASSAGE_CHARS))
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
    parts = [f'<div class="qa-reply qa-found">{_read_as(read_as)}']
    if citations and answer.text and answer.text not in answer.sentence:
        # A speaker named in an earlier sentence ("…,” she said): the name above the quote.
        parts.append(f'<p class="qa-short"><strong>{escape_text(answer.text)}</strong></p>')
    parts.append(f'<blockquote class="qa-sentence">{sentence} {markers}</blockquote>')
    if answer.sources_agreeing > 1:
        parts.append(
            f'<p class="qa-agree">{answer.sources_agreeing} sources agree. '
            f'<span class="qa-reports">{escape_text(answer.corroboration)}.</span></p>'
        )
    as_of = f"As of {format_day(answer.as_of)}." if answer.as_of else "The sources are undated."
    parts.append(f'<p class="qa-as-of">{escape_text(as_of)}</p>')
    if citations:
        parts.append(format_sources(citations))
    parts.append(format_disagreements(answer))
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


# --- adding articles ------------------------------------------------------------------------------


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
