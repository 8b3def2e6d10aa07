"""Words, stems and stopwords, shared by lexical retrieval and sentence scoring."""

from __future__ import annotations

import re
import string
from functools import lru_cache

import snowballstemmer

# Words that match nearly every passage: they carry no evidence of relevance.
STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have he her
    his how i if in into is it its many much of on or our she so than that the their them then
    there these they this those to was we were what when where which who whom whose why will
    with would you""".split()
)
_WORD = re.compile(r"\w+")
# The same algorithm as SQLite FTS5's `porter` tokenizer, so stems match its vocabulary.
_STEMMER = snowballstemmer.stemmer("porter")


def words(text: str) -> list[re.Match[str]]:
    """Every word of `text`, with its position."""
    return list(_WORD.finditer(text))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _STEMMER.stemWord(word.lower())


def content_sequence(text: str) -> list[str]:
    """Stems of the words that are not stopwords, in order."""
    return [stem(w.group()) for w in words(text) if w.group().lower() not in STOPWORDS]


def content_stems(text: str) -> list[str]:
    """Stems of the words that are not stopwords, in order, without repeats."""
    return list(dict.fromkeys(content_sequence(text)))


_PUNCTUATION = frozenset(string.punctuation) | {"“", "”", "’", "‘"}


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())
