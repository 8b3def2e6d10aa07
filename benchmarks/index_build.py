"""Index build throughput against plain SentenceTransformer.encode, on the 32 SQuAD articles.

    python benchmarks/index_build.py

Builds a fresh index with the normal build path (ingest, clean, chunk, sentences, embed,
FAISS + SQLite, atomic commit), then encodes the very same chunk texts with a bare
`SentenceTransformer.encode` in the same process, and prints chunks per second for both, their
ratio (target ≥ 0.9) and the process's peak memory. The model is loaded before either is timed.
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

from benchmarks.squad_common import load_squad, write_corpus
from qa.components import make_embedder
from qa.config import Settings
from qa.service import build
from qa.store import IndexReader


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_corpus(root / "corpus", load_squad())
        settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index")
        embedder = make_embedder(settings)
        embedder.warm_up()
        model = embedder.model  # the same loaded model, for the plain baseline
        model.encode(["warm up"] * 8)

        began = time.perf_counter()
        report = build(settings, embedder)
        build_seconds = time.perf_counter() - began

        reader = IndexReader.open(settings.index_dir)
        texts = [row["text"] for row in reader.query("SELECT text FROM chunks ORDER BY id")]
        began = time.perf_counter()
        model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        encode_seconds = time.perf_counter() - began

    build_rate = report.chunks / build_seconds
    encode_rate = len(texts) / encode_seconds
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"articles {report.articles}, chunks {report.chunks}")
    print(f"index build          {build_seconds:7.1f} s  {build_rate:6.1f} chunks/s")
    print(f"plain encode         {encode_seconds:7.1f} s  {encode_rate:6.1f} chunks/s")
    print(f"ratio build / encode {build_rate / encode_rate:7.2f}   (target >= 0.90)")
    print(f"peak memory          {peak_mib:7.0f} MiB")


if __name__ == "__main__":
    main()
