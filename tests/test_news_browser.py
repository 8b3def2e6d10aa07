"""The news fields in the chat's sources panel, in a real browser: the real `qa serve` on the
purpose-written news corpus (tests/news_corpus), headless Chromium via Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.support.server import Server, start_server
from tests.test_chat_browser import (  # the same browser, page checks and `ask`
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    ask,
    browser,  # noqa: F401  (a fixture)
    expect,
)

pytestmark = pytest.mark.integration

NEWS = REPO / "tests" / "news_corpus"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("news-chat")
    shutil.copytree(NEWS, root / "corpus")
    running = start_server(root / "index", root / "server.log", corpus=root / "corpus")
    try:
        running.wait_until_healthy()
        yield running
    finally:
        running.stop()


@pytest.fixture
def page(browser, server: Server) -> Iterator[object]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    tab = context.new_page()
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    tab.goto(server.url + "/")
    expect(tab.locator("#qa-stats")).to_contain_text("7 articles indexed", timeout=PAGE_TIMEOUT_MS)
    yield tab
    context.close()


def test_outlets_that_differ_are_both_shown_with_their_sources(page) -> None:
    reply = ask(page, "How many homes did the wildfire destroy?")
    differ = reply.locator(".qa-differ")
    expect(differ).to_contain_text("Outlets differ.")
    expect(differ).to_contain_text("120")
    expect(differ).to_contain_text("150")
    expect(differ).to_contain_text("Harbor Gazette")
    expect(differ).to_contain_text("Valley Courier")
    expect(differ.locator(".qa-source")).to_have_count(1)
    expect(reply.locator(".qa-as-of")).to_contain_text("As of ")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-news-differ.png"), full_page=True)


def test_dates_speakers_and_reports_in_the_sources_panel(page) -> None:
    reply = ask(page, "When did the wildfire destroy homes in Millbrook?")
    sources = reply.locator(".qa-sources")
    expect(sources).to_contain_text("Harbor Gazette · 2024-05-10")
    expect(sources.locator(".qa-date")).to_contain_text("Thursday = 9 May 2024")
    expect(sources.locator(".qa-speaker")).to_contain_text("Quotes county officials")

    reply = ask(page, "What did the central bank raise its interest rate to?")
    expect(reply.locator(".qa-agree")).to_contain_text("1 report, carried by 2 outlets")
    expect(reply.locator(".qa-sources .qa-copy")).to_contain_text("Same report as post-rates")

    reply = ask(page, "Who said they had never seen a fire move this fast?")
    expect(reply.locator(".qa-short")).to_have_text("Dana Whitfield")
    expect(reply.locator(".qa-sentence strong", has_text="she").first).to_be_visible()
    expect(reply.locator(".qa-speaker")).to_contain_text("Quotes Dana Whitfield")

    reply = ask(page, "When did the Old Mill bridge reopen?")
    expect(reply.locator(".qa-sources")).to_contain_text("Town Bulletin · undated")
    expect(reply.locator(".qa-date")).to_contain_text("Tuesday: the article has no date")
    expect(reply.locator(".qa-as-of")).to_contain_text("The sources are undated.")
    page.screenshot(path=str(ARTIFACTS / "chat-news-sources.png"), full_page=True)
