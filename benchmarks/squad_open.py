"""Open-domain SQuAD: every question against the whole 32-article corpus.

Builds the corpus and the index with the normal build path (cached under benchmarks/.cache,
so a second run only checks that nothing changed), asks every question in each retrieval mode
and prints recall@1/5/20 side by side, with search latency; then asks them for answers with the
heuristic and the trained reader side by side: EM/F1, sentence hit@1, answered share and
latency, for the held-out quarter of the articles (those `qa train-reader --holdout` never
trains on) and for the others separately.

    python benchmarks/squad_open.py [--limit N] [--chunk-tokens 200] [--overlap-tokens 32]
        [--reader-model DIR] [--precision int8 fp32] [--held-out-only]

Honest held-out figures need a reader trained without those articles (`--reader-model` of a
`--holdout` run); the shipped reader was trained on every article, so for it all are in-sample.

A hit at k: one of the top-k passages is from the question's own article and contains a gold
answer string.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.squad_common import load_squad, questions, write_corpus
from qa.components import SHIPPED_READER, make_embedder
from qa.config import Settings
from qa.reading import HeuristicReader, TrainedReader
from qa.reading.trained import PRECISIONS
from qa.service import Assistant, build
from qa.training.squad import exact_match, f1, held_out_articles

CACHE = Path(__file__).resolve().parent / ".cache"
KS = (1, 5, 20)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Tally:
    """Answer figures of one reader on one group of questions."""

    asked: int = 0
    hit: int = 0  # the answer's sentence is from the right article and holds a gold answer
    top_scored: int = 0  # the same for the best-ranked sentence, before the no-answer decision
    found: int = 0
    exact: float = 0.0
    f1: float = 0.0
    latency: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        n = max(1, self.asked)
        p50 = statistics.median(self.latency) if self.latency else 0.0
        p95 = percentile(self.latency, 0.95) if self.latency else 0.0
        return (
            f"{name:<22}{self.asked:>6}{100 * self.exact / n:>7.1f}{100 * self.f1 / n:>7.1f}"
            f"{100 * self.hit / n:>9.1f}%{100 * self.top_scored / n:>9.1f}%"
            f"{100 * self.found / n:>9.1f}%{p50:>9.1f}{p95:>9.1f}"
        )


def answer_figures(readers: dict[str, Assistant], asked: list, held_out: set[str]) -> None:
    """Ask every question of every reader; print EM/F1, sentence hit@1, answered share and
    latency per reader, for the held-out articles and the others separately."""
    tallies = {(name, group): Tally() for name in readers for group in ("held-out", "in-sample")}
    for question in asked:
        group = "held-out" if question.article_id in held_out else "in-sample"
        for name, assistant in readers.items():
            tally = tallies[name, group]
            tally.asked += 1
            began = time.perf_counter()
            answer = assistant.ask(question.question, k=5)
            tally.latency.append((time.perf_counter() - began) * 1000)
            answerer = assistant.answerer
            candidates, _ = answerer.candidates(question.question, k=5)
            best = (answerer.read(question.question, candidates) or candidates)[:1]
            tally.top_scored += bool(best) and (
                best[0].hit.article_id == question.article_id
                and any(gold in best[0].text for gold in question.answers)
            )
            if not answer.found:
                continue
            tally.found += 1
            first = answer.citations[0]
            if first.article_id == question.article_id and any(
                gold in answer.sentence for gold in question.answers
            ):
                tally.hit += 1
            tally.exact += exact_match(answer.text, question.answers)
            tally.f1 += f1(answer.text, question.answers)
    print(
        "\nanswers (k=5; declined questions count as misses; hit@1: the answer's sentence holds "
        "a gold answer; ranked@1: the same for the best-ranked sentence before the no-answer "
        "decision)"
    )
    header = f"{'reader / articles':<22}{'asked':>6}{'EM':>7}{'F1':>7}{'hit@1':>10}"
    print(header + f"{'ranked@1':>10}{'answered':>10}{'p50 ms':>9}{'p95 ms':>9}")
    for (name, group), tally in tallies.items():
        if tally.asked:
            print(tally.row(f"{name}, {group}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="ask a random sample of N questions")
    parser.add_argument("--chunk-tokens", type=int, default=Settings.chunk_tokens)
    parser.add_argument("--overlap-tokens", type=int, default=Settings.overlap_tokens)
    parser.add_argument("--modes", default="lexical,dense,hybrid")
    parser.add_argument("--no-answers", action="store_true", help="retrieval figures only")
    parser.add_argument(
        "--reader-model",
        type=Path,
        default=SHIPPED_READER,
        help="the trained reader to compare with the heuristic one (default: the shipped one)",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=["int8"],
        help="run the trained reader's weights at each of these precisions (int8: the product's)",
    )
    parser.add_argument(
        "--held-out-only", action="store_true", help="ask only the held-out articles' questions"
    )
    args = parser.parse_args()

    data = load_squad()
    corpus = CACHE / "squad-corpus"
    write_corpus(corpus, data)
    settings = Settings(
        corpus_dir=corpus,
        index_dir=CACHE / f"squad-index-{args.chunk_tokens}-{args.overlap_tokens}",
        chunk_tokens=args.chunk_tokens,
        overlap_tokens=args.overlap_tokens,
    )
    embedder = make_embedder(settings)
    report = build(settings, embedder, progress=sys.stderr.isatty())
    print(f"index: {report.summary()}")

    asked = questions(data)
    held_out = {f"{title}.txt" for title in held_out_articles([e["title"] for e in data])}
    if args.held_out_only:
        asked = [q for q in asked if q.article_id in held_out]
    if args.limit:
        asked = random.Random(0).sample(asked, min(args.limit, len(asked)))
    heuristic = HeuristicReader()
    assistant = Assistant.load(settings.index_dir, embedder=embedder, short_reader=heuristic)
    assistant.search("warm up")
    print(f"{len(asked)} questions, {report.articles} articles, {report.chunks} passages\n")

    modes = args.modes.split(",")
    recall: dict[str, dict[int, int]] = {m: dict.fromkeys(KS, 0) for m in modes}
    latency: dict[str, list[float]] = {m: [] for m in modes}
    for question in asked:
        for mode in modes:
            began = time.perf_counter()
            hits = assistant.search(question.question, k=max(KS), mode=mode)
            latency[mode].append((time.perf_counter() - began) * 1000)
            for k in KS:
                if any(
                    h.article_id == question.article_id
                    and any(answer in h.text for answer in question.answers)
                    for h in hits[:k]
                ):
                    recall[mode][k] += 1

    header = f"{'mode':<8}" + "".join(f"{'R@' + str(k):>8}" for k in KS)
    print(header + f"{'p50 ms':>9}{'p95 ms':>9}")
    for mode in modes:
        shares = "".join(f"{100 * recall[mode][k] / len(asked):>7.1f}%" for k in KS)
        p50 = statistics.median(latency[mode])
        print(f"{mode:<8}{shares}{p50:>9.1f}{percentile(latency[mode], 0.95):>9.1f}")
    if not args.no_answers:
        readers = {"heuristic": assistant}
        if TrainedReader.present(args.reader_model):
            for precision in args.precision:
                name = "trained" if args.precision == ["int8"] else f"trained {precision}"
                trained = TrainedReader(args.reader_model, precision=precision)
                readers[name] = Assistant.load(
                    settings.index_dir, embedder=embedder, short_reader=trained
                )
                readers[name].ask("warm up")
        else:
            print(f"no trained reader in {args.reader_model}: heuristic figures only")
        answer_figures(readers, asked, held_out)


if __name__ == "__main__":
    main()
