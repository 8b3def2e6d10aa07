"""What a citation says about the news it quotes: its relative dates resolved, whom it quotes,
and which report (group of near-duplicate articles) it belongs to."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from qa.news.copies import Query, reports_of
from qa.news.dates import relative_dates
from qa.news.speakers import SpeakerFinder, may_report_speech
from qa.types import Citation, Speaker

_BEFORE_CHARS = 600  # text before a quoted sentence, where a pronoun's person is looked for


class NewsAnnotator:
    """Adds `dates`, `speaker` and `report` to citations.

    Args:
        speakers: finds whom a sentence quotes (spaCy, loaded on first use); None: no speakers.
        query: runs SQL on the index, for the reports (`IndexReader.query`); None: every
            article is its own report.
        article_text: an article's cleaned text by id, for the text before a sentence.
    """

    def __init__(
        self,
        speakers: SpeakerFinder | None = None,
        query: Query | None = None,
        article_text: Callable[[str], str] | None = None,
    ):
        self.speakers = speakers
        self._query = query
        self._article_text = article_text

    def annotate(
        self,
        citations: Sequence[Citation],
        known: Mapping[tuple[str, int], Speaker | None] | None = None,
    ) -> list[Citation]:
        """The citations with their news fields filled in, in the same order.

        `known`: speakers already found, by (article id, sentence start), not looked for again.
        """
        if not citations:
            return []
        reports = (
            reports_of(self._query, [c.article_id for c in citations])
            if self._query is not None
            else {}
        )
        known = known or {}
        todo = [c for c in citations if (c.article_id, c.start) not in known]
        found = dict(known)
        found.update(
            zip([(c.article_id, c.start) for c in todo], self.find_speakers(todo), strict=True)
        )
        speakers = [found[(c.article_id, c.start)] for c in citations]
        return [
            replace(
                c,
                dates=relative_dates(c.sentence, c.published, c.start),
                speaker=speaker,
                report=reports.get(c.article_id, c.article_id),
            )
            for c, speaker in zip(citations, speakers, strict=True)
        ]

    def find_speakers(self, citations: Sequence[Citation]) -> list[Speaker | None]:
        """The speaker of each citation's sentence (None where it reports no speech)."""
        if self.speakers is None:
            return [None] * len(citations)
        items = []
        for c in citations:
            before = ""
            if self._article_text is not None and may_report_speech(c.sentence):
                before = self._article_text(c.article_id)[max(0, c.start - _BEFORE_CHARS) : c.start]
            items.append((c.sentence, c.start, before))
        return self.speakers.find_all(items)
