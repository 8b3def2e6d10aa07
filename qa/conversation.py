"""Follow-up questions in a conversation: "and when was that?" asked after a full question.

A short question that leans on the one before it (an anaphor such as "that", "it", "there",
or a lead such as "and …", "what about …", or no content word at all, as in "where?") cannot be
answered alone: retrieval would find nothing about its subject. `resolve_follow_up` appends
the content words of the most recent self-contained question, so

    resolve_follow_up("and when was that?", ["Where did Blinken and Lavrov meet?"])
    == "and when was that? Blinken Lavrov meet"

and returns any other question unchanged. Pure functions, no state: the caller keeps the
conversation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.terms import STOPWORDS

# Words that point back at something said before.
ANAPHORS = frozenset(
    "that it this they them he she him her his hers its their theirs there then those these".split()
)
# Openings that continue the previous question.
_LEADS = re.compile(r"^\s*(?:and|also|so|but|then|what about|how about|and what about)\b", re.I)
# Words that carry no subject of their own, on top of the retrieval stopwords.
_FILLER = STOPWORDS | frozenset(
    """about also any again anything else exactly just more only really one tell me please
    same so still too very whom yes no ok okay""".split()
)
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")

MAX_FOLLOW_UP_CONTENT_WORDS = 2  # "who said it?" has one; "When did Blinken meet Lavrov?" three
MAX_FOLLOW_UP_WORDS = 8


def question_words(text: str) -> list[str]:
    """The words of `text`, in order, as written."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """The words that name a subject: not stopwords, fillers or single letters; in order,
    without repeats (ignoring case)."""
    seen: set[str] = set()
    found = []
    for word in question_words(text):
        key = word.casefold()
        if key in _FILLER or key in seen or (len(key) == 1 and not key.isdigit()):
            continue
        seen.add(key)
        found.append(word)
    return found


def is_follow_up(question: str) -> bool:
    """Whether `question` is a short question that depends on the one before it."""
    all_words = [w.casefold() for w in question_words(question)]
    if not all_words or len(all_words) > MAX_FOLLOW_UP_WORDS:
        return False
    content = content_words(question)
    if len(content) > MAX_FOLLOW_UP_CONTENT_WORDS:
        return False
    if not content:
        return True  # "where?", "when was that?": nothing to look up on its own
    return bool(_LEADS.match(question)) or any(w in ANAPHORS for w in all_words)


def resolve_follow_up(question: str, previous_questions: Sequence[str]) -> str:
    """`question` with the subject of the most recent full question appended when it is a
    follow-up; otherwise (or with no full question before it) `question` unchanged.

    `previous_questions` is the conversation so far, oldest first; follow-ups in it are passed
    over, so both the questions as asked and the resolved ones work.
    """
    if not is_follow_up(question):
        return question
    subject = next(
        (p for p in reversed(previous_questions) if p.strip() and not is_follow_up(p)), None
    )
    if subject is None:
        return question
    present = {w.casefold() for w in question_words(question)}
    missing = [w for w in content_words(subject) if w.casefold() not in present]
    if not missing:
        return question
    return f"{question.strip()} {' '.join(missing)}"
