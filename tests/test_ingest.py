from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.ingest import (
    NOT_FOLLOWED,
    article_id_problem,
    load_corpus,
    load_file,
    refused_by_policy,
)
from qa.types import Article, IngestResult, Skipped

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

BODY = "Diplomats met in Geneva on Thursday, officials said.\n\nThe talks lasted two hours."

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Talks Resume in Geneva | Example News</title>
<meta property="og:site_name" content="Example News">
<meta property="og:title" content="Talks Resume in Geneva">
<meta property="og:url" content="https://example.com/world/talks-resume">
<meta property="article:published_time" content="2023-03-02T10:15:00+00:00">
<meta name="author" content="Jane Doe">
</head><body>
<header><nav><ul>
  <li><a href="/">Home</a></li><li><a href="/world">World</a></li>
  <li><a href="/subscribe">Subscribe to our newsletter</a></li>
</ul></nav></header>
<main><article>
  <h1>Talks Resume in Geneva</h1>
  <p class="byline">By Jane Doe</p>
  <p>Diplomats from both countries met in Geneva on Thursday for the first time in a year,
     officials said after the session.</p>
  <p>The meeting lasted two hours and ended without a joint statement, according to people
     familiar with the talks.</p>
  <p>“We will keep talking,” one envoy told reporters outside the hotel after the session.</p>
</article></main>
<footer><p>© 2023 Example News. All rights reserved.</p>
  <a href="/privacy">Privacy policy</a> <a href="/cookies">Cookie settings</a></footer>
</body></html>
"""


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def only_article(result: IngestResult) -> Article:
    assert result.skipped == []
    assert len(result.articles) == 1
    return result.articles[0]


def only_skip(result: IngestResult) -> Skipped:
    assert result.articles == []
    assert len(result.skipped) == 1
    return result.skipped[0]


def front_matter(**fields: object) -> str:
    lines = [f"{key}: {value}" for key, value in fields.items()]
    return "---\n" + "\n".join(lines) + "\n---\n"


# --- the real corpus ---------------------------------------------------------------------------


def test_real_corpus_loads_two_articles() -> None:
    result = load_corpus(CORPUS)
    assert result.skipped == []
    assert [a.title for a in result.articles] == [
        "Blinken Meets With Russian Counterpart",
        "US, Russia Hold Highest-Level Talks Since Ukraine War",
    ]
    for article in result.articles:
        assert article.article_id == article.path == Path(article.path).name
        assert article.path.endswith(".txt")
        assert article.text.startswith(article.title + "\n\n")
        assert len(article.content_hash) == 64
        assert "fbpx" not in article.text
        assert "Submit a Comment" not in article.text
        assert "Related Topics" not in article.text


# --- text and markdown -------------------------------------------------------------------------


def test_plain_text_title_is_first_line(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "fbpx\n\nTalks Resume\n\n" + BODY + "\n\nShare this article\n")
    article = only_article(load_corpus(tmp_path))
    assert article.title == "Talks Resume"
    assert article.text == "Talks Resume\n\n" + BODY
    assert (article.article_id, article.path) == ("a.txt", "a.txt")
    assert (article.source, article.url, article.published, article.author) == ("", "", "", "")


GEOLOGY = "Rocks form slowly over millions of years.\n\nSome are older than the oceans."


@pytest.mark.parametrize(
    ("name", "head", "title"),
    [
        ("a.txt", "Geology", "Geology"),
        ("a.txt", "\n\nKenya", "Kenya"),
        ("a.md", "# Geology", "Geology"),
        ("a.md", "Kenya", "Kenya"),
        ("a.md", "---\nsource: Science Daily\n---\n\n## Geology", "Geology"),
    ],
)
def test_a_one_word_first_line_of_a_text_file_is_its_title(
    tmp_path: Path, name: str, head: str, title: str
) -> None:
    write(tmp_path, name, f"{head}\n\n{GEOLOGY}")
    article = only_article(load_corpus(tmp_path))
    assert article.title == title
    assert article.text == f"{title}\n\n{GEOLOGY}"


@pytest.mark.parametrize(
    "content",
    [
        "fbpx\n\nTalks Resume\n\n" + BODY,  # a tracking pixel is not capitalised
        "Advertisement\n\nTalks Resume\n\n" + BODY,  # chrome stays chrome
        "Geology\nTalks Resume\n\n" + BODY,  # no blank line: not set apart as a title
    ],
)
def test_a_first_line_that_is_not_a_title(tmp_path: Path, content: str) -> None:
    write(tmp_path, "a.txt", content)
    assert only_article(load_corpus(tmp_path)).title == "Talks Resume"


def test_explicit_titles_win_over_a_one_word_first_line(tmp_path: Path) -> None:
    page = HTML_PAGE.replace("<h1>Talks Resume in Geneva</h1>", "<h2>Geology</h2>")
    write(tmp_path, "page.html", page)
    write(tmp_path, "front.md", "---\ntitle: Rock Ages\n---\nGeology\n\n" + GEOLOGY)
    record = {"title": "Rock Ages", "text": "Geology\n\n" + GEOLOGY}
    write(tmp_path, "one.json", json.dumps(record))
    write(tmp_path, "list.json", json.dumps([record]))
    write(tmp_path, "lines.jsonl", json.dumps(record))
    result = load_corpus(tmp_path)
    assert result.skipped == []
    titles = {article.path: article.title for article in result.articles}
    assert titles == {
        "front.md": "Rock Ages",
        "lines.jsonl:1": "Rock Ages",
        "list.json#0": "Rock Ages",
        "one.json": "Rock Ages",
        "page.html": "Talks Resume in Geneva",
    }


def test_front_matter_metadata(tmp_path: Path) -> None:
    header = front_matter(
        title='"Talks Resume: Day Two"',
        source="Example News",
        url="https://example.com/a",
        published="2023-03-02",
        author="[Jane Doe, Li Wei]",
        id=42,
        extra="ignored",
    )
    write(tmp_path, "sub/a.md", header + "# Talks Resume: Day Two\n\n" + BODY)
    article = only_article(load_corpus(tmp_path))
    assert article.article_id == "42"
    assert article.path == "sub/a.md"
    assert article.title == "Talks Resume: Day Two"
    assert article.text == "Talks Resume: Day Two\n\n" + BODY  # the heading copy is dropped
    assert article.source == "Example News"
    assert article.url == "https://example.com/a"
    assert article.published == "2023-03-02"
    assert article.author == "Jane Doe, Li Wei"


def test_front_matter_title_need_not_be_in_text(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", front_matter(title="Talks Resume") + BODY)
    article = only_article(load_corpus(tmp_path))
    assert article.text == "Talks Resume\n\n" + BODY


def test_front_matter_with_crlf_and_bom(tmp_path: Path) -> None:
    raw = "\ufeff---\r\ntitle: Talks Resume\r\n---\r\n" + BODY.replace("\n", "\r\n")
    write(tmp_path, "a.txt", raw.encode("utf-8"))
    assert only_article(load_corpus(tmp_path)).text == "Talks Resume\n\n" + BODY


def test_markdown_syntax_removed(tmp_path: Path) -> None:
    text = (
        "## Talks Resume ##\n\n![photo](x.jpg)\n\n"
        "Diplomats met in [Geneva](https://example.com/geneva) on Thursday."
    )
    write(tmp_path, "a.md", text)
    article = only_article(load_corpus(tmp_path))
    assert article.text == "Talks Resume\n\nDiplomats met in Geneva on Thursday."


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("---\ntitle: [unclosed\n---\nBody text.", "invalid front matter: "),
        ("---\ntitle: A\nBody text without a closing line.", "invalid front matter: no closing"),
        ("---\n- a\n- b\n---\nBody text.", "invalid front matter: not a mapping"),
    ],
)
def test_malformed_front_matter_is_skipped(tmp_path: Path, content: str, reason: str) -> None:
    write(tmp_path, "bad.md", content)
    write(tmp_path, "good.txt", "Talks Resume\n\n" + BODY)
    result = load_corpus(tmp_path)
    assert [a.path for a in result.articles] == ["good.txt"]
    assert len(result.skipped) == 1
    assert result.skipped[0].path == "bad.md"
    assert result.skipped[0].reason.startswith(reason)


# --- HTML --------------------------------------------------------------------------------------


def test_html_with_trafilatura(tmp_path: Path) -> None:
    write(tmp_path, "page.html", HTML_PAGE)
    article = only_article(load_corpus(tmp_path))
    assert article.title == "Talks Resume in Geneva"
    assert article.source == "Example News"
    assert article.url == "https://example.com/world/talks-resume"
    assert article.published == "2023-03-02"
    assert article.author == "Jane Doe"
    assert article.article_id == "page.html"
    assert article.text.startswith("Talks Resume in Geneva\n\nDiplomats from both countries")
    assert "“We will keep talking,” one envoy told reporters" in article.text
    assert article.text.count("Talks Resume in Geneva") == 1
    for chrome in ("Home", "Subscribe", "Privacy", "Cookie", "All rights reserved", "By Jane"):
        assert chrome not in article.text


def test_html_declared_charset(tmp_path: Path) -> None:
    page = HTML_PAGE.replace('charset="utf-8"', 'charset="windows-1252"').replace("envoy", "envoyé")
    write(tmp_path, "page.HTM", page.encode("cp1252"))
    assert "one envoyé told reporters" in only_article(load_corpus(tmp_path)).text


def test_html_without_text_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "empty.html", "<html><head><title>Nothing</title></head><body></body></html>")
    assert only_skip(load_corpus(tmp_path)) == Skipped("empty.html", "no text after cleaning")


# --- JSON and JSONL ----------------------------------------------------------------------------


def test_json_single_object(tmp_path: Path) -> None:
    record = {"text": BODY, "title": "Talks Resume", "url": "u", "source": "s", "author": "a"}
    write(tmp_path, "one.json", json.dumps(record))
    article = only_article(load_corpus(tmp_path))
    assert (article.article_id, article.path, article.title) == (
        "one.json",
        "one.json",
        "Talks Resume",
    )
    assert (article.url, article.source, article.author) == ("u", "s", "a")
    assert article.text == "Talks Resume\n\n" + BODY


def test_json_list_ids_and_bad_records(tmp_path: Path) -> None:
    records = [
        {"id": 7, "text": "First Story\n\nOne happened.", "published": "March 2, 2023"},
        {"text": "Second Story\n\nTwo happened."},
        "not an object",
        {"title": "No text"},
        {"text": ["not", "a", "string"]},
        {"text": "   "},
    ]
    write(tmp_path, "many.json", json.dumps(records))
    result = load_corpus(tmp_path)
    assert [(a.article_id, a.path, a.title) for a in result.articles] == [
        ("7", "many.json#0", "First Story"),
        ("many.json#1", "many.json#1", "Second Story"),
    ]
    assert result.articles[0].published == "2023-03-02"
    assert result.skipped == [
        Skipped("many.json#2", "record is not a JSON object"),
        Skipped("many.json#3", 'missing "text" field'),
        Skipped("many.json#4", '"text" is not a string (list)'),
        Skipped("many.json#5", "no text after cleaning"),
    ]


def test_json_invalid(tmp_path: Path) -> None:
    write(tmp_path, "bad.json", '{"text": "unterminated')
    skip = only_skip(load_corpus(tmp_path))
    assert skip.path == "bad.json"
    assert skip.reason.startswith("invalid JSON: ")


@pytest.mark.parametrize(("content", "reason"), [("42", "JSON must be"), ("[]", "no records")])
def test_json_wrong_shape(tmp_path: Path, content: str, reason: str) -> None:
    write(tmp_path, "x.json", content)
    assert only_skip(load_corpus(tmp_path)).reason.startswith(reason)


def test_jsonl_records_and_bad_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "First Story\n\nOne happened.", "source": "Wire"}),
        '{"text": "broken',
        "",
        json.dumps({"id": "x-1", "title": "Third Story", "text": "Three happened."}),
        json.dumps({"text": 5}),
    ]
    write(tmp_path, "feed.jsonl", "\n".join(lines) + "\n")
    result = load_corpus(tmp_path)
    assert [(a.article_id, a.path, a.title) for a in result.articles] == [
        ("feed.jsonl#1", "feed.jsonl:1", "First Story"),
        ("x-1", "feed.jsonl:4", "Third Story"),
    ]
    assert result.articles[0].source == "Wire"
    assert result.articles[1].text == "Third Story\n\nThree happened."
    assert [s.path for s in result.skipped] == ["feed.jsonl:2", "feed.jsonl:5"]
    assert result.skipped[0].reason.startswith("invalid JSON: ")
    assert result.skipped[1].reason == '"text" is not a string (int)'


def test_jsonl_undecodable_line_skips_only_that_line(tmp_path: Path) -> None:
    good = json.dumps({"text": "A Story\n\nIt happened."}).encode()
    write(tmp_path, "feed.jsonl", good + b"\n" + '{"text": "caf\xe9"}'.encode("latin-1") + b"\n")
    result = load_corpus(tmp_path)
    assert [a.path for a in result.articles] == ["feed.jsonl:1"]
    assert result.skipped == [Skipped("feed.jsonl:2", "not UTF-8 text")]


def test_record_without_title_and_single_line(tmp_path: Path) -> None:
    write(tmp_path, "a.jsonl", json.dumps({"text": "Putin met Xi in Moscow on Monday."}))
    article = only_article(load_corpus(tmp_path))
    assert article.title == article.text == "Putin met Xi in Moscow on Monday."


# --- skip reasons ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("binary.txt", b"PK\x03\x04\x00\x00binary", "binary file (contains NUL bytes)"),
        ("latin1.txt", "Caf\xe9 News\n\nIt opened.".encode("latin-1"), "not UTF-8 text"),
        ("utf16.txt", "Title\n\nBody.".encode("utf-16"), "not UTF-8 text (UTF-16)"),
        ("scan.pdf", b"%PDF-1.4", "unsupported extension .pdf"),
        ("README", b"Some Title\n\nBody.", "no file extension"),
        ("chrome.txt", b"fbpx\n\nShare this article\n\nRead more\n", "no text after cleaning"),
        ("blank.md", b"   \n\n\t\n", "no text after cleaning"),
        ("blank.jsonl", b"\n\n", "no records"),
    ],
)
def test_skip_reasons(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    write(tmp_path, name, content)
    write(tmp_path, "zz_good.txt", "Talks Resume\n\n" + BODY)
    result = load_corpus(tmp_path)
    assert result.skipped == [Skipped(name, reason)]
    assert [a.path for a in result.articles] == ["zz_good.txt"]


def test_oversize_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "big.txt", b"a" * 6_100_000)

    def no_read(self: Path) -> bytes:
        raise AssertionError(f"read {self}")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    assert only_skip(load_corpus(tmp_path)) == Skipped("big.txt", "larger than 5 MB limit (6.1 MB)")


def test_oversize_with_custom_limit(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "x" * 1500)
    write(tmp_path, "b.txt", "x" * 1001)
    result = load_corpus(tmp_path, max_bytes=1000)
    assert [s.reason for s in result.skipped] == [
        "larger than 1 kB limit (1.5 kB)",
        "larger than 1 kB limit (1,001 bytes)",
    ]


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", front_matter(id="same") + "First Story\n\nOne happened.")
    write(tmp_path, "b.txt", front_matter(id="same") + "Second Story\n\nTwo happened.")
    write(tmp_path, "c.jsonl", json.dumps({"id": "same", "text": "Third.\n\nThree happened."}))
    result = load_corpus(tmp_path)
    assert [a.path for a in result.articles] == ["a.txt"]
    assert result.skipped == [
        Skipped("b.txt", "duplicate id 'same' (already used by a.txt)"),
        Skipped("c.jsonl:1", "duplicate id 'same' (already used by a.txt)"),
    ]


def test_duplicate_ids_within_one_file(tmp_path: Path) -> None:
    lines = [json.dumps({"id": 1, "text": f"Story {n}\n\nIt happened."}) for n in (1, 2)]
    path = write(tmp_path, "feed.jsonl", "\n".join(lines))
    result = load_file(path, tmp_path)
    assert [a.path for a in result.articles] == ["feed.jsonl:1"]
    assert result.skipped == [
        Skipped("feed.jsonl:2", "duplicate id '1' (already used by feed.jsonl:1)")
    ]


def test_missing_corpus_folder(tmp_path: Path) -> None:
    result = load_corpus(tmp_path / "nope")
    assert result.articles == []
    assert result.skipped[0].reason == "corpus folder not found"


# --- walking and load_file ---------------------------------------------------------------------


def test_walk_is_recursive_sorted_and_ignores_hidden(tmp_path: Path) -> None:
    for name in ("b.txt", "a/z.txt", "a/b/c.TXT", ".hidden.txt", ".git/x.txt", "a/.cache/y.txt"):
        write(tmp_path, name, f"Story {name}\n\nIt happened.")
    result = load_corpus(tmp_path)
    assert result.skipped == []
    assert [a.path for a in result.articles] == ["a/b/c.TXT", "a/z.txt", "b.txt"]


def test_load_file_single_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sub/one.txt", "Talks Resume\n\n" + BODY)
    article = only_article(load_file(path, tmp_path))
    assert (article.article_id, article.path) == ("sub/one.txt", "sub/one.txt")
    assert only_skip(load_file(tmp_path / "missing.txt", tmp_path)).reason == "not a regular file"


def test_load_file_outside_corpus_uses_name(tmp_path: Path) -> None:
    path = write(tmp_path, "elsewhere/one.txt", "Talks Resume\n\n" + BODY)
    assert only_article(load_file(path, tmp_path / "corpus")).path == "one.txt"


# --- metadata ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-03-02", "2023-03-02"),
        ("2023-03-02T23:15:00Z", "2023-03-02"),
        ("2023-03-02T10:15:00.123+05:30", "2023-03-02"),
        ("2023-03-02 10:15:00", "2023-03-02"),
        ("March 2, 2023", "2023-03-02"),
        ("Mar 2, 2023", "2023-03-02"),
        ("2 March 2023", "2023-03-02"),
        ("Thu, 02 Mar 2023 10:15:00 +0000", "2023-03-02"),
        ("last Thursday", ""),
        ("2023-13-45", ""),
        ("", ""),
        (None, ""),
        (12345, ""),
    ],
)
def test_published_is_normalised(tmp_path: Path, value: object, expected: str) -> None:
    record = {"text": "Talks Resume\n\nThey met.", "published": value}
    write(tmp_path, "a.json", json.dumps(record))
    assert only_article(load_corpus(tmp_path)).published == expected


def test_yaml_dates_are_normalised(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", front_matter(published="2023-03-02 10:15:00") + BODY)
    write(tmp_path, "b.txt", front_matter(published="2023-03-02") + BODY)
    assert [a.published for a in load_corpus(tmp_path).articles] == ["2023-03-02"] * 2


def test_content_hash_tracks_text_and_metadata(tmp_path: Path) -> None:
    def hash_of(record: dict[str, object]) -> str:
        write(tmp_path, "a.json", json.dumps(record))
        return only_article(load_corpus(tmp_path)).content_hash

    base = {"text": "Talks Resume\n\nThey met.", "url": "https://example.com/a"}
    first = hash_of(base)
    assert hash_of(base) == first
    assert hash_of({**base, "url": "https://example.com/b"}) != first
    assert hash_of({**base, "author": "Jane Doe"}) != first
    assert hash_of({**base, "text": "Talks Resume\n\nThey met again."}) != first
    assert hash_of({**base, "text": "Talks Resume\n\nThey met.\n\nShare this article"}) == first


def test_mixed_bag_never_raises(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "Talks Resume\n\n" + BODY)
    write(tmp_path, "b.json", "[[[[[[" * 20_000)
    write(
        tmp_path, "c.jsonl", "[" * 100_000 + "\n" + json.dumps({"text": "A Story\n\nIt happened."})
    )
    write(tmp_path, "d.html", b"\x89PNG\r\n\x1a\n garbage")
    write(tmp_path, "e.md", "---\n: : :\n---\n")
    result = load_corpus(tmp_path)
    assert [a.path for a in result.articles] == ["a.txt", "c.jsonl:2"]
    assert {s.path for s in result.skipped} == {"b.json", "c.jsonl:1", "d.html", "e.md"}


# --- links, ids, messages ----------------------------------------------------------------------


def test_a_file_link_is_skipped_not_followed(tmp_path: Path) -> None:
    corpus, outside = tmp_path / "corpus", tmp_path / "secret.txt"
    outside.write_text("Secret Notes\n\n" + BODY, encoding="utf-8")
    write(corpus, "good.txt", "Talks Resume\n\n" + BODY)
    (corpus / "link.txt").symlink_to(outside)
    (corpus / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (corpus / "inside.txt").symlink_to(corpus / "good.txt")
    result = load_corpus(corpus)
    assert [a.article_id for a in result.articles] == ["good.txt"]
    # Sorted by path, like every skip.
    assert result.skipped == [
        Skipped(name, NOT_FOLLOWED) for name in ("dangling.txt", "inside.txt", "link.txt")
    ]
    assert all(refused_by_policy(skip) for skip in result.skipped)


def test_a_folder_link_is_reported_and_not_followed(tmp_path: Path) -> None:
    corpus, outside = tmp_path / "corpus", tmp_path / "elsewhere"
    write(outside, "a.txt", "Talks Resume\n\n" + BODY)
    write(corpus, "good.txt", "Talks Resume\n\n" + BODY)
    (corpus / "more").symlink_to(outside, target_is_directory=True)
    result = load_corpus(corpus)
    assert [a.article_id for a in result.articles] == ["good.txt"]
    assert result.skipped == [Skipped("more", NOT_FOLLOWED)]


def test_a_file_swapped_for_a_link_while_loading_is_not_followed(tmp_path: Path) -> None:
    # The link is created after the walk saw a file: reading must not follow it either.
    corpus, outside = tmp_path / "corpus", tmp_path / "secret.txt"
    outside.write_text("Secret Notes\n\n" + BODY, encoding="utf-8")
    path = write(corpus, "a.txt", "Talks Resume\n\n" + BODY)
    path.unlink()
    path.symlink_to(outside)
    assert only_skip(load_file(path, corpus)) == Skipped("a.txt", NOT_FOLLOWED)


def test_a_named_pipe_is_skipped_without_blocking(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.txt")
    assert only_skip(load_corpus(tmp_path)) == Skipped("pipe.txt", "not a regular file")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"text": "abc', "invalid JSON: Unterminated string starting at line 1"),
        ('{"text": "a\tb"}', "invalid JSON: Invalid control character at line 1"),
        ('{"text": "x"} {}', "invalid JSON: Extra data at line 1"),
    ],
)
def test_json_messages_read_well(tmp_path: Path, content: str, reason: str) -> None:
    write(tmp_path, "a.json", content)
    skip = only_skip(load_corpus(tmp_path))
    assert skip.reason == reason and " at at " not in skip.reason


def test_jsonl_messages_read_well(tmp_path: Path) -> None:
    write(tmp_path, "a.jsonl", '{"text": "abc\n')
    (skip,) = load_corpus(tmp_path).skipped[:1]
    assert skip.reason == "invalid JSON: Unterminated string starting at column 10"


@pytest.mark.parametrize(
    ("article_id", "problem"),
    [
        ("a\u0000b", "control characters"),
        ("line\u0007bell", "control characters"),
        ("../../etc/passwd", '".." segment'),
        ("a/./b", '".." segment'),
        ("..", '".." segment'),
        ("..\\windows", '".." segment'),
        ("/etc/passwd", "absolute path"),
        ("x" * 1001, "longer than 1,000 characters"),
    ],
)
def test_an_unusable_explicit_id_is_skipped(tmp_path: Path, article_id: str, problem: str) -> None:
    record = {"id": article_id, "title": "Talks Resume", "text": BODY}
    write(tmp_path, "a.json", json.dumps([record, {"id": "fine/id-1", "text": BODY}]))
    result = load_corpus(tmp_path)
    assert [a.article_id for a in result.articles] == ["fine/id-1"]
    (skip,) = result.skipped
    assert skip.path == "a.json#0" and skip.reason.startswith("invalid id ")
    assert problem in skip.reason and refused_by_policy(skip)
    assert article_id_problem(article_id) is not None


def test_usable_ids(tmp_path: Path) -> None:
    for article_id in ("a.txt", "uploads/x.md", "a.json#0", "..foo", "x" * 1000, "café 1"):
        assert article_id_problem(article_id) is None, article_id


def test_a_skip_is_one_line_whatever_the_name() -> None:
    shown = str(Skipped("a\nb\x1b[31m.txt", "empty file"))
    assert shown == "skipped a\\nb\\x1b[31m.txt: empty file"
