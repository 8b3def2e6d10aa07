"""Example questions for the start screen, made from the indexed articles' titles."""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.types import Article

MAX_EXAMPLES = 4

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
