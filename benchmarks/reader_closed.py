"""The trained reader with the gold paragraph given (SQuAD's closed setting): EM, F1, speed.

    python benchmarks/reader_closed.py [--reader-model DIR] [--articles held-out|all]
        [--precision int8 fp32] [--typed-slack 2] [--limit N] [--max-length 384] [--stride 128]

Reads each question's own paragraph with the product's reader (ONNX Runtime, the same windows
and span decoding `ask` uses) and prints EM/F1 and the time per question, for each weight
precision (int8: the product's default, quantized on first use; fp32: as trained) side by
side, with the size of the ONNX model each one runs.

Honest figures need a reader that did not train on the articles asked about: the held-out
quarter (`--articles held-out`, the default) with a reader from `qa train-reader --holdout`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.squad_common import SQUAD
from qa.components import SHIPPED_READER
from qa.reading import TrainedReader
from qa.reading.trained import PRECISIONS
from qa.training.squad import (
    Example,
    article_titles,
    exact_match,
    f1,
    held_out_articles,
    load_examples,
)


def judge(reader: TrainedReader, examples: list[Example]) -> tuple[float, float, float]:
    """EM, F1 and median milliseconds per question."""
    reader.read("warm up?", ["Warm up."])
    exact = overlap = 0.0
    times = []
    for example in examples:
        began = time.perf_counter()
        span = reader.read(example.question, [example.context])[0]
        times.append((time.perf_counter() - began) * 1000)
        prediction = "" if span is None else example.context[span.start : span.end]
        exact += exact_match(prediction, example.answers)
        overlap += f1(prediction, example.answers)
    n = max(1, len(examples))
    return 100 * exact / n, 100 * overlap / n, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader-model", type=Path, default=SHIPPED_READER)
    parser.add_argument("--articles", choices=("held-out", "all"), default="held-out")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=list(PRECISIONS),
        help="judge the weights at each of these precisions (int8 is the product's)",
    )
    parser.add_argument(
        "--max-length", type=int, default=384, help="tokens per window (training used 384)"
    )
    parser.add_argument("--stride", type=int, default=128)
    parser.add_argument("--limit", type=int, help="a random sample of N questions")
    parser.add_argument(
        "--typed-slack",
        type=float,
        nargs="+",
        default=[2.0],
        help="judge the reader with each of these typed-span slacks (0: off; 2: the product's)",
    )
    args = parser.parse_args()

    titles = article_titles(SQUAD)
    chosen = held_out_articles(titles) if args.articles == "held-out" else titles
    examples = load_examples(SQUAD, chosen)
    if args.limit:
        examples = random.Random(0).sample(examples, min(args.limit, len(examples)))
    print(f"{len(examples)} questions of {len(chosen)} articles ({args.articles}), gold paragraph")
    print(f"{'model':<16}{'EM':>7}{'F1':>7}{'ms/question':>13}{'ONNX MB':>9}")
    windows = {"max_length": args.max_length, "stride": args.stride}
    for precision in args.precision:
        for slack in args.typed_slack:
            reader = TrainedReader(
                args.reader_model, typed_slack=slack, precision=precision, **windows
            )
            em, f1_, ms = judge(reader, examples)
            size = len(reader.onnx_model()) / 1e6
            label = precision if slack == 0 else f"{precision} typed {slack:g}"
            print(f"{label:<16}{em:>7.1f}{f1_:>7.1f}{ms:>13.1f}{size:>9.1f}")


if __name__ == "__main__":
    main()
