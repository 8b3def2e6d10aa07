"""Index build throughput, ONNX Runtime against PyTorch, on the 32 SQuAD articles.

    python benchmarks/index_build.py

Builds a fresh index with the normal build path (ingest, clean, chunk, sentences, embed,
FAISS + SQLite, atomic commit) twice, once with the model run by PyTorch and once by ONNX
Runtime (the default), then encodes the very same chunk texts with a bare
`SentenceTransformer.encode` in the same process. Prints chunks per second for each, the
ratios (ONNX / PyTorch build, target ≥ 1.5; PyTorch build / plain encode, target ≥ 0.9), the
lowest cosine between the two runtimes' passage vectors (target ≥ 0.9999) and the process's
peak memory. Models are loaded before anything is timed.
"""

from __future__ import annotations

import os
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
from qa.embedding import SentenceTransformerEmbedder
from qa.service import build
from qa.store import IndexReader


def timed_build(settings: Settings, runtime: str) -> tuple[float, int, SentenceTransformerEmbedder]:
    """A fresh full build with the given runtime (model loaded before the clock starts)."""
    embedder = make_embedder(settings.with_values(runtime=runtime))
    embedder.warm_up()
    embedder.embed_passages(["warm up"] * 8, [[]] * 8)
    began = time.perf_counter()
    report = build(settings, embedder, full=True)
    return time.perf_counter() - began, report.chunks, embedder


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_corpus(root / "corpus", load_squad())
        settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index")
        torch_seconds, chunks, torch_embedder = timed_build(settings, "torch")
        onnx_seconds, _, onnx_embedder = timed_build(settings, "onnx")

        reader = IndexReader.open(settings.index_dir)
        texts = [row["text"] for row in reader.query("SELECT text FROM chunks ORDER BY id")]
        articles = reader.manifest.articles
        model = torch_embedder.model  # the plain baseline: SentenceTransformer.encode
        began = time.perf_counter()
        plain = model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        encode_seconds = time.perf_counter() - began
        onnx_vectors = onnx_embedder.embed_documents(texts)
        agreement = float(np.min(np.sum(plain * onnx_vectors, axis=1)))

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rates = {
        "index build, PyTorch": chunks / torch_seconds,
        "index build, ONNX Runtime": chunks / onnx_seconds,
        "plain SentenceTransformer.encode": len(texts) / encode_seconds,
    }
    print(f"articles {articles}, chunks {chunks}")
    for name, rate in rates.items():
        print(f"{name:<34}{chunks / rate:7.1f} s  {rate:6.1f} chunks/s")
    onnx_rate, torch_rate = rates["index build, ONNX Runtime"], rates["index build, PyTorch"]
    print(f"ONNX / PyTorch build throughput   {onnx_rate / torch_rate:7.2f}   (target >= 1.5)")
    plain_rate = rates["plain SentenceTransformer.encode"]
    print(f"PyTorch build / plain encode      {torch_rate / plain_rate:7.2f}   (target >= 0.90)")
    print(f"lowest cosine ONNX vs PyTorch     {agreement:7.5f}   (target >= 0.9999)")
    print(f"peak memory                       {peak_mib:7.0f} MiB")


if __name__ == "__main__":
    main()
