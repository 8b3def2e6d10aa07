"""The trained reader with the gold paragraph given (SQuAD's closed setting): EM, F1, speed.

    python benchmarks/reader_closed.py [--reader-model DIR] [--articles held-out|all]
        [--int8] [--limit N] [--max-length 384] [--stride 128]

Reads each question's own paragraph with the product's reader (ONNX Runtime, the same windows
and span decoding `ask` uses) and prints EM/F1 and the time per question. `--int8` also
quantizes the model's weights to int8 (ONNX Runtime dynamic quantization) and prints the same
figures for it, side by side, with both files' sizes.

Honest figures need a reader that did not train on the articles asked about: the held-out
quarter (`--articles held-out`, the default) with a reader from `qa train-reader --holdout`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.squad_common import SQUAD
from qa.components import SHIPPED_READER
from qa.reading import TrainedReader
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


def quantized_copy(model_dir: Path, target: Path) -> Path:
    """`model_dir`'s tokenizer and config with its ONNX export quantized to int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    data = TrainedReader(model_dir).onnx_model()
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(model_dir / name, target / name)
    fp32 = target / "fp32.onnx"
    fp32.write_bytes(data)
    quantize_dynamic(str(fp32), str(target / "model.onnx"), weight_type=QuantType.QInt8)
    fp32.unlink()
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader-model", type=Path, default=SHIPPED_READER)
    parser.add_argument("--articles", choices=("held-out", "all"), default="held-out")
    parser.add_argument("--int8", action="store_true", help="also judge an int8 quantization")
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
    print(f"{'model':<10}{'EM':>7}{'F1':>7}{'ms/question':>13}{'MB':>8}")
    size = (args.reader_model / "model.safetensors").stat().st_size / 1e6
    windows = {"max_length": args.max_length, "stride": args.stride}
    for slack in args.typed_slack:
        reader = TrainedReader(args.reader_model, typed_slack=slack, **windows)
        em, f1_, ms = judge(reader, examples)
        label = "fp32" if slack == 0 else f"fp32 typed {slack:g}"
        print(f"{label:<10}{em:>7.1f}{f1_:>7.1f}{ms:>13.1f}{size:>8.1f}  (fp16 weights on disk)")
    if args.int8:
        with tempfile.TemporaryDirectory() as folder:
            target = quantized_copy(args.reader_model, Path(folder) / "int8")
            size = (target / "model.onnx").stat().st_size / 1e6
            em, f1_, ms = judge(TrainedReader(target, **windows), examples)
            print(f"{'int8':<10}{em:>7.1f}{f1_:>7.1f}{ms:>13.1f}{size:>8.1f}")


if __name__ == "__main__":
    main()
