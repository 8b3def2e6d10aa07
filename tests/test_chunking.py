from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.chunking import Chunker
from qa.types import Article
from tests.conftest import SQUAD


def word_count(text: str) -> int:
    return len(text.split())


words = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDE.,;!?'’“”-0123456789é", min_size=1, max_size=12
)
sentences = st.lists(words, min_size=1, max_size=30).map(lambda ws: " ".join(ws) + ".")
paragraphs = st.lists(sentences, min_size=1, max_size=8).map(" ".join)
separators = st.sampled_from(["\n\n", "\n", "\n\n\n", " \n\n "])


@st.composite
def article_texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(paragraphs, min_size=1, max_size=8))
    text = parts[0]
    for part in parts[1:]:
        text += draw(separators) + part
    return text


@settings(max_examples=150, deadline=None)
@given(text=article_texts(), size=st.integers(8, 80), overlap_share=st.floats(0, 0.5))
def test_every_chunk_is_an_exact_slice_within_the_token_limit(
    text: str, size: int, overlap_share: float
) -> None:
    chunker = Chunker(word_count, chunk_tokens=size, overlap_tokens=int(size * overlap_share))
    article = Article("a", "t", text)
    chunks = chunker.split(article)

    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert article.text[chunk.start : chunk.end] == chunk.text
        assert word_count(chunk.text) <= size
        assert chunk.text == chunk.text.strip() and chunk.text
    # Together the chunks cover every word of the article, in order.
    covered = [False] * len(text)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_paragraph_boundaries_are_preferred() -> None:
    first = " ".join(["alpha"] * 30) + "."
    second = " ".join(["beta"] * 30) + "."
    text = f"{first}\n\n{second}"
    chunks = Chunker(word_count, chunk_tokens=40, overlap_tokens=0).split(Article("a", "t", text))
    assert [c.text for c in chunks] == [first, second]


def test_sentence_boundaries_are_preferred_inside_a_long_paragraph() -> None:
    sentences = [f"Sentence {i} says " + " ".join(["word"] * 8) + "." for i in range(6)]
    text = " ".join(sentences)
    chunks = Chunker(word_count, chunk_tokens=25, overlap_tokens=0).split(Article("a", "t", text))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = Chunker(word_count, chunk_tokens=20, overlap_tokens=5).split(Article("a", "t", text))
    for previous, following in itertools.pairwise(chunks):
        assert following.start < previous.end
        assert previous.text.split()[-1] in following.text.split()[:6]


@pytest.mark.parametrize(("size", "overlap"), [(4, 0), (20, 20), (20, -1)])
def test_invalid_settings_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        Chunker(word_count, chunk_tokens=size, overlap_tokens=overlap)


@pytest.mark.integration
def test_real_tokenizer_keeps_every_chunk_within_the_model_limit(real_embedder) -> None:
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][:4]
    chunker = Chunker(real_embedder.count_tokens, chunk_tokens=real_embedder.max_tokens)
    for entry in data:
        text = entry["title"] + "\n\n" + "\n\n".join(p["context"] for p in entry["paragraphs"])
        article = Article(entry["title"], entry["title"], text)
        for chunk in chunker.split(article):
            assert text[chunk.start : chunk.end] == chunk.text
            assert real_embedder.count_tokens(chunk.text) <= real_embedder.max_tokens


@pytest.mark.integration
def test_real_token_counts_grow_with_the_text(real_embedder) -> None:
    assert real_embedder.count_tokens("Blinken met Lavrov in New Delhi.") == 10
    assert real_embedder.count_tokens("word " * 400) == 400
