"""Retrieval on the fake embedder: FTS5 query safety, modes, fusion, filters, overlaps, updates."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qa.chunking import Chunker
from qa.indexing import build_index
from qa.retrieval import (
    SEARCH_MODES,
    FusionSettings,
    Retriever,
    _without_overlaps,
    lexical_words,
)
from qa.service import Assistant
from qa.store import ChunkFilter, IndexReader
from qa.store.reader import match_expression, without_common_words
from qa.types import Hit
from tests.conftest import FakeEmbedder

MODES = list(SEARCH_MODES)


# --- helpers -----------------------------------------------------------------------------------


def write_md(
    folder: Path,
    name: str,
    *,
    title: str,
    body: str,
    source: str | None = None,
    published: str | None = None,
) -> Path:
    """A Markdown article whose front matter sets the title, source and publication date."""
    meta = [f"title: {json.dumps(title)}"]
    if source is not None:
        meta.append(f"source: {json.dumps(source)}")
    if published is not None:
        meta.append(f"published: {published}")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n" + "\n".join(meta) + "\n---\n" + body + "\n", encoding="utf-8")
    return path


def build(corpus: Path, index: Path, *, chunk_tokens: int = 24, overlap_tokens: int = 4):
    embedder = FakeEmbedder()
    chunker = Chunker(
        embedder.count_tokens, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens
    )
    return build_index(corpus, index, embedder, chunker)


def open_assistant(index: Path) -> Assistant:
    return Assistant(IndexReader.open(index), FakeEmbedder())


def assert_exact_citations(assistant: Assistant, hits: Sequence[Hit]) -> None:
    for hit in hits:
        article = assistant.article(hit.article_id)
        assert article is not None, hit.article_id
        assert article.text[hit.start : hit.end] == hit.text


def assert_no_overlaps(hits: Sequence[Hit]) -> None:
    for a, b in itertools.combinations(hits, 2):
        if a.article_id == b.article_id:
            assert a.end <= b.start or b.end <= a.start, (a, b)


def chunk_rows(assistant: Assistant) -> list:
    return assistant._reader.query(
        'SELECT c.id, c.start, c."end", c.text, a.article_id FROM chunks c '
        "JOIN articles a ON a.id = c.article ORDER BY a.article_id, c.start"
    )


# --- a small general corpus: FTS5 syntax safety and modes ---------------------------------------

GADGET_ARTICLES = {
    "fair.md": (
        "Gadget fair opens downtown",
        "Which stand showed the best sensor at the fair? Every stand showed a sensor.\n\n"
        "The stand at the fair showed which sensor was best, and the sensor stand was busy.\n\n"
        "Visitors asked which stand at the fair showed the newest sensor for their phones.",
    ),
    "makers.md": (
        "Small makers at the gadget fair",
        "Phones, tablets and watches from many makers filled the hall on Saturday morning.\n\n"
        "A quiet corner stand showed the XQ-7741 module, which no other maker sells yet.\n\n"
        "Most makers said the crowds were larger than last year and sales were good.",
    ),
    "review.md": (
        "Review of the new tablets",
        "The tablets were light and fast, and reviewers praised the bright screens.\n\n"
        "Battery life was the main complaint; two tablets lasted under six hours.\n\n"
        "Ms Thornebury, who led the tests, said the cheapest model was the best value.",
    ),
}


@pytest.fixture(scope="module")
def gadgets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    root = tmp_path_factory.mktemp("gadgets")
    corpus = root / "corpus"
    for name, (title, body) in GADGET_ARTICLES.items():
        write_md(corpus, name, title=title, body=body, source="Tech Daily", published="2023-05-01")
    build(corpus, root / "index")
    assistant = open_assistant(root / "index")
    yield assistant
    assistant.close()


FTS5_SYNTAX = [
    '"',
    '""',
    '"unbalanced',
    "*",
    "fair*",
    "NEAR",
    "NEAR(a b)",
    "NEAR(fair stand, 2)",
    "-",
    "-fair",
    "^fair",
    ":",
    "title:fair",
    "text:sensor OR title:fair",
    "{title text}: fair",
    "(",
    ")",
    "((fair",
    "fair)",
    "AND",
    "OR",
    "NOT",
    "fair AND",
    "OR fair",
    "fair NOT stand",
    "a + b",
    "🙂🔥",
    "fair 🙂 stand",
    "",
    " ",
    "\x00",
    "___",
    "the",
    "XQ-7741*",
    "'; DROP TABLE chunks; --",
    '"NEAR( -*',
]

_SYNTAXY = st.sampled_from(
    ['"', "*", "NEAR", "NEAR(", "(", ")", "-", "^", ":", "+", "AND", "OR", "NOT", "title:",
     "text:", "{", "}", ",", " ", "fair", "sensor", "🙂", "\x00", "_", "'"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.lists(_SYNTAXY, max_size=12).map("".join)))
@example(text="")
@example(text='"NEAR( -*')
@example(text="NEAR(a b)")
@example(text="title:x")
@example(text="AND OR NOT")
@example(text="((((")
@example(text="🙂")
def test_any_string_is_a_valid_match_expression(gadgets: Assistant, text: str) -> None:
    match = match_expression(lexical_words(text))
    # Only quoted words joined by OR: no FTS5 operator can survive.
    assert match == "" or re.fullmatch(r'"[^"]+"( OR "[^"]+")*', match)
    assert isinstance(gadgets._reader.lexical_search(lexical_words(text), 5), list)
    assert isinstance(gadgets._reader._full_text_search(lexical_words(text), 5, None), list)
    for mode in ("lexical", "hybrid"):
        hits = gadgets.search(text, k=3, mode=mode)
        assert isinstance(hits, list)
        assert all(isinstance(hit, Hit) for hit in hits)


@pytest.mark.parametrize("text", FTS5_SYNTAX)
@pytest.mark.parametrize("mode", MODES)
def test_fts5_syntax_in_a_query_is_searched_as_plain_words(
    gadgets: Assistant, text: str, mode: str
) -> None:
    hits = gadgets.search(text, k=3, mode=mode)
    assert isinstance(hits, list)
    assert_exact_citations(gadgets, hits)


def lexical_query(text: str) -> str:
    return match_expression(lexical_words(text))


def test_fts5_operators_are_matched_as_words() -> None:
    assert (
        lexical_query('title:fair NEAR(a b) -x* "y')
        == '"title" OR "fair" OR "near" OR "b" OR "x" OR "y"'
    )
    assert lexical_query("Where did Blinken and Lavrov meet?") == '"blinken" OR "lavrov" OR "meet"'
    # A query of nothing but stop words still searches for them.
    assert lexical_query("Who was it?") == '"who" OR "was" OR "it"'
    assert lexical_query("fair FAIR Fair") == '"fair"'
    assert lexical_query("?!* ()") == ""


def test_a_very_long_query_is_still_a_valid_match_expression(gadgets: Assistant) -> None:
    text = " ".join(f"w{i}" for i in range(300)) + " sensor"
    assert len(lexical_query(text).split(" OR ")) == 301
    hits = gadgets.search(text, k=3, mode="lexical")
    assert hits and all("sensor" in hit.text.lower() for hit in hits)


def test_lexical_mode_finds_an_exact_rare_token(gadgets: Assistant) -> None:
    query = "Which stand showed the XQ-7741 sensor at the fair?"
    lexical = gadgets.search(query, k=3, mode="lexical")
    dense = gadgets.search(query, k=3, mode="dense")
    assert "XQ-7741" in lexical[0].text and lexical[0].article_id == "makers.md"
    # The corpus is built so that word overlap alone points elsewhere: BM25's rare-token
    # weight is what finds the passage.
    assert "XQ-7741" not in dense[0].text
    # Only passages with the code match the bare code; case does not matter.
    for code in ("XQ-7741", "xq-7741"):
        only = gadgets.search(code, k=10, mode="lexical")
        assert [hit.article_id for hit in only] == ["makers.md"]
        assert "XQ-7741" in only[0].text


def test_lexical_mode_finds_a_surname(gadgets: Assistant) -> None:
    hits = gadgets.search("What did Thornebury say about the fair stand sensor?", mode="lexical")
    assert "Thornebury" in hits[0].text


def test_lexical_mode_returns_nothing_for_words_absent_from_the_corpus(gadgets: Assistant) -> None:
    assert gadgets.search("zyzzyva quetzalcoatl", mode="lexical") == []


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_returns_ranked_exact_hits(gadgets: Assistant, mode: str) -> None:
    hits = gadgets.search("tablets battery screens", k=4, mode=mode)
    assert 0 < len(hits) <= 4
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len({hit.chunk_id for hit in hits}) == len(hits)
    assert_exact_citations(gadgets, hits)
    assert_no_overlaps(hits)
    if mode == "lexical":
        assert hits[0].article_id == "review.md"


@pytest.mark.parametrize("mode", MODES)
def test_empty_query_or_k_zero_returns_nothing(gadgets: Assistant, mode: str) -> None:
    assert gadgets.search("", mode=mode) == []
    assert gadgets.search("   \n", mode=mode) == []
    assert gadgets.search("sensor", k=0, mode=mode) == []


@pytest.mark.parametrize("mode", ["fuzzy", "", "HYBRID", "bm25", None])
def test_an_invalid_mode_raises_value_error(gadgets: Assistant, mode) -> None:
    with pytest.raises(ValueError, match="mode must be one of hybrid, dense, lexical"):
        gadgets.search("sensor", mode=mode)


# --- hybrid fusion ------------------------------------------------------------------------------


class RankedReader:
    """Stands in for IndexReader with fixed dense, sentence and lexical rankings of one-chunk
    articles.
    """

    def __init__(self, dense: list[int], lexical: list[int], sentences: list[int] | None = None):
        self.dense, self.lexical = dense, lexical
        self.sentences = dense if sentences is None else sentences
        self.asked: dict[str, int] = {}
        self.manifest = SimpleNamespace(chunks=len(set(dense) | set(lexical)))

    def filtered_chunk_ids(self, filters: ChunkFilter) -> list[int]:
        return sorted(set(self.dense) | set(self.lexical) | set(self.sentences))

    def search_sentences(self, vector, k, allowed_chunk_ids=None) -> list[tuple[int, float]]:
        self.asked["sentences"] = k
        return [(cid, 1.0 - i / 100) for i, cid in enumerate(self.sentences[:k])]

    def search_vectors(self, vector, k, allowed_ids=None) -> list[tuple[int, float]]:
        self.asked["dense"] = k
        return [(cid, 1.0 - i / 100) for i, cid in enumerate(self.dense[:k])]

    def lexical_search(self, words, k, filters=None, allowed=None) -> list[tuple[int, float]]:
        self.asked["lexical"] = k
        return [(cid, 10.0 - i) for i, cid in enumerate(self.lexical[:k])]

    def hits(self, scored) -> list[Hit]:
        return [
            Hit(cid, f"{cid}.txt", "t", "", "", "", "passage", 0, 7, score) for cid, score in scored
        ]


# Chunk 2 is second in both rankings; 1 is first only in dense, 4 first only in lexical.
DENSE, LEXICAL = [1, 2, 3], [4, 2, 5]
# Explicit settings, so that retuning the defaults does not change what these tests mean.
EQUAL = FusionSettings(
    dense_weight=1.0, sentence_weight=0.0, lexical_weight=1.0, rrf_k=60, depth=50
)


def test_fuse_ranks_a_chunk_good_in_both_above_one_first_in_only_one() -> None:
    retriever = Retriever(RankedReader(DENSE, LEXICAL), FakeEmbedder(), EQUAL)  # type: ignore[arg-type]
    fused = retriever._fuse([(1.0, [(c, 0.0) for c in DENSE]), (1.0, [(c, 0.0) for c in LEXICAL])])
    order = [chunk_id for chunk_id, _ in fused]
    assert order[0] == 2
    assert set(order) == {1, 2, 3, 4, 5}
    scores = dict(fused)
    assert scores[2] == pytest.approx(2 / 62)
    assert scores[1] == scores[4] == pytest.approx(1 / 61)
    assert order.index(1) < order.index(4)  # a tie is broken by chunk id, deterministically


@pytest.mark.parametrize("fusion", [EQUAL, FusionSettings()], ids=["equal", "default"])
def test_hybrid_search_puts_a_chunk_good_in_both_rankings_first(fusion) -> None:
    hits = Retriever(RankedReader(DENSE, LEXICAL), FakeEmbedder(), fusion).search("q", k=5)  # type: ignore[arg-type]
    assert hits[0].chunk_id == 2
    assert {hit.chunk_id for hit in hits} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    ("fusion", "expected"),
    [
        (EQUAL, [2, 1, 4, 3, 5]),
        (replace(EQUAL, lexical_weight=2.0), [2, 4, 5, 1, 3]),
        (replace(EQUAL, dense_weight=2.0), [2, 1, 3, 4, 5]),
        (replace(EQUAL, lexical_weight=0.0), [1, 2, 3, 4, 5]),
        (replace(EQUAL, rrf_k=1), [2, 1, 4, 3, 5]),
    ],
)
def test_hybrid_search_fuses_both_rankings_by_weighted_reciprocal_rank(fusion, expected) -> None:
    reader = RankedReader(DENSE, LEXICAL)
    retriever = Retriever(reader, FakeEmbedder(), fusion)  # type: ignore[arg-type]
    hits = retriever.search("anything at all", k=5, mode="hybrid")
    assert [hit.chunk_id for hit in hits] == expected
    assert set(reader.asked) == {"dense", "lexical"}


def test_weights_decide_between_the_two_single_ranking_leaders() -> None:
    def order(fusion: FusionSettings) -> list[int]:
        reader = RankedReader(DENSE, LEXICAL)
        hits = Retriever(reader, FakeEmbedder(), fusion).search("q", k=5)  # type: ignore[arg-type]
        return [hit.chunk_id for hit in hits]

    lexical_heavy = order(replace(EQUAL, lexical_weight=1.5))
    dense_heavy = order(replace(EQUAL, dense_weight=1.5))
    assert lexical_heavy.index(4) < lexical_heavy.index(1)
    assert dense_heavy.index(1) < dense_heavy.index(4)


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_single_modes_use_only_their_own_ranking(mode: str) -> None:
    reader = RankedReader(DENSE, LEXICAL)
    hits = Retriever(reader, FakeEmbedder(), EQUAL).search("q", k=3, mode=mode)  # type: ignore[arg-type]
    assert [hit.chunk_id for hit in hits] == (DENSE if mode == "dense" else LEXICAL)
    assert set(reader.asked) == {mode}


SENTENCES = [2, 3, 1]


@pytest.mark.parametrize(
    ("fusion", "mode", "asked", "expected"),
    [
        # The defaults rank the dense side by each passage's best sentence only.
        (FusionSettings(), "dense", {"sentences"}, SENTENCES),
        (FusionSettings(), "hybrid", {"sentences", "lexical"}, [2, 4, 5]),
        (replace(EQUAL, sentence_weight=1.0), "dense", {"dense", "sentences"}, [2, 1, 3]),
        (replace(EQUAL, sentence_weight=1.0), "hybrid", {"dense", "sentences", "lexical"}, None),
    ],
)
def test_sentence_ranking_joins_the_fusion_by_its_weight(fusion, mode, asked, expected) -> None:
    reader = RankedReader(DENSE, LEXICAL, SENTENCES)
    hits = Retriever(reader, FakeEmbedder(), fusion).search("q", k=3, mode=mode)  # type: ignore[arg-type]
    assert set(reader.asked) == asked
    if expected is not None:
        assert [hit.chunk_id for hit in hits] == expected
    else:
        assert hits[0].chunk_id == 2  # second in all three rankings


@pytest.mark.parametrize(
    "weights",
    [
        {"dense_weight": -1.0},
        {"dense_weight": 0.0, "sentence_weight": 0.0},
        {"lexical_weight": -0.5},
        {"rrf_k": -1},
        {"depth": 0},
    ],
)
def test_fusion_settings_reject_weights_that_rank_nothing(weights) -> None:
    with pytest.raises(ValueError):
        FusionSettings(**weights)


# --- filters ------------------------------------------------------------------------------------


def _big_wire_body(i: int) -> str:
    return "\n\n".join(
        f"Volcano eruption {part} on day {i}: the volcano eruption sent ash over valley {i}."
        for part in ("at dawn", "in the morning", "at noon", "in the evening", "overnight")
    )


def _small_post_body(i: int) -> str:
    return (
        f"The town garden club met on Monday {i} to plan the spring flower show downtown.\n\n"
        f"Residents of street {i} also watched a short film about a volcano eruption.\n\n"
        f"The bake sale raised money for new benches in the park near school {i}."
    )


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    """12 Big Wire articles all about volcanoes, 3 Small Post ones that mention one, 1 undated."""
    root = tmp_path_factory.mktemp("newsroom")
    corpus = root / "corpus"
    for i in range(12):
        write_md(
            corpus,
            f"big-{i:02}.md",
            title=f"Volcano eruption update {i}",
            body=_big_wire_body(i),
            source="Big Wire",
            published=f"2023-01-{i + 1:02}",
        )
    for i in range(3):
        write_md(
            corpus,
            f"small-{i}.md",
            title=f"Town notes {i}",
            body=_small_post_body(i),
            source="Small Post",
            published=f"2023-03-{i + 1:02}",
        )
    (corpus / "almanac.txt").write_text(
        "Volcano almanac\n\n"
        + "Volcano eruption, volcano eruption: the volcano eruption list.\n\n" * 3,
        encoding="utf-8",
    )
    build(corpus, root / "index")
    assistant = open_assistant(root / "index")
    yield assistant
    assistant.close()


QUERY = "volcano eruption"


def test_the_filter_corpus_is_big_enough_that_post_filtering_would_fail(newsroom) -> None:
    rows = chunk_rows(newsroom)
    volcanic = [r for r in rows if "volcano" in r["text"].lower()]
    assert len([r for r in volcanic if r["article_id"].startswith("big-")]) > 50
    for mode in MODES:
        unfiltered = newsroom.search(QUERY, k=10, mode=mode)
        assert not [hit for hit in unfiltered if hit.source == "Small Post"], mode
        assert "almanac.txt" in {hit.article_id for hit in unfiltered}, mode


@pytest.mark.parametrize("source", ["small post", "Small Post", "SMALL POST"])
@pytest.mark.parametrize("mode", MODES)
def test_source_filter_is_applied_before_the_top_k_cut(newsroom, mode, source) -> None:
    hits = newsroom.search(QUERY, k=3, source=source, mode=mode)
    assert len(hits) == 3
    assert {hit.source for hit in hits} == {"Small Post"}
    assert_exact_citations(newsroom, hits)
    assert_no_overlaps(hits)
    if mode != "dense":
        assert {hit.article_id for hit in hits} == {"small-0.md", "small-1.md", "small-2.md"}


@pytest.mark.parametrize("mode", MODES)
def test_published_after_is_inclusive_and_applied_before_the_cut(newsroom, mode) -> None:
    hits = newsroom.search(QUERY, k=5, published_after="2023-03-02", mode=mode)
    assert {hit.published for hit in hits} == {"2023-03-02", "2023-03-03"}
    assert {hit.source for hit in hits} == {"Small Post"}


@pytest.mark.parametrize("mode", MODES)
def test_published_before_is_inclusive_and_applied_before_the_cut(newsroom, mode) -> None:
    hits = newsroom.search(QUERY, k=15, published_before="2023-01-03", mode=mode)
    assert {hit.published for hit in hits} == {"2023-01-01", "2023-01-02", "2023-01-03"}
    assert len(hits) == 15  # every passage of those three articles mentions the volcano


@pytest.mark.parametrize("mode", MODES)
def test_a_one_day_window_and_date_objects(newsroom, mode) -> None:
    day = dt.date(2023, 3, 2)
    hits = newsroom.search(QUERY, k=3, published_after=day, published_before=day, mode=mode)
    assert hits and {hit.article_id for hit in hits} == {"small-1.md"}
    as_text = newsroom.search(
        QUERY, k=3, published_after="2023-03-02", published_before="2023-03-02", mode=mode
    )
    assert as_text == hits


@pytest.mark.parametrize(
    "dates",
    [
        {"published_after": "1900-01-01"},
        {"published_before": "2999-12-31"},
        {"published_after": "1900-01-01", "published_before": "2999-12-31"},
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_an_undated_article_is_excluded_by_any_date_filter(newsroom, mode, dates) -> None:
    hits = newsroom.search(QUERY, k=10, mode=mode, **dates)
    assert len(hits) == 10
    assert all(hit.published for hit in hits)
    assert "almanac.txt" not in {hit.article_id for hit in hits}


@pytest.mark.parametrize("mode", MODES)
def test_article_ids_filter_is_applied_before_the_cut(newsroom, mode) -> None:
    hits = newsroom.search(QUERY, k=3, article_ids=["small-1.md", "big-05.md"], mode=mode)
    assert len(hits) == 3
    assert {hit.article_id for hit in hits} <= {"small-1.md", "big-05.md"}
    only_small = newsroom.search(QUERY, k=5, article_ids=("small-2.md",), mode=mode)
    assert only_small and {hit.article_id for hit in only_small} == {"small-2.md"}


@pytest.mark.parametrize("mode", MODES)
def test_filters_combine_with_and(newsroom, mode) -> None:
    hits = newsroom.search(QUERY, k=5, source="big wire", published_after="2023-01-11", mode=mode)
    assert {hit.article_id for hit in hits} == {"big-10.md", "big-11.md"}
    assert newsroom.search(QUERY, source="Small Post", article_ids=["big-05.md"], mode=mode) == []


@pytest.mark.parametrize(
    "filters",
    [
        {"source": "Nobody"},
        {"source": "Small"},
        {"article_ids": []},
        {"article_ids": ["missing.md"]},
        {"published_after": "2030-01-01"},
        {"published_before": "2000-01-01"},
        {"published_after": "2023-03-03", "published_before": "2023-03-01"},
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_filter_that_matches_nothing_returns_no_hits(newsroom, mode, filters) -> None:
    assert newsroom.search(QUERY, k=5, mode=mode, **filters) == []


@pytest.mark.parametrize("argument", ["published_after", "published_before"])
@pytest.mark.parametrize("value", ["2023-13-45", "yesterday", "03/02/2023", "2023-02-30"])
def test_a_malformed_date_raises_value_error_naming_the_argument(newsroom, argument, value) -> None:
    with pytest.raises(ValueError, match=argument):
        newsroom.search(QUERY, **{argument: value})


@pytest.mark.parametrize("mode", MODES)
def test_source_filter_is_case_insensitive_beyond_ascii(tmp_path: Path, mode: str) -> None:
    corpus = tmp_path / "corpus"
    body = "The harbour ferry timetable changes on Monday for the summer season."
    write_md(corpus, "a.md", title="Ferry news", body=body, source="Østersjø Tidende")
    write_md(corpus, "b.md", title="Ferry news too", body=body, source="Élan Quotidien")
    build(corpus, tmp_path / "index")
    assistant = open_assistant(tmp_path / "index")
    try:
        # Differences in ASCII letters already work.
        hits = assistant.search("ferry", k=1, source="Østersjø TIDENDE", mode=mode)
        assert [hit.article_id for hit in hits] == ["a.md"]
        for source, article_id in (("ØSTERSJØ TIDENDE", "a.md"), ("élan quotidien", "b.md")):
            hits = assistant.search("ferry", k=1, source=source, mode=mode)
            assert [hit.article_id for hit in hits] == [article_id], source
    finally:
        assistant.close()


# --- overlapping chunks -------------------------------------------------------------------------

WORDS = (
    "river stone cloud meadow lantern copper violet harbour pepper candle marble orchard "
    "silver willow falcon"
).split()


def write_ice_field(corpus: Path) -> None:
    """One long article: every sentence names the glacier, so every passage matches."""
    cycle = itertools.cycle(WORDS)
    paragraphs = [
        " ".join(f"Glacier {next(cycle)} {next(cycle)} {next(cycle)}." for _ in range(10))
        for _ in range(6)
    ]
    (corpus / "ice.txt").write_text(
        "Notes from the ice field\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
    )


def ice_field_index(factory: pytest.TempPathFactory, name: str, overlap_tokens: int) -> Path:
    """The ice-field corpus indexed in chunks of 24 tokens with the given overlap."""
    root = factory.mktemp(name)
    (root / "corpus").mkdir()
    write_ice_field(root / "corpus")
    build(root / "corpus", root / "index", chunk_tokens=24, overlap_tokens=overlap_tokens)
    return root / "index"


@pytest.fixture(scope="module")
def ice_field(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    assistant = open_assistant(ice_field_index(tmp_path_factory, "ice", overlap_tokens=12))
    yield assistant
    assistant.close()


def disjoint_count(rows) -> int:
    """The most pairwise-disjoint chunks (interval scheduling: earliest end first)."""
    count, last_end = 0, -1
    for row in sorted(rows, key=lambda r: r["end"]):
        if row["start"] >= last_end:
            count, last_end = count + 1, row["end"]
    return count


def test_the_ice_field_has_overlapping_chunks(ice_field: Assistant) -> None:
    rows = chunk_rows(ice_field)
    overlapping = [(a, b) for a, b in itertools.pairwise(rows) if b["start"] < a["end"]]
    assert len(overlapping) >= len(rows) // 2
    assert disjoint_count(rows) >= 10


@pytest.mark.parametrize("query", ["glacier", "copper falcon river", "Notes from the ice"])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("mode", MODES)
def test_hits_never_overlap_and_k_still_come_back(ice_field, mode, k, query) -> None:
    hits = ice_field.search(query, k=k, mode=mode)
    assert len(hits) == k
    assert_no_overlaps(hits)
    assert_exact_citations(ice_field, hits)


def test_without_overlaps_keeps_the_better_of_two_overlapping_hits() -> None:
    def hit(cid: int, article: str, start: int, end: int) -> Hit:
        return Hit(cid, article, "", "", "", "", "x" * (end - start), start, end, 1.0 / cid)

    best, overlapping, touching, other = (
        hit(1, "a", 10, 50),
        hit(2, "a", 40, 80),
        hit(3, "a", 50, 90),
        hit(4, "b", 10, 50),
    )
    assert _without_overlaps([best, overlapping, touching, other]) == [best, touching, other]
    assert _without_overlaps([overlapping, best]) == [overlapping]


@pytest.fixture(scope="module")
def heavy_overlap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    assistant = open_assistant(ice_field_index(tmp_path_factory, "heavy", overlap_tokens=20))
    yield assistant
    assistant.close()


def full_ranking_hits(assistant: Assistant, query: str, mode: str) -> list[Hit]:
    """What overlap removal keeps when the whole ranking is considered, not just its head."""
    reader = assistant._reader
    everything = reader.manifest.chunks
    if mode == "lexical":
        ranking = reader.lexical_search(lexical_words(query), everything)
    else:
        ranking = reader.search_vectors(FakeEmbedder().embed_query(query), everything)
    return _without_overlaps(reader.hits(ranking))


@pytest.mark.parametrize(("mode", "k"), [("lexical", 5), ("dense", 7)])
def test_heavy_overlap_corpus_has_enough_disjoint_matching_passages(heavy_overlap, mode, k):
    rows = chunk_rows(heavy_overlap)
    if mode == "lexical":
        rows = [row for row in rows if "glacier" in row["text"].lower()]
    assert disjoint_count(rows) >= k
    assert len(full_ranking_hits(heavy_overlap, "glacier", mode)) >= k


@pytest.mark.parametrize(("mode", "k"), [("lexical", 5), ("dense", 7)])
def test_k_hits_come_back_even_when_the_top_of_the_ranking_overlaps(heavy_overlap, mode, k):
    hits = heavy_overlap.search("glacier", k=k, mode=mode)
    assert_no_overlaps(hits)
    assert len(hits) == k


# --- exact citations everywhere -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "query", ["volcano eruption", "garden club bake sale", "Volcano almanac list", "ash"]
)
def test_every_hit_is_an_exact_slice_of_its_article(newsroom, ice_field, mode, query) -> None:
    for assistant in (newsroom, ice_field):
        hits = assistant.search(query, k=20, mode=mode)
        assert_exact_citations(assistant, hits)
        assert_no_overlaps(hits)
    filtered = newsroom.search(query, k=5, source="small post", mode=mode)
    assert_exact_citations(newsroom, filtered)


# --- incremental updates keep the full-text table in step ---------------------------------------


def fts_in_step(assistant: Assistant) -> None:
    reader = assistant._reader
    fts = reader.query("SELECT rowid AS id, title, text FROM chunks_fts ORDER BY rowid")
    chunks = reader.query(
        "SELECT c.id, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article "
        "ORDER BY c.id"
    )
    assert [tuple(r) for r in fts] == [tuple(r) for r in chunks]


def lexical_articles(assistant: Assistant, query: str) -> set[str]:
    return {hit.article_id for hit in assistant.search(query, k=50, mode="lexical")}


def test_changed_and_deleted_articles_leave_the_full_text_index(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_md(
        corpus,
        "a.md",
        title="Airship museum opens",
        body="The zeppelin hangar now holds a museum.\n\nVisitors can climb into the zeppelin.",
    )
    write_md(
        corpus,
        "b.md",
        title="Marsupial census",
        body="Rangers counted every quokka on the island.\n\nThe quokka numbers are rising.",
    )
    build(corpus, index)
    assistant = open_assistant(index)
    assert lexical_articles(assistant, "zeppelin") == {"a.md"}
    assert lexical_articles(assistant, "quokka") == {"b.md"}
    assert lexical_articles(assistant, "marmalade") == set()
    fts_in_step(assistant)
    assistant.close()

    write_md(
        corpus,
        "a.md",
        title="Jam festival opens",
        body="The marmalade tent now holds a museum.\n\nVisitors can taste the marmalade.",
    )
    report = build(corpus, index)
    assert report.updated == ["a.md"]
    assistant = open_assistant(index)
    assert lexical_articles(assistant, "zeppelin") == set()
    assert lexical_articles(assistant, "airship") == set()  # the old title is gone too
    assert lexical_articles(assistant, "marmalade") == {"a.md"}
    assert lexical_articles(assistant, "jam festival") == {"a.md"}
    assert lexical_articles(assistant, "quokka") == {"b.md"}
    fts_in_step(assistant)
    assistant.close()

    (corpus / "b.md").unlink()
    report = build(corpus, index)
    assert report.removed == ["b.md"]
    assistant = open_assistant(index)
    assert lexical_articles(assistant, "quokka") == set()
    assert lexical_articles(assistant, "marsupial census rangers") == set()
    assert lexical_articles(assistant, "marmalade") == {"a.md"}
    for mode in MODES:
        assert {hit.article_id for hit in assistant.search("quokka", mode=mode)} <= {"a.md"}
    fts_in_step(assistant)
    assistant.close()


def test_a_metadata_only_change_updates_the_title_in_the_full_text_index(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    body = "The council approved the new cycle lanes on Tuesday evening."
    write_md(corpus, "a.md", title="Pelican crossing approved", body=body)
    write_md(corpus, "b.md", title="Other news", body="Nothing else happened this week.")
    build(corpus, index)
    write_md(corpus, "a.md", title="Toucan crossing approved", body=body)
    assert build(corpus, index).updated == ["a.md"]
    assistant = open_assistant(index)
    try:
        assert lexical_articles(assistant, "pelican") == set()
        assert lexical_articles(assistant, "toucan") == {"a.md"}
        fts_in_step(assistant)
    finally:
        assistant.close()


def test_a_full_rebuild_rewrites_the_full_text_index(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_md(corpus, "a.md", title="Ferry", body="The ferry to the island runs twice a day.")
    build(corpus, index)
    build(corpus, index, chunk_tokens=16, overlap_tokens=2)  # new chunk settings: full rebuild
    assistant = open_assistant(index)
    try:
        fts_in_step(assistant)
        assert lexical_articles(assistant, "ferry island") == {"a.md"}
    finally:
        assistant.close()


def test_each_hit_tells_its_place_in_every_ranking_that_found_it() -> None:
    reader = RankedReader(DENSE, LEXICAL, SENTENCES)
    fusion = replace(EQUAL, sentence_weight=1.0)
    hits = Retriever(reader, FakeEmbedder(), fusion).search("q", k=5)  # type: ignore[arg-type]
    ranks = {hit.chunk_id: hit.to_dict()["ranks"] for hit in hits}
    assert ranks[2] == {"dense": 2, "sentence": 1, "lexical": 2}
    assert ranks[4] == {"lexical": 1}
    assert hits[0].rank_in("sentence") == 1 and hits[0].rank_in("nowhere") is None


@pytest.mark.parametrize("mode", MODES)
def test_a_filter_naming_300000_articles_needs_no_sql_variable_per_id(newsroom, mode) -> None:
    # SQLite allows 32,766 variables in a statement: one per id failed with "too many SQL
    # variables" (a 500 over HTTP).
    many = [f"missing-{i}.md" for i in range(300_000)]
    hits = newsroom.search(QUERY, k=3, article_ids=[*many, "small-1.md"], mode=mode)
    assert hits and {hit.article_id for hit in hits} == {"small-1.md"}
    assert newsroom.search(QUERY, k=3, article_ids=many, mode=mode) == []


FREQUENCIES = {"harbour": 900, "council": 300_000, "crane": 40, "year": 200_000}


def frequencies_of(terms: Sequence[str]) -> dict[str, int]:
    return {term: FREQUENCIES[term] for term in terms if term in FREQUENCIES}


@pytest.mark.parametrize(
    ("passages", "expected"),
    [
        (5_000, ["harbour", "council", "crane"]),  # a small index: every word
        (1_000_000, ["harbour", "crane"]),  # "council" is in 30% of the passages
    ],
)
def test_full_text_search_leaves_common_words_out_only_in_a_big_index(passages, expected):
    words = lexical_words("the harbour council crane?")
    assert list(without_common_words(words, passages, frequencies_of)) == expected


def test_when_every_word_is_common_the_rarest_stays():
    assert list(without_common_words(["council", "year"], 1_000_000, frequencies_of)) == ["year"]


def test_the_sentences_of_filtered_chunks_come_from_memory_as_from_sql(newsroom) -> None:
    reader = newsroom._reader
    chunk_ids = [row["id"] for row in chunk_rows(newsroom)]
    for subset in (chunk_ids, chunk_ids[::3], chunk_ids[5:6], [], [max(chunk_ids) + 99]):
        expected = (
            [
                row[0]
                for row in reader.query(
                    "SELECT id FROM sentence_vectors WHERE chunk IN "
                    f"({','.join('?' * len(subset))})",
                    subset,
                )
            ]
            if subset
            else []
        )
        assert sorted(reader._sentence_ids_of(subset)) == sorted(expected)
        assert len(expected) >= len(subset) - 1  # every real chunk has sentences
