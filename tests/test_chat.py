"""The web chat's formatting layer, without a browser: escaping, replies, settings, adding."""

from __future__ import annotations

import html
import re
import string
import unicodedata
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.config import Settings
from qa.limits import MAX_FIELD_CHARS
from qa.live import AddResult, Upload
from qa.types import (
    Answer,
    Article,
    Citation,
    DateMention,
    Disagreement,
    Hit,
    Skipped,
    Speaker,
)
from ui import chat
from ui.chat import add_articles_steps, chat_turn
from ui.examples import example_questions
from ui.forms import date_range, pasted_record
from ui.rendering import (
    NO_ANSWER,
    escape_text,
    format_add_result,
    format_answer,
    format_built_at,
    highlight,
    safe_url,
    stats_line,
)
from ui.security import token_matches

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "javascript:alert(1)",
    "**bold** _em_ `code` ~~gone~~ # heading",
    "$$x^2$$ and \\(y\\)",
    "<a href='javascript:alert(1)'>click</a> &lt;b&gt; &amp;",
    "1. list\n\n- item\n\n    indented code\n> quote",
    "www.example.com http://example.com/<x> user@example.com",
    "![img](http://example.com/x.png) <!-- comment --> <![CDATA[x]]>",
    "| a | b |\n|---|---|\n| c | d |",
    "\"quoted\" 'single' {braces} ^caret^ \\backslash\\",
]

# The markup the chat itself writes; anything else in a reply came from somewhere it should not.
ALLOWED_TAGS = set("div p span strong em details summary blockquote a code ul li".split())
ALLOWED_ATTRIBUTES = {"class", "href", "target", "rel", "open"}


class Markup(HTMLParser):
    """Every tag and attribute in an HTML string, and its text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.parts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def assert_only_our_markup(fragment: str) -> Markup:
    markup = Markup(fragment)
    for tag, attributes in markup.tags:
        assert tag in ALLOWED_TAGS, (tag, fragment)
        assert set(attributes) <= ALLOWED_ATTRIBUTES, (tag, attributes)
        if "href" in attributes:
            assert re.match(r"https?://", attributes["href"] or ""), attributes
    return markup


def collapsed(text: str) -> str:
    return " ".join(text.split())


def citation(
    sentence: str,
    span: str = "",
    *,
    article_id: str = "a",
    title: str = "Title",
    source: str = "Wire",
    url: str = "",
    published: str = "2023-03-02",
    offset: int = 100,
) -> Citation:
    local = sentence.find(span) if span else 0
    span_start = offset + local
    return Citation(
        article_id=article_id,
        title=title,
        source=source,
        url=url,
        published=published,
        sentence=sentence,
        start=offset,
        end=offset + len(sentence),
        span_start=span_start,
        span_end=span_start + len(span),
        score=0.9,
    )


def hit(text: str, *, title: str = "Title", url: str = "", source: str = "") -> Hit:
    return Hit(1, "a", title, source, url, "2023-03-02", text, 0, len(text), 0.5)


MEETING = "Blinken met Lavrov briefly on the sidelines of the G-20 summit in New Delhi."
AGREEING = "The two ministers met in New Delhi on March 2."


def found(*citations: Citation) -> Answer:
    first = citations[0]
    start, end = first.span_start - first.start, first.span_end - first.start
    short = first.sentence[start:end]
    return Answer("q", True, short, first.sentence, 0.9, list(citations), [])


# --- escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_has_no_syntax_characters_left(text: str) -> None:
    escaped = escape_text(text)
    bare = re.sub(r"&#\d+;", "", escaped)
    assert not set(bare) & set(string.punctuation), escaped
    assert "\n" not in escaped
    assert html.unescape(escaped) == collapsed(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_with_html_renders_escaped_text_as_plain_text(text: str) -> None:
    # markdown-it-py comes with gradio (through rich); the browser tests cover Gradio's own.
    markdown_it = pytest.importorskip("markdown_it")
    # CommonMark with raw HTML allowed, as Gradio's renderer reads chat messages.
    parser = markdown_it.MarkdownIt("commonmark", {"html": True, "linkify": False})
    rendered = parser.render(escape_text(text))
    markup = Markup(rendered)
    assert [tag for tag, _ in markup.tags] == ["p"], rendered
    assert markup.text.strip() == collapsed(text)


@given(st.text(max_size=300))
def test_any_text_escapes_to_itself_as_plain_text(text: str) -> None:
    escaped = escape_text(text)
    assert "<" not in escaped and ">" not in escaped and "\n" not in escaped
    markup = Markup(f"<p>{escaped}</p>")
    assert [tag for tag, _ in markup.tags] == ["p"]
    kept = "".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc")
    assert markup.text == collapsed(kept)


def test_escape_keeps_boundary_spaces_on_request() -> None:
    assert escape_text("  a  b  ") == "a b"
    assert escape_text("  a  b  ", strip=False) == " a b "
    assert escape_text(None) == ""


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/news/1",
        "http://example.com",
        "HTTPS://EXAMPLE.COM/a?b=1&c=2#top",
        "https://example.com/path(with)parens",
    ],
)
def test_http_urls_are_links(url: str) -> None:
    href = safe_url(url)
    assert href is not None
    assert href.lower().startswith(("http://", "https://"))
    assert not set(href) & set("\"'<>() `\\")
    assert html.unescape(href).replace("%28", "(").replace("%29", ")") == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "jav&#x61;script:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example.com/x",
        "/relative/path",
        "example.com",
        "https://",
        "http:///path",
        "https://exa mple.com",
        "https://example.com/\x00",
        "https://[::1",
        "",
        None,
        42,
    ],
)
def test_other_urls_are_not_links(url: Any) -> None:
    assert safe_url(url) is None


def test_quotes_in_urls_cannot_leave_the_attribute() -> None:
    href = safe_url('https://example.com/a"onmouseover="alert(1)')
    assert href is not None and '"' not in href and "'" not in href


# --- replies -------------------------------------------------------------------------------------


def test_answer_quotes_the_sentence_with_the_span_in_bold() -> None:
    reply = format_answer(found(citation(MEETING, "New Delhi")))
    markup = assert_only_our_markup(reply)
    assert "<strong>New Delhi</strong>" in reply
    assert f"{MEETING} [1]" in markup.text
    assert "[1]" in markup.text and "[2]" not in markup.text
    assert "sources agree" not in markup.text
    assert "Title" in markup.text and "Wire · 2023-03-02" in markup.text
    assert "Sources" not in markup.text and "Source (1)" in markup.text


def test_agreeing_sources_are_numbered_and_counted() -> None:
    answer = found(
        citation(MEETING, "New Delhi", title="First", url="https://example.com/1"),
        citation(AGREEING, "New Delhi", article_id="b", title="Second", source="Post"),
    )
    reply = format_answer(answer)
    markup = assert_only_our_markup(reply)
    assert "[1] [2]" in markup.text
    assert "2 sources agree." in markup.text
    assert reply.count('class="qa-source"') == 2
    assert "Sources (2)" in markup.text
    links = [a for tag, a in markup.tags if tag == "a"]
    assert [a["href"] for a in links] == ["https://example.com/1"]
    # Each source quotes its own sentence, its own span in bold.
    assert reply.count("<strong>New Delhi</strong>") == 3


def test_answer_without_a_span_shows_the_sentence_plainly() -> None:
    reply = format_answer(found(citation(MEETING)))
    assert "<strong>" not in reply
    assert MEETING.replace(".", "&#46;").replace("-", "&#45;") in reply


def test_highlight_ignores_spans_outside_the_sentence() -> None:
    assert highlight("abc", 2, 1) == "abc"
    assert highlight("abc", -1, 2) == "abc"
    assert highlight("abc", 1, 9) == "abc"
    assert highlight("a  b c", 3, 4) == "a <strong>b</strong> c"


def test_no_answer_says_so_with_the_closest_passages() -> None:
    related = [hit(f"Passage {i} " + "word " * 200, title=f"T{i}") for i in range(5)]
    reply = format_answer(Answer("q", False, "", "", 0.1, [], related))
    markup = assert_only_our_markup(reply)
    assert NO_ANSWER in markup.text
    assert "Closest passages" in markup.text
    assert reply.count('class="qa-passage"') == 3
    assert "…" in markup.text  # long passages are shortened


def test_no_answer_without_passages() -> None:
    reply = format_answer(Answer("q", False, "", "", 0.0, [], []))
    assert NO_ANSWER in Markup(reply).text and "Closest" not in reply


def test_read_as_shows_the_resolved_question() -> None:
    reply = format_answer(found(citation(MEETING, "New Delhi")), read_as="when? <b>x</b>")
    markup = assert_only_our_markup(reply)
    assert "Read as: when? <b>x</b>" in markup.text


@pytest.mark.parametrize("payload", HOSTILE)
def test_article_strings_never_become_markup(payload: str) -> None:
    sentence = f"Before {payload} after."
    hostile = citation(
        sentence,
        payload[:5],
        title=payload,
        source=payload,
        url=payload,
        published=payload,
    )
    other = citation(payload + " again", article_id="b", title=payload, url="javascript:x")
    for reply in (
        format_answer(found(hostile, other)),
        format_answer(Answer("q", False, "", "", 0.0, [], [hit(payload, title=payload)])),
    ):
        markup = assert_only_our_markup(reply)
        assert not [a for tag, a in markup.tags if tag == "a"]
        assert collapsed(payload) in markup.text
        assert "\n" not in reply


# --- settings ------------------------------------------------------------------------------------


def test_date_range_accepts_iso_dates_and_blanks() -> None:
    assert date_range("", None) == (None, None)
    assert date_range(" 2023-03-01 ", "2023-03-31") == ("2023-03-01", "2023-03-31")
    assert date_range("2023-03-02", "2023-03-02") == ("2023-03-02", "2023-03-02")


@pytest.mark.parametrize(
    ("after", "before", "message"),
    [
        ("2023-13-45", "", "Published after must be a date like 2023-03-02"),
        ("", "March 2", "Published before must be a date like 2023-03-02"),
        ("2023-04-01", "2023-03-01", "is later than published before"),
    ],
)
def test_bad_dates_have_clear_messages(after: str, before: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        date_range(after, before)


def test_stats_line() -> None:
    stats = {"articles": 2, "built_at": "2026-11-23T16:26:51Z"}
    assert stats_line(stats) == "2 articles indexed, built 2026-11-23 16:26 UTC"
    assert stats_line({"articles": 1, "built_at": ""}).startswith("1 article indexed")
    assert format_built_at("yesterday") == "yesterday"
    assert format_built_at("2026-11-23T16:26:51") == "2026-11-23 16:26"


def article(title: str, text: str, published: str = "") -> Article:
    return Article(article_id=title, title=title, text=f"{title}\n\n{text}", published=published)


def test_example_questions_come_from_the_articles() -> None:
    articles = [
        article(
            "Blinken Meets With Russian Counterpart",
            "The talks were brief. Officials said Blinken met Lavrov, and Blinken said "
            "little. Later Blinken told reporters it went well.",
            "2023-03-02",
        ),
        article(
            "Storm Hits Lumbridge",
            "Roofs were damaged in Lumbridge on Monday, and the storm moved on.",
            "2023-03-05",
        ),
        article("Quiet Day", "No names here at all."),
    ]
    questions = example_questions(articles)
    assert questions == [
        "What happened in Lumbridge?",
        "What did Blinken say?",
        "What does “Quiet Day” report?",
    ]
    assert example_questions([]) == []
    assert len(example_questions(articles * 3, limit=2)) == 2
    other = [article("Falador Opens Library", "The mayor of Falador opened it.")]
    assert example_questions(other) == ["What do we know about Falador?"]


# --- one chat turn -------------------------------------------------------------------------------


class FakeAssistant:
    def __init__(self, answer: Answer | Exception):
        self.answer = answer
        self.calls: list[tuple[str, int, dict[str, Any]]] = []

    def ask(self, question: str, k: int = 5, **filters: Any) -> Answer:
        self.calls.append((question, k, filters))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_turn_asks_and_appends_question_and_reply() -> None:
    fake = FakeAssistant(found(citation(MEETING, "New Delhi")))
    history, previous = chat_turn(
        lambda: fake,
        "Where did Blinken and Lavrov meet?",
        [],
        [],
        k=7,
        outlet="",
        after="2023-03-01",
        before="",
    )
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "<strong>New Delhi</strong>" in history[1]["content"]
    assert previous == ["Where did Blinken and Lavrov meet?"]
    question, k, filters = fake.calls[0]
    assert (question, k) == ("Where did Blinken and Lavrov meet?", 7)
    assert filters == {"source": None, "published_after": "2023-03-01", "published_before": None}


def test_a_follow_up_is_asked_resolved_and_says_so() -> None:
    fake = FakeAssistant(found(citation(AGREEING, "March 2")))
    history, previous = chat_turn(
        lambda: fake, "and when was that?", [], ["Where did Blinken and Lavrov meet?"]
    )
    assert fake.calls[0][0] == "and when was that? Blinken Lavrov meet"
    assert "Read as: and when was that? Blinken Lavrov meet" in Markup(history[1]["content"]).text
    assert previous[-1] == "and when was that? Blinken Lavrov meet"


def test_invalid_dates_are_a_reply_and_nothing_is_asked() -> None:
    fake = FakeAssistant(found(citation(MEETING, "New Delhi")))
    history, previous = chat_turn(lambda: fake, "Where?", [], [], after="not a date")
    assert not fake.calls and previous == []
    assert "Published after must be a date like 2023-03-02" in Markup(history[1]["content"]).text


def test_errors_from_the_service_are_replies() -> None:
    for error, shown in (
        (ValueError("source must be text"), "source must be text"),
        (RuntimeError("boom"), "Something went wrong while answering: RuntimeError."),
    ):
        history, previous = chat_turn(lambda e=error: FakeAssistant(e), "Who?", [], [])
        assert shown in Markup(history[-1]["content"]).text
        assert previous == []


def test_empty_and_overlong_questions() -> None:
    fake = FakeAssistant(found(citation(MEETING, "New Delhi")))
    assert chat_turn(lambda: fake, "   ", [], []) == ([], [])
    history, _ = chat_turn(lambda: fake, "x" * 1001, [], [])
    assert "longer than 1,000 characters" in Markup(history[-1]["content"]).text
    assert not fake.calls


def test_k_is_clamped_and_the_outlet_passed_on() -> None:
    fake = FakeAssistant(found(citation(MEETING, "New Delhi")))
    chat_turn(lambda: fake, "Who met?", [], [], k=500, outlet="Daily Post")
    chat_turn(lambda: fake, "Who met?", [], [], k="nonsense")
    assert [c[1] for c in fake.calls] == [20, 5]
    assert fake.calls[0][2]["source"] == "Daily Post"


def test_user_questions_are_shown_escaped() -> None:
    fake = FakeAssistant(Answer("q", False, "", "", 0.0, [], []))
    history, _ = chat_turn(lambda: fake, "<img src=x onerror=alert(1)> **hi**", [], [])
    markup = Markup(history[0]["content"])
    assert markup.tags == [] and markup.text == "<img src=x onerror=alert(1)> **hi**"


# --- adding articles -----------------------------------------------------------------------------


def test_token_must_match() -> None:
    assert token_matches("secret", "secret")
    assert token_matches(" secret ", "secret")
    assert not token_matches("Secret", "secret")
    assert not token_matches("", "secret")
    assert not token_matches(None, "secret")
    assert not token_matches("anything", None)
    assert not token_matches("", "")


def test_pasted_record() -> None:
    assert pasted_record("", "  ") is None
    assert pasted_record(" T ", "Body.", " Wire ", "", "2023-03-02") == {
        "text": "Body.",
        "title": "T",
        "source": "Wire",
        "published": "2023-03-02",
    }
    with pytest.raises(ValueError, match="text too"):
        pasted_record("A title", "")
    with pytest.raises(ValueError, match="Published must be a date"):
        pasted_record("", "Body.", published="last week")
    with pytest.raises(ValueError, match="http"):
        pasted_record("", "Body.", url="javascript:alert(1)")
    with pytest.raises(ValueError, match="longer than"):
        pasted_record("x" * 1001, "Body.")


def test_pasted_record_has_the_api_limits() -> None:
    # The form is checked with the admin API's own model: the same limits, the form's words.
    with pytest.raises(ValueError, match=r"^Outlet is longer than 1,000 characters\.$"):
        pasted_record("", "Body.", source="x" * (MAX_FIELD_CHARS + 1))
    assert pasted_record("", "Body.", source="x" * MAX_FIELD_CHARS) == {
        "text": "Body.",
        "source": "x" * MAX_FIELD_CHARS,
    }


class FakeUpdater:
    def __init__(self, result: AddResult | Exception, max_file_bytes: int = 1_000):
        self.settings = SimpleNamespace(max_file_bytes=max_file_bytes)
        self.result = result
        self.calls: list[tuple[list[Upload], list[dict[str, Any]]]] = []

    def add_articles(self, uploads: Any = (), records: Any = ()) -> AddResult:
        self.calls.append((list(uploads), list(records)))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def steps(updater: FakeUpdater, token: str = "t", **fields: Any) -> list[tuple[str, Any]]:
    values = {"title": "", "text": "", "source": "", "url": "", "published": "", "files": None}
    values.update(fields)
    return list(add_articles_steps(updater, "t", token, *values.values()))  # type: ignore[arg-type]


def test_adding_needs_the_admin_token() -> None:
    updater = FakeUpdater(AddResult())
    (message, result), *rest = steps(updater, token="wrong", text="Body.")
    assert "Wrong or missing admin token" in Markup(message).text
    assert result is None and not rest and not updater.calls


def test_adding_pasted_and_uploaded_articles(tmp_path: Path) -> None:
    upload = tmp_path / "story.md"
    upload.write_text("# Story\n\nA sentence.", encoding="utf-8")
    report = SimpleNamespace(summary=lambda: "added 2, updated 0; index holds 4 articles")
    done = AddResult(
        saved=["uploads/x.json", "uploads/story.md"],
        articles=["x", "uploads/story.md"],
        skipped=[Skipped("uploads/story.md:2", "<b>bad</b> line")],
        report=report,  # type: ignore[arg-type]
    )
    updater = FakeUpdater(done)
    (progress, none), (final, result) = steps(
        updater, title="Lumbridge", text="The council met.", files=[str(upload)]
    )
    assert "Saving and indexing 2 articles" in Markup(progress).text and none is None
    assert result is done
    uploads, records = updater.calls[0]
    assert uploads == [Upload("story.md", upload.read_bytes())]
    assert records == [{"text": "The council met.", "title": "Lumbridge"}]
    markup = assert_only_our_markup(final)
    assert "Added 2 articles" in markup.text
    assert "index holds 4 articles" in markup.text
    assert "uploads/story.md:2: <b>bad</b> line" in markup.text


def test_adding_nothing_or_too_much(tmp_path: Path) -> None:
    updater = FakeUpdater(AddResult())
    (message, _), *_ = steps(updater)
    assert "Paste an article" in Markup(message).text
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2_000)
    (message, _), *_ = steps(updater, files=[str(big)])
    assert "larger than the 1,000-byte file limit" in Markup(message).text
    assert not updater.calls


def test_adding_reports_failures() -> None:
    (_, _), (message, result) = steps(FakeUpdater(ValueError("no corpus")), text="Body.")
    assert "Could not add: no corpus" in Markup(message).text and result is None
    (_, _), (message, result) = steps(FakeUpdater(RuntimeError("disk full")), text="Body.")
    assert "The index build failed: disk full" in Markup(message).text and result is None


def test_nothing_added_lists_the_reasons() -> None:
    result = AddResult(skipped=[Skipped("notes.pdf", "extension '.pdf' is not allowed")])
    markup = assert_only_our_markup(format_add_result(result))
    assert "Nothing was added." in markup.text
    assert "notes.pdf: extension '.pdf' is not allowed" in markup.text


# --- the Gradio app, without a browser ----------------------------------------------------------


class StaticAssistant(FakeAssistant):
    def articles(self) -> list[Article]:
        return [article("Storm Hits Lumbridge", "Roofs were damaged in Lumbridge on Monday.")]

    def sources(self) -> list[str]:
        return ["Daily Post"]

    def stats(self) -> dict[str, Any]:
        return {"articles": 1, "built_at": "2026-11-23T16:26:51Z"}


def tab_labels(blocks: Any) -> list[str]:
    import gradio as gr

    return [b.label for b in blocks.blocks.values() if isinstance(b, gr.Tab)]


def test_the_add_tab_exists_only_with_an_admin_token() -> None:
    fake = StaticAssistant(Answer("q", False, "", "", 0.0, [], []))
    updater = FakeUpdater(AddResult())
    without = chat.build_blocks(lambda: fake, updater=updater, admin_token=None)  # type: ignore[arg-type]
    with_token = chat.build_blocks(lambda: fake, updater=updater, admin_token="t")  # type: ignore[arg-type]
    assert tab_labels(without) == ["Ask"]
    assert tab_labels(with_token) == ["Ask", "Add articles"]


def test_mounting_keeps_the_api_routes() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    fake = StaticAssistant(Answer("q", False, "", "", 0.0, [], []))
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    application = SimpleNamespace(
        settings=Settings(max_file_bytes=1_000),
        live=SimpleNamespace(get=lambda: fake),
        updater=FakeUpdater(AddResult()),
    )
    mounted = chat.mount_chat(app, application)  # type: ignore[arg-type]
    with TestClient(mounted) as client:
        assert client.get("/api/health").json() == {"status": "ok"}
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()


# --- news fields ---------------------------------------------------------------------------------


def news_answer(hostile: str) -> Answer:
    own = replace(
        citation("The fire destroyed 150 homes on Thursday.", "150", source=hostile),
        dates=[DateMention("Thursday", 131, 139, "2023-03-02", "2023-03-02")],
        speaker=Speaker(hostile, 0, len(hostile), "she", 0, 3, "said"),
        report="wire-1",
    )
    other = replace(
        citation("The fire destroyed 120 homes.", "120", article_id="b", published=""),
        dates=[DateMention("yesterday", 10, 19, None, None, "the article has no date")],
    )
    answer = found(own)
    return replace(answer, as_of="2023-03-02", disagreements=[Disagreement(hostile, [other])])


@pytest.mark.parametrize("text", HOSTILE)
def test_news_fields_are_shown_escaped(text: str) -> None:
    markup = assert_only_our_markup(format_answer(news_answer(text)))
    shown = collapsed(markup.text)
    assert "As of 2 March 2023." in shown
    assert "Thursday = 2 March 2023" in shown
    assert "Same report as wire-1" in shown
    assert "Outlets differ." in shown
    assert "yesterday: the article has no date" in shown and "undated" in shown
    assert collapsed(f"Quotes {text}") in shown
    assert "[2]" in shown  # the other outlet's source is numbered after the answer's own
