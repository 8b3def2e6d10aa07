"""The web chat in a real browser: the server as a subprocess, headless Chromium via Playwright.

The server is the real `qa serve` (the API with the chat mounted) on a
copy of the default corpus, with an admin token. Needs /usr/bin/chromium (`make test` installs
it); never `playwright install`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEFAULT_CORPUS, REPO
from tests.support.server import Server, start_server

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "chat-admin-token"
ARTIFACTS = REPO / "tests" / "artifacts"
ANSWER_TIMEOUT_MS = 180_000  # the first answer may load the model; builds embed on 2 busy cores
PAGE_TIMEOUT_MS = 120_000
LUMBRIDGE = "The Lumbridge council approved a 4.2 million pound bridge repair on Tuesday."

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

if not Path(CHROMIUM).exists():  # pragma: no cover - `make test` installs it first
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("chat")
    shutil.copytree(DEFAULT_CORPUS, root / "corpus")
    running = start_server(
        root / "index", root / "server.log", corpus=root / "corpus", admin_token=TOKEN
    )
    try:
        running.wait_until_healthy()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server: Server) -> Iterator[object]:
    """A fresh page on the chat that fails the test if any dialog (alert, confirm) opens or the
    page's Content-Security-Policy blocks anything."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    tab = context.new_page()
    dialogs: list[str] = []
    blocked: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message) -> None:
        # Google Fonts are allowed by the policy; offline they fail to load, which is no block.
        if "Content Security Policy" in message.text:
            blocked.append(message.text)

    tab.on("dialog", on_dialog)
    tab.on("console", on_console)
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    tab.goto(server.url + "/")
    expect(tab.locator("#qa-question textarea")).to_be_visible()
    # The start screen is filled from the index once the page has loaded.
    expect(tab.locator("#qa-stats")).to_contain_text("articles indexed", timeout=PAGE_TIMEOUT_MS)
    yield tab
    context.close()
    assert not dialogs, f"a dialog opened: {dialogs}"
    assert not blocked, f"the Content-Security-Policy blocked: {blocked}"


def ask(page, question: str):
    """Type `question`, send it, and return the locator of its reply once it is there."""
    replies = page.locator("#qa-chat .qa-reply")
    before = replies.count()
    page.locator("#qa-question textarea").fill(question)
    page.locator("#qa-ask").click()
    expect(replies).to_have_count(before + 1, timeout=ANSWER_TIMEOUT_MS)
    return replies.nth(before)


def test_start_screen_shows_the_index_and_examples_from_the_corpus(page) -> None:
    expect(page.locator("#qa-stats")).to_contain_text("2 articles indexed, built ")
    chat = page.locator("#qa-chat")
    expect(chat).to_contain_text("2 articles indexed")
    # Derived from the indexed articles; at least one names a person or place in them.
    expect(chat).to_contain_text("Blinken")


def test_answer_shows_the_span_in_bold_and_two_sources(page) -> None:
    reply = ask(page, "Where did Blinken and Lavrov meet?")
    expect(reply.locator(".qa-sources")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    expect(reply.locator("strong", has_text="New Delhi").first).to_be_visible()
    expect(reply.locator(".qa-sources .qa-source")).to_have_count(2)
    expect(reply).to_contain_text("[1]")
    expect(reply).to_contain_text("[2]")
    expect(reply).to_contain_text("2 sources agree")


def test_unanswerable_question_says_so(page) -> None:
    reply = ask(page, "What is the boiling point of mercury?")
    expect(reply).to_contain_text("No answer in the articles.")
    expect(reply.locator(".qa-related .qa-passage").first).to_be_visible()


def test_follow_up_is_resolved_against_the_previous_question(page) -> None:
    ask(page, "Where did Blinken and Lavrov meet?")
    reply = ask(page, "and when was that?")
    expect(reply.locator(".qa-read-as")).to_contain_text("Blinken Lavrov meet")
    expect(reply.locator("strong", has_text="March 2").first).to_be_visible()


def test_invalid_date_is_a_message_not_a_crash(page) -> None:
    page.locator("#qa-settings").get_by_text("Settings").click()
    page.locator("#qa-after textarea, #qa-after input").first.fill("2023-13-45")
    reply = ask(page, "Where did Blinken and Lavrov meet?")
    expect(reply).to_contain_text("Published after must be a date like 2023-03-02")
    page.locator("#qa-after textarea, #qa-after input").first.fill("")
    reply = ask(page, "Where did Blinken and Lavrov meet?")
    expect(reply.locator(".qa-sources")).to_be_visible()


def test_article_added_in_the_tab_is_answered_next(page) -> None:
    page.get_by_role("tab", name="Add articles").click()
    page.locator("#qa-add-token input").fill(TOKEN)
    page.locator("#qa-add-title textarea, #qa-add-title input").first.fill(
        "Lumbridge approves bridge repair"
    )
    page.locator("#qa-add-source textarea, #qa-add-source input").first.fill("Lumbridge Gazette")
    page.locator("#qa-add-text textarea").fill(LUMBRIDGE)
    page.locator("#qa-add-button").click()
    result = page.locator("#qa-add-result")
    expect(result).to_contain_text("Added 1 article", timeout=ANSWER_TIMEOUT_MS)
    expect(result).to_contain_text("added 1, updated 0")

    page.get_by_role("tab", name="Ask").click()
    reply = ask(page, "How much did the Lumbridge bridge repair cost?")
    expect(reply.locator("strong", has_text="4.2 million").first).to_be_visible()
    expect(reply.locator(".qa-sources")).to_contain_text(LUMBRIDGE)
    expect(reply.locator(".qa-sources")).to_contain_text("Lumbridge approves bridge repair")
    expect(reply.locator(".qa-sources")).to_contain_text("Lumbridge Gazette")


def test_uploaded_file_is_indexed_and_its_outlet_filterable(page, tmp_path: Path) -> None:
    upload = tmp_path / "varrock-museum.md"
    upload.write_text(
        "---\ntitle: Varrock museum reopens\nsource: Varrock Herald\npublished: 2023-04-01\n"
        "---\nThe Varrock museum reopened on Saturday after a renovation costing 9 million "
        "coins.\n",
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Add articles").click()
    page.locator("#qa-add-token input").fill(TOKEN)
    # The token sets the admin session cookie without which the file upload is refused.
    expect(page.locator("#qa-add-token-status")).to_contain_text("Admin token accepted")
    page.locator("#qa-add-files input[type=file]").set_input_files(str(upload))
    expect(page.locator("#qa-add-files")).to_contain_text("varrock-museum.md")
    page.locator("#qa-add-button").click()
    result = page.locator("#qa-add-result")
    expect(result).to_contain_text("Added 1 article", timeout=ANSWER_TIMEOUT_MS)
    expect(result).to_contain_text("uploads/varrock-museum.md")

    page.get_by_role("tab", name="Ask").click()
    page.locator("#qa-settings").get_by_text("Settings").click()
    page.locator("#qa-outlet input").click()
    page.get_by_role("option", name="Varrock Herald").click()
    reply = ask(page, "How much did the museum renovation cost?")
    expect(reply.locator(".qa-sources")).to_contain_text("Varrock Herald")
    expect(reply.locator(".qa-sources .qa-source")).to_have_count(1)


def test_the_page_is_served_with_security_headers(server: Server) -> None:
    response = httpx.get(server.url + "/", timeout=60)
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy


def test_files_are_refused_without_the_admin_session(page, server: Server) -> None:
    """Gradio's own upload route stores files only for a browser that entered the token."""
    gradio_temp = Path(server.log).parent / "gradio"
    before = sorted(gradio_temp.rglob("*"))
    upload = page.request.post(
        server.url + "/gradio_api/upload",
        multipart={"files": {"name": "a.txt", "mimeType": "text/plain", "buffer": b"anon"}},
    )
    assert upload.status == 403
    assert sorted(gradio_temp.rglob("*")) == before

    page.get_by_role("tab", name="Add articles").click()
    page.locator("#qa-add-token input").fill("not-the-token")
    expect(page.locator("#qa-add-token-status")).to_contain_text("Wrong admin token")
    upload = page.request.post(
        server.url + "/gradio_api/upload",
        multipart={"files": {"name": "a.txt", "mimeType": "text/plain", "buffer": b"anon"}},
    )
    assert upload.status == 403


def test_wrong_admin_token_adds_nothing(page) -> None:
    page.get_by_role("tab", name="Add articles").click()
    page.locator("#qa-add-token input").fill("not-the-token")
    page.locator("#qa-add-text textarea").fill("The Falador mayor opened a library on Monday.")
    page.locator("#qa-add-button").click()
    expect(page.locator("#qa-add-result")).to_contain_text("Wrong or missing admin token")


SCRIPT = "<script>window.__pwned = 1</script>"
IMAGE = '<img src=x onerror="window.__pwned=2">'
LINK = "[the notice](javascript:window.__pwned=3)"
RAW_LINK = "javascript:window.__pwned=4"
HOSTILE = {
    "id": "hostile-harbour",
    "title": "Draynor <script>window.__pwned = 5</script> harbour <b>notice</b>",
    "source": '<img src=y onerror="window.__pwned=6">',
    "url": "javascript:window.__pwned=7",
    "published": "2023-03-05",
    "text": (
        f"The Draynor harbour authority banned jet skis {SCRIPT} after a collision {IMAGE} "
        f"near the pier on Sunday, see {LINK} or {RAW_LINK} for the **full** notice."
    ),
}


def test_article_markup_is_shown_as_text_and_never_runs(page, server: Server) -> None:
    response = httpx.post(
        f"{server.url}/api/articles",
        json=HOSTILE,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=ANSWER_TIMEOUT_MS / 1000,
    )
    assert response.status_code == 201, response.text
    page.reload()
    expect(page.locator("#qa-stats")).to_contain_text("articles indexed")

    reply = ask(page, "What did the Draynor harbour authority ban after the collision?")
    for shown in (SCRIPT, IMAGE, LINK, RAW_LINK, "**full**", HOSTILE["title"], HOSTILE["source"]):
        expect(reply).to_contain_text(shown)
    # Nothing became markup: no script, image or link from the article, no bold from "**".
    assert reply.locator("script, img, iframe").count() == 0
    assert reply.locator("a").count() == 0  # the article's url is javascript:, so no link
    assert reply.locator("b").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-hostile.png"), full_page=True)
