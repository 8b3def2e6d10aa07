"""What the news features add to an answer's latency, and to a build.

    python benchmarks/news_latency.py [--rounds 10] [--reader trained|heuristic]

Builds one index from the default corpus and tests/news_corpus (9 articles), then asks 20
questions (when, who said, how many, latest, …) `--rounds` times each, twice per round in
alternating order: once as the product answers (relative dates, speakers with spaCy, reports,
disagreements, "latest" and "who said" handling) and once with those steps switched off inside
the same process. It prints the p50/p95 of both, the p50/p95 of the paired difference, and the
time spent inside the news steps themselves (timed around them), which is the least noisy of
the three on a shared machine. The first question's spaCy load is reported apart.

Build side: MinHash signatures and the copy lookup (`record_copies`) for the 32 SQuAD articles
(when the shared data is there) and the 9 news articles, per article.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qa.answering.answerer as answerer_module
from qa.config import Settings
from qa.news.annotate import NewsAnnotator
from qa.news.copies import record_copies
from qa.service import Assistant, build
from qa.store.schema import SCHEMA

REPO = Path(__file__).resolve().parent.parent
SQUAD = REPO.parent / "shared" / "data" / "squad-dev-v1.1-given.json"
QUESTIONS = [
    "When did Blinken and Lavrov meet?",
    "Where did Blinken and Lavrov meet?",
    "How many nations agreed to the statement?",
    "Which nuclear treaty did Russia suspend?",
    "Who said that mutual compliance is in the interest of both countries?",
    "Who said Putin has demonstrated zero interest in engaging?",
    "When did high-level officials from both sides speak together?",
    "Who confirmed that Blinken had requested to speak to Lavrov?",
    "What did Modi urge the G-20 members to do?",
    "How long did the meeting between Blinken and Lavrov last?",
    "How many homes did the wildfire destroy?",
    "When did the wildfire destroy homes in Millbrook?",
    "Where did the wildfire destroy homes?",
    "What did the central bank raise its interest rate to?",
    "Who said inflation remains too high?",
    "Who said they had never seen a fire move this fast?",
    "How full is the Kessel reservoir now?",
    "When did the Old Mill bridge reopen?",
    "Who led the crews that held the fire line?",
    "What is the boiling point of mercury?",
]


class Stopwatch:
    """Seconds spent inside wrapped calls since the last `take()`; a wrapped call made inside
    another is counted once, with the outer one."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            self._depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - began

        return timed

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


@contextmanager
def news_off(assistant: Assistant) -> Iterator[None]:
    """The same answerer with the news steps switched off."""
    answerer = assistant.answerer
    saved = (
        answerer._news,
        answerer_module.asks_for_latest,
        answerer_module.asks_who_said,
        answerer._disagreements,
    )
    answerer._news = NewsAnnotator()
    answerer._news.annotate = lambda citations, known=None: list(citations)  # type: ignore[method-assign]
    answerer_module.asks_for_latest = lambda question: False
    answerer_module.asks_who_said = lambda question: False
    answerer._disagreements = lambda *args, **kwargs: []  # type: ignore[method-assign]
    try:
        yield
    finally:
        (
            answerer._news,
            answerer_module.asks_for_latest,
            answerer_module.asks_who_said,
            answerer._disagreements,
        ) = saved


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def build_side(texts: list[str]) -> float:
    """Seconds per article of signing and grouping `texts` into a fresh database."""
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "copies.sqlite3")
        db.executescript(SCHEMA)
        db.executemany(
            """INSERT INTO articles (article_id, title, source, url, published, author, path,
               content_hash, text) VALUES (?, '', '', '', '', '', '', '', ?)""",
            [(f"a{i}", text) for i, text in enumerate(texts)],
        )
        began = time.perf_counter()
        record_copies(db)
        seconds = time.perf_counter() - began
        db.close()
    return seconds / max(1, len(texts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reader", choices=("trained", "heuristic"), default="trained")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="news-latency-"))
    try:
        corpus = work / "corpus"
        shutil.copytree(REPO / "corpus", corpus / "default")
        shutil.copytree(REPO / "tests" / "news_corpus", corpus / "news")
        settings = Settings(corpus_dir=corpus, index_dir=work / "index", reader=args.reader)
        print(build(settings).summary())
        assistant = Assistant.load(settings.index_dir, settings=settings)

        watch = Stopwatch()
        answerer = assistant.answerer
        news = answerer._news
        news.annotate = watch.wrap(news.annotate)  # type: ignore[method-assign]
        news.find_speakers = watch.wrap(news.find_speakers)  # type: ignore[method-assign]
        answerer._disagreements = watch.wrap(answerer._disagreements)  # type: ignore[method-assign]
        answerer._speaker_answer = watch.wrap(answerer._speaker_answer)  # type: ignore[method-assign]

        began = time.perf_counter()
        assert news.speakers is not None
        news.speakers.warm_up()
        print(f"spaCy pipeline load (once per process): {time.perf_counter() - began:.2f} s")
        for question in QUESTIONS:  # warm both paths
            assistant.ask(question)
            with news_off(assistant):
                assistant.ask(question)
        watch.take()

        on: list[float] = []
        off: list[float] = []
        inside: list[float] = []
        for round_number in range(args.rounds):
            for question in QUESTIONS:
                order = (True, False) if round_number % 2 == 0 else (False, True)
                for enabled in order:
                    began = time.perf_counter()
                    if enabled:
                        assistant.ask(question)
                        on.append(time.perf_counter() - began)
                        inside.append(watch.take())
                    else:
                        with news_off(assistant):
                            assistant.ask(question)
                        off.append(time.perf_counter() - began)
        paired = [a - b for a, b in zip(on, off, strict=True)]
        print(f"{len(on)} answers each ({len(QUESTIONS)} questions x {args.rounds} rounds)")
        print(f"ask, news features on:  {percentiles(on)}")
        print(f"ask, news features off: {percentiles(off)}")
        print(f"paired difference:      {percentiles(paired)}")
        print(f"inside the news steps:  {percentiles(inside)}")
        assistant.close()

        texts = [p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.*"))]
        if SQUAD.exists():
            data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
            texts += ["\n\n".join(p["context"] for p in a["paragraphs"]) for a in data]
        per_article = build_side(texts)
        print(
            f"build: signatures and copy lookup, {len(texts)} articles: "
            f"{per_article * 1000:.1f} ms per article"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
