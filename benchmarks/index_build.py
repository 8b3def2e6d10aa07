"""Index build throughput, ONNX Runtime against PyTorch, on the 32 SQuAD articles.

    python benchmarks/index_build.py

Builds a fresh index with the normal build path (ingest, clean, chunk, sentences, embed,
FAISS + SQLite, atomic commit) three times: with the model run by PyTorch in fp32 (the
baseline), by ONNX Runtime in fp32, and as the defaults run it (`passage_precision="auto"`:
PyTorch with bfloat16 products on a CPU that has them, else ONNX Runtime); then encodes the
very same chunk texts with a bare `SentenceTransformer.encode` in the same process. Prints
chunks per second for each, the ratios (default / PyTorch fp32 build, target ≥ 1.5; PyTorch
build / plain encode, target ≥ 0.9), the lowest cosine between each way's passage and sentence
vectors and PyTorch fp32's on 400 of the chunks (target ≥ 0.9999) and the process's peak
memory. Models are loaded before anything is timed.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.squad_common import load_squad, write_corpus
from qa.components import make_embedder
from qa.config import Settings
from qa.embedding import BF16_MIN_PASSAGES, SentenceTransformerEmbedder
from qa.sentences import split_sentences
from qa.service import build
from qa.store import IndexReader


def timed_build(
    settings: Settings, **chosen: str
) -> tuple[float, int, SentenceTransformerEmbedder]:
    """A fresh full build with the chosen settings (model loaded before the clock starts)."""
    embedder = make_embedder(settings.with_values(**chosen))
    embedder.warm_up()
    embedder.embed_passages(["warm up"] * BF16_MIN_PASSAGES, [[]] * BF16_MIN_PASSAGES)
    began = time.perf_counter()
    report = build(settings, embedder, full=True)
    return time.perf_counter() - began, report.chunks, embedder


def vectors(embedder: SentenceTransformerEmbedder, texts: list[str]) -> np.ndarray:
    """The passages' vectors, then their sentences' (as a build embeds them; the index stores
    them compressed, so they are compared here as the model gives them)."""
    spans = [split_sentences(text) for text in texts]
    passages, sentences = embedder.embed_passages(texts, spans)
    return np.vstack([passages, *sentences])


def lowest_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_corpus(root / "corpus", load_squad())
        settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index")
        torch_seconds, chunks, torch_embedder = timed_build(
            settings, runtime="torch", passage_precision="fp32"
        )
        onnx_seconds, _, onnx_embedder = timed_build(
            settings, runtime="onnx", passage_precision="fp32"
        )
        default_seconds, _, default_embedder = timed_build(settings)

        reader = IndexReader.open(settings.index_dir)
        texts = [row["text"] for row in reader.query("SELECT text FROM chunks ORDER BY id")]
        articles = reader.manifest.articles
        model = torch_embedder.model  # the plain baseline: SentenceTransformer.encode
        began = time.perf_counter()
        model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        encode_seconds = time.perf_counter() - began
        reader.close()
        sample = random.Random(0).sample(texts, min(len(texts), 400))
        torch_vectors = vectors(torch_embedder, sample)
        agreement = {
            "ONNX Runtime fp32": lowest_cosine(vectors(onnx_embedder, sample), torch_vectors),
            "default": lowest_cosine(vectors(default_embedder, sample), torch_vectors),
        }
        default_way = "bf16" if default_embedder.passages_in_bf16() else "fp32, ONNX Runtime"

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rates = {
        "index build, PyTorch fp32": chunks / torch_seconds,
        "index build, ONNX Runtime fp32": chunks / onnx_seconds,
        f"index build, default ({default_way})": chunks / default_seconds,
        "plain SentenceTransformer.encode": len(texts) / encode_seconds,
    }
    print(f"articles {articles}, chunks {chunks}")
    for name, rate in rates.items():
        print(f"{name:<40}{chunks / rate:7.1f} s  {rate:6.1f} chunks/s")
    torch_rate = rates["index build, PyTorch fp32"]
    onnx_rate = rates["index build, ONNX Runtime fp32"]
    default_rate = chunks / default_seconds
    plain_rate = rates["plain SentenceTransformer.encode"]
    print(
        f"default / PyTorch fp32 build throughput {default_rate / torch_rate:7.2f}"
        "   (target >= 1.5)"
    )
    print(f"ONNX / PyTorch fp32 build throughput    {onnx_rate / torch_rate:7.2f}")
    print(
        f"PyTorch build / plain encode            {torch_rate / plain_rate:7.2f}   (target >= 0.90)"
    )
    print(
        f"lowest cosine to PyTorch fp32's vectors, {len(sample)} chunks and their "
        f"{len(torch_vectors) - len(sample)} sentences (target >= 0.9999):"
    )
    for name, cosine in agreement.items():
        print(f"  {name:<38}{cosine:7.5f}")
    print(f"peak memory                             {peak_mib:7.0f} MiB")


if __name__ == "__main__":
    main()
