"""Open-domain SQuAD: every question against the whole 32-article corpus.

Builds the corpus and the index with the normal build path (cached under benchmarks/.cache,
so a second run only checks that nothing changed), asks every question in each retrieval mode
and prints recall@1/5/20 side by side, with search latency.

    python benchmarks/squad_open.py [--limit N] [--chunk-tokens 200] [--overlap-tokens 32]

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
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.squad_common import load_squad, questions, write_corpus
from qa.answering import normalize_answer
from qa.config import Settings
from qa.service import Assistant, build, make_embedder

CACHE = Path(__file__).resolve().parent / ".cache"
KS = (1, 5, 20)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def f1_score(prediction: str, gold: str) -> float:
    """SQuAD's token F1 after its official normalization."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(predicted) & Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def answer_figures(assistant: Assistant, asked: list) -> None:
    """Ask every question; print sentence hit@1, EM/F1 of the short answer and latency."""
    hit = exact = found = top_scored = 0
    f1 = 0.0
    latency = []
    for question in asked:
        began = time.perf_counter()
        answer = assistant.ask(question.question, k=5)
        latency.append((time.perf_counter() - began) * 1000)
        # The best-ranked sentence, before the no-answer decision and the corroboration preference.
        candidates, _ = assistant._answerer.candidates(question.question, k=5)
        top_scored += bool(candidates) and (
            candidates[0].hit.article_id == question.article_id
            and any(gold in candidates[0].text for gold in question.answers)
        )
        if not answer.found:
            continue
        found += 1
        first = answer.citations[0]
        if first.article_id == question.article_id and any(
            gold in answer.sentence for gold in question.answers
        ):
            hit += 1
        exact += max(normalize_answer(answer.text) == normalize_answer(g) for g in question.answers)
        f1 += max(f1_score(answer.text, g) for g in question.answers)
    n = len(asked)
    print(
        f"\nanswers (heuristic reader, k=5): sentence hit@1 {100 * hit / n:.1f}%, "
        f"EM {100 * exact / n:.1f}, F1 {100 * f1 / n:.1f}, answered {100 * found / n:.1f}% "
        f"(declined answers count as misses); of the answers given, "
        f"{100 * hit / max(1, found):.1f}% have a supporting sentence holding a gold answer; "
        f"best-ranked sentence before the no-answer decision: hit@1 {100 * top_scored / n:.1f}%"
    )
    print(
        f"ask latency: p50 {statistics.median(latency):.1f} ms, "
        f"p95 {percentile(latency, 0.95):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="ask a random sample of N questions")
    parser.add_argument("--chunk-tokens", type=int, default=Settings.chunk_tokens)
    parser.add_argument("--overlap-tokens", type=int, default=Settings.overlap_tokens)
    parser.add_argument("--modes", default="lexical,dense,hybrid")
    parser.add_argument("--no-answers", action="store_true", help="retrieval figures only")
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
    if args.limit:
        asked = random.Random(0).sample(asked, args.limit)
    assistant = Assistant.load(settings.index_dir, embedder=embedder)
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
        answer_figures(assistant, asked)


if __name__ == "__main__":
    main()
