from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.cleaning import clean_text, split_title

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.txt"))
SENTENCE_END = (".", "!", "?", "…", ".”", "?”", "!”", ".’", ".’”", '."', "?'", ".)")

CORPUS_CHROME = [
    "fbpx",
    "Blinken",
    "Andrew Thornebrooke",
    "Support our non-profit journalism",
    "Submit a Comment",
    "Your email address will not be published. Required fields are marked *",
    "Continue reading on the app",
    "Expand article",
    "Related Topics",
]


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


# --- the real corpus ---------------------------------------------------------------------------


def test_corpus_has_the_two_articles() -> None:
    assert len(CORPUS_FILES) == 2


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_chrome_removed_and_sentences_kept(path: Path) -> None:
    raw = path.read_text(encoding="utf-8")
    cleaned = clean_text(raw)
    lines = cleaned.split("\n")
    for chrome in CORPUS_CHROME:
        assert chrome not in lines
    body_sentences = [
        line.rstrip() for line in raw.splitlines() if line.rstrip().endswith(SENTENCE_END)
    ]
    assert len(body_sentences) >= 15
    for sentence in body_sentences:
        assert sentence in lines, sentence
    title, body = split_title(cleaned)
    assert lines[0] == title and lines[1] == ""
    assert lines.count(title) == 1
    assert body.startswith("U.S. Secretary of State Antony Blinken")  # the photo caption is kept


def test_corpus_titles_and_endings() -> None:
    first, second = (clean_text(p.read_text(encoding="utf-8")) for p in CORPUS_FILES)
    assert split_title(first)[0] == "Blinken Meets With Russian Counterpart"
    assert first.endswith("confirmed that Blinken had requested to speak to Lavrov, per AP News.")
    assert split_title(second)[0] == "US, Russia Hold Highest-Level Talks Since Ukraine War"
    assert "The Associated Press contributed to this report." in second
    assert second.endswith("He holds a master's in military history from Norwich University.")


# --- normalisation -----------------------------------------------------------------------------


def test_normalises_unicode_line_endings_and_blank_lines() -> None:
    raw = "Cafe\u0301 Owners Protest  \r\n\r\n\r\n\r\n\r\nThe cafe\u0301 closed. \r\nIt reopened.\r"
    assert clean_text(raw) == "Café Owners Protest\n\nThe café closed.\nIt reopened."


def test_paragraphs_and_single_newlines_kept() -> None:
    raw = "A Title Here\n\nOne line.\nSame paragraph.\n\n\n\n\nNext paragraph."
    assert clean_text(raw) == "A Title Here\n\nOne line.\nSame paragraph.\n\nNext paragraph."


def test_strips_bom_and_zero_width_spaces() -> None:
    assert clean_text("\ufeffA Big\u200b Title\n\nBody text.") == "A Big Title\n\nBody text."


def test_empty_and_chrome_only_inputs() -> None:
    assert clean_text("") == ""
    assert clean_text("   \n\n  ") == ""
    assert clean_text("fbpx\n\nShare this article\nRead more") == ""


def test_single_line_text_is_its_own_title() -> None:
    assert clean_text("Putin met Xi in Moscow on Monday.") == "Putin met Xi in Moscow on Monday."


def test_a_first_line_set_apart_is_the_title_of_a_written_file() -> None:
    raw = "Geology\n\nRocks form slowly.\n\nSome are old."
    assert clean_text(raw, first_line_title=True) == raw
    # Copied from a web page, a lone word at the top is more likely chrome than a title.
    assert clean_text(raw) == "Rocks form slowly.\n\nSome are old."
    assert clean_text("fbpx\n\nFBPX\n\nSkip to content\n\n" + raw, first_line_title=True) == raw
    # Not set apart: the old rule, where a one-word line is never the title.
    assert clean_text("Geology\nRocks Of The World\n\nThey form.", first_line_title=True) == (
        "Rocks Of The World\n\nThey form."
    )


def test_explicit_title_is_prepended_and_its_copies_dropped() -> None:
    raw = "Menu\nTALKS  RESUME\nBy Jane Doe\n\nDiplomats met on Thursday."
    assert clean_text(raw, title="Talks Resume") == "Talks Resume\n\nDiplomats met on Thursday."


def test_explicit_title_without_body_is_empty() -> None:
    assert clean_text("Talks Resume\n\nShare this article", title="Talks Resume") == ""


def test_interior_chrome_only_when_short_and_unpunctuated() -> None:
    raw = (
        "Talks Resume\n\nFirst sentence here.\n\nAdvertisement\n\nREAD MORE\n\n"
        "Subheading About Talks\n\nRead more about it, he said.\n\nLast sentence."
    )
    assert clean_text(raw) == (
        "Talks Resume\n\nFirst sentence here.\n\nSubheading About Talks\n\n"
        "Read more about it, he said.\n\nLast sentence."
    )


def test_sentences_mentioning_chrome_words_survive_at_edges() -> None:
    raw = (
        "Readers Respond\n\nHe declined to comment.\n\nSubscribers said the newsletter "
        "was late.\n\nShe urged everyone to share this article with friends, she said."
    )
    assert clean_text(raw) == raw


def test_long_unpunctuated_tail_line_kept() -> None:
    raw = "A Title Here\n\nBody sentence.\n\nA caption about the delegates arriving in New Delhi"
    assert clean_text(raw) == raw


# --- property: body sentences always survive, edge chrome never does ----------------------------

SUBJECTS = ["He", "She", "They", "Officials", "The minister", "A spokesperson", "Readers"]
SUBJECTS += ["Lavrov", "The committee", "Residents of Kyiv", "Our reporter", "The app maker"]
VERBS = ["left", "said no", "declined to comment", "urged people to subscribe", "shared it"]
VERBS += ["signed up", "read more files", "wrote a comment", "asked", "donated", "printed"]
VERBS += ["joined the discussion", "accepted the cookies", "followed us home", "met Blinken"]
WORDS = ["subscribe", "comment", "newsletter", "share", "app", "cookies", "read", "more"]
WORDS += ["related", "topics", "advertisement", "print", "email", "donate", "on", "Monday"]
WORDS += ["in", "Moscow", "the", "talks", "war", "Ukraine", "officials", "of", "and", "2023"]
ENDINGS = [".", "!", "?", "…", ".”", "?”", "!’", '."', "?'"]
TITLE_WORDS = ["Talks", "Stall", "Winter", "Nears", "Leaders", "Meet", "In", "Delhi", "Russia"]
TITLE_WORDS += ["US", "Ukraine", "Highest-Level", "Hold", "Deal", "Prices", "Rise", "Again"]
NAMES = ["Jane Doe", "Andrew Thornebrooke", "Maria Garcia-Lopez", "J. R. Smith", "Li Wei"]
LABELS = ["Blinken", "Lavrov", "Reuters", "Getty", "AFP", "Photo"]

PRE_TITLE_CHROME = [
    "fbpx",
    "Menu",
    "Search",
    "Skip to content",
    "Home › World › Europe",
    "News | Politics | World",
    "Sign up for our newsletter",
    "Subscribe now",
    "Share this article",
    "Advertisement",
    "March 2, 2023",
    "Updated: 2 March 2023, 10:45 GMT",
    "By Jane Doe",
    "Latest News",
    "We use cookies to improve your experience. By continuing you agree to our policy.",
]
HEAD_CHROME = [
    *LABELS,
    *NAMES,
    "By Jane Doe and Li Wei, Reuters",
    "Written by Andrew Thornebrooke",
    "Published March 2, 2023 at 10:45 a.m. ET",
    "Thursday, March 2, 2023",
    "Share on Facebook, Twitter",
    "Email | Print",
    "Listen to this article",
    "5 min read",
    "Comments (12)",
]
TAIL_CHROME = [
    "Read more",
    "Read more: Leaders Meet In Delhi Again",
    "Leave a comment",
    "Post a Comment",
    "Submit a Comment",
    "Your email address will not be published. Required fields are marked *",
    "Sign up for our newsletter",
    "Get our free daily newsletter in your inbox every morning.",
    "Share this article",
    "Share this story on WhatsApp",
    "Related Topics",
    "Related Articles",
    "You may also like",
    "More from World News",
    "Tags: Russia, Ukraine, Diplomacy",
    "Support our non-profit journalism",
    "Support independent reporting today.",
    "Donate now",
    "Become a member",
    "Continue reading on the app",
    "Download our free news app for the latest updates.",
    "Expand article",
    "Follow us on Twitter",
    "Click here to subscribe.",
    "© 2023 Example Media. All rights reserved.",
    "Copyright 2023 The Daily Example",
    "Accept all cookies",
    "Back to top",
    "fbpx",
    *NAMES,
]
INTERIOR_CHROME = ["Advertisement", "Read more", "Story continues below advertisement"]
INTERIOR_CHROME += ["Share this article", "Related Articles", "Sign up", "Read next"]
CASES = [str, str.upper, str.lower, str.title]


@st.composite
def sentences(draw: st.DrawFn) -> str:
    subject = draw(st.sampled_from(SUBJECTS))
    verb = draw(st.sampled_from(VERBS))
    extra = draw(st.lists(st.sampled_from(WORDS), max_size=25))
    sentence = " ".join([subject, verb, *extra])
    shape = draw(st.integers(0, 2))
    if shape == 1:  # a quote: “They left,” he said.
        return f"“{sentence},” {draw(st.sampled_from(['he', 'she']))} said."
    if shape == 2:  # ends with a quoted fragment
        return f"{subject} said “{verb}{draw(st.sampled_from(ENDINGS))}”"
    return sentence + draw(st.sampled_from(ENDINGS))


@st.composite
def chrome(draw: st.DrawFn, variants: list[str]) -> str:
    line = draw(st.sampled_from(CASES))(draw(st.sampled_from(variants)))
    decoration = draw(st.sampled_from(["", "", " ", "» ", "\u00a0"]))
    return decoration.lstrip() + line + (decoration if decoration.isspace() else "")


@st.composite
def articles(draw: st.DrawFn) -> tuple[str, str, list[str], list[str]]:
    title = " ".join(draw(st.lists(st.sampled_from(TITLE_WORDS), min_size=2, max_size=10)))
    title += draw(st.sampled_from(["", "", "?"]))
    captions = draw(
        st.lists(
            st.builds(
                lambda first, words, name: (
                    " ".join([first, *words]) + f" | Photo by {name}/Reuters"
                ),
                st.sampled_from(TITLE_WORDS),
                st.lists(st.sampled_from(TITLE_WORDS + WORDS), min_size=5, max_size=20),
                st.sampled_from(NAMES),
            ),
            max_size=2,
        )
    )
    body = draw(st.lists(sentences(), min_size=1, max_size=12))
    repeats = draw(
        st.lists(
            st.sampled_from([title, title.upper(), "  " + title.replace(" ", "  ")]), max_size=2
        )
    )
    head = draw(st.lists(chrome(HEAD_CHROME), max_size=4))
    items = [
        *draw(st.lists(chrome(PRE_TITLE_CHROME), max_size=4)),
        title,
        *draw(st.permutations([*repeats, *head])),
        *captions,
        *draw(st.lists(chrome(HEAD_CHROME), max_size=2)),
    ]
    for sentence in body:
        items.extend(draw(st.lists(chrome(INTERIOR_CHROME), max_size=1)))
        items.append(sentence)
    items.extend(draw(st.lists(chrome(TAIL_CHROME), max_size=6)))
    seps = draw(
        st.lists(
            st.sampled_from(["\n", "\n\n", "\n\n\n\n", " \n", "\r\n", "\r\n\r\n"]),
            min_size=len(items),
            max_size=len(items),
        )
    )
    raw = "".join(item + sep for item, sep in zip(items, seps, strict=True))
    return raw, title, captions, body


@settings(max_examples=300, deadline=None)
@given(articles())
def test_property_sentences_kept_and_edge_chrome_dropped(
    article: tuple[str, str, list[str], list[str]],
) -> None:
    raw, title, captions, body = article
    cleaned = clean_text(raw)
    assert _lines(cleaned) == [title, *captions, *body]
    assert cleaned.startswith(title + "\n\n")
    assert clean_text(cleaned) == cleaned  # idempotent
    # the same when the title comes from metadata
    assert _lines(clean_text(raw, title=title)) == [title, *captions, *body]
