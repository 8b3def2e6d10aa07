"""Records that move between the pipeline stages: corpus → articles → chunks → hits → answers."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Article:
    """One cleaned article. `text` is the cleaned text every offset in the system points into."""

    article_id: str
    title: str
    text: str
    source: str = ""
    url: str = ""
    published: str = ""  # ISO 8601 date ("2023-03-02") or "" when unknown
    author: str = ""
    path: str = ""  # where it came from, relative to the corpus folder ("a.jsonl:3" for a record)
    content_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    """An input that was not ingested, and why."""

    path: str  # relative path, with ":LINE" for a JSONL record
    reason: str

    def __str__(self) -> str:
        # One line whatever the file's name: a control character in it is shown escaped.
        path = _CONTROL.sub(lambda found: repr(found.group())[1:-1], self.path)
        return f"skipped {path}: {self.reason}"


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: `article.text[start:end] == text`."""

    article_id: str
    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its article's metadata and a relevance score (higher is better)."""

    chunk_id: int
    article_id: str
    title: str
    source: str
    url: str
    published: str
    text: str
    start: int
    end: int
    score: float
    # Its 1-based place in each ranking that found it ("lexical", "dense", "sentence").
    ranks: dict[str, int] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rank_in(self, ranking: str) -> int | None:
        return self.ranks.get(ranking)


@dataclass(frozen=True)
class FileStamp:
    """A corpus file as read without a problem: taken as unchanged while these stay the same."""

    path: str  # relative to the corpus folder
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class IngestResult:
    """What loading a corpus gave. `stamps`: the files read without a problem; `unchanged`:
    the files not read because their stamp matched the one given (their articles are as
    indexed)."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    stamps: list[FileStamp] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DateMention:
    """A relative date in a quoted sentence ("on Thursday", "last week"), resolved against its
    article's publication date: `article.text[start:end] == text`.

    `date` and `until` are the first and last day it names (equal for a day); both are None
    when the article has no date, and `note` then says so instead of guessing.
    """

    text: str
    start: int
    end: int
    date: str | None
    until: str | None
    note: str = ""


@dataclass(frozen=True)
class Speaker:
    """Who a reported-speech sentence quotes: `article.text[start:end] == name`.

    `mention_start`/`mention_end` is how the sentence itself refers to them (equal to the name's
    offsets when it names them; a pronoun's when the name stands in an earlier sentence).
    """

    name: str
    start: int
    end: int
    mention: str
    mention_start: int
    mention_end: int
    verb: str  # the reporting words: "said", "told", "according to"


@dataclass(frozen=True)
class Citation:
    """Where an answer stands in one article: the sentence and, inside it, the short answer.

    `start`/`end` and `span_start`/`span_end` are offsets into the cleaned article text:
    `article.text[start:end] == sentence`; the span is empty (equal ends) without a short answer.
    """

    article_id: str
    title: str
    source: str
    url: str
    published: str
    sentence: str
    start: int
    end: int
    span_start: int
    span_end: int
    score: float  # the sentence's share (0..1) of the evidence among the candidate sentences
    # The relative dates in the sentence, resolved against `published` ("" when undated).
    dates: list[DateMention] = field(default_factory=list, hash=False)
    speaker: Speaker | None = None  # whom the sentence quotes, when it reports speech
    # Near-duplicate articles (the same wire story under another headline) share one report id:
    # the id of the first of them indexed.
    report: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Disagreement:
    """Another answer of the same kind (a number, a date, a name) that other articles give."""

    text: str
    citations: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """An extractive answer: `text` is copied verbatim from `sentence`, itself from an article.

    `found` is false when the articles do not appear to contain an answer; then `text` and
    `sentence` are empty and `related` still lists the closest passages.

    One exception to "verbatim from `sentence`": a "Who said …?" answer whose sentence refers
    to the speaker by a pronoun ("…,” she said.") or not at all (a quotation standing alone) is
    the name from an earlier sentence of the same article (`citations[0].speaker` has its
    offsets; the citation's span marks the pronoun, or is empty).
    """

    question: str
    found: bool
    text: str
    sentence: str
    score: float  # how likely (0..1) the passages hold an answer; `found` is this ≥ a threshold
    citations: list[Citation] = field(default_factory=list)
    related: list[Hit] = field(default_factory=list)
    # Which reader picked the short answer: "trained", or "heuristic" (with the reason when it
    # stands in for a trained reader whose files are absent).
    reader: str = ""
    # The newest publication date among the citations ("" when none is dated): the answer holds
    # as of that date.
    as_of: str = ""
    # Where the articles that answer differ: other values of the same kind, with their sources.
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def sources_agreeing(self) -> int:
        """How many distinct articles support the answer."""
        return len({c.article_id for c in self.citations})

    @property
    def independent_reports(self) -> int:
        """How many distinct reports support it: near-duplicate articles count once."""
        return len({c.report or c.article_id for c in self.citations})

    @property
    def corroboration(self) -> str:
        """ "1 report, carried by 3 outlets", "2 independent reports", or "" without citations."""
        return describe_corroboration(self.citations)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources_agreeing"] = self.sources_agreeing
        data["independent_reports"] = self.independent_reports
        data["corroboration"] = self.corroboration
        return data


def describe_corroboration(citations: list[Citation]) -> str:
    """How many independent reports the citations are, and how many outlets carry them."""
    if not citations:
        return ""
    reports = {c.report or c.article_id for c in citations}
    carriers = {(c.source or c.article_id).casefold() for c in citations}
    noun = "outlet" if len(carriers) == 1 else "outlets"
    if len(reports) == 1:
        if len(citations) == 1:
            return "1 report"
        return f"1 report, carried by {len(carriers)} {noun}"
    line = f"{len(reports)} independent reports"
    return line if len(carriers) <= len(reports) else f"{line}, carried by {len(carriers)} {noun}"
