"""Where the index breaks as the archive grows: build, memory, disk, search and one-article
updates at 10k, 100k, ... chunks, without hours of model time.

    python benchmarks/scale.py --chunks 10000 100000 [--questions 200] [--keep]

The archive is synthetic but agrees with itself (benchmarks/scale_corpus.py): articles are
composed of real SQuAD sentences, every chunk and sentence gets the vector the real model gave
its sentences (embedded once, cached), and the pool's questions have real answers in it. The
build runs the product's normal path (`qa.service.build`) with that embedder, so what is timed
is everything but the model: ingest, cleaning, chunking (the real tokenizer), sentences,
SQLite, FAISS segments and the commit.

Each step runs in its own process so its peak RSS is its own. Per size it prints: articles,
chunks and sentences; build seconds and peak RSS; bytes on disk per part; the RSS of a process
that loaded the index and answered queries; search p50/p95 per mode and recall@10 of the
vector search (chunks and sentences) against exact search of the same rows, and of a filter
keeping 1% of the articles; the time to add, update and delete one article incrementally.
Questions are asked with the real query encoder (ONNX Runtime).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.scale_corpus import CACHE, PoolEmbedder, sentence_pool, write_corpus
from qa.components import make_embedder
from qa.config import Settings

CHUNKS_PER_ARTICLE = 3.8  # measured on the synthetic articles at 200-token chunks
MODES = ("lexical", "dense", "hybrid")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _settings(folder: Path, approximate_threshold: int | None = None) -> Settings:
    settings = Settings(corpus_dir=folder / "corpus", index_dir=folder / "index")
    return settings.with_values(approximate_threshold=approximate_threshold)


def _pool_embedder() -> PoolEmbedder:
    real = make_embedder(Settings())
    return PoolEmbedder(sentence_pool(real), real)


# --- steps, each run in a child process -----------------------------------------------------


def step_build(folder: Path, articles: int, approximate_threshold: int | None) -> dict[str, Any]:
    from qa.service import build

    embedder = _pool_embedder()
    write_corpus(embedder.pool, folder / "corpus", articles)
    began = time.perf_counter()
    report = build(_settings(folder, approximate_threshold), embedder)
    return {
        "build_seconds": round(time.perf_counter() - began, 1),
        "build_peak_rss_mb": round(_peak_rss_mb()),
        "articles": report.articles,
        "summary": report.summary(),
    }


def step_serve(folder: Path, questions: int) -> dict[str, Any]:
    from qa.retrieval import lexical_words
    from qa.service import Assistant

    embedder = _pool_embedder()
    before = _rss_mb()
    assistant = Assistant.load(_settings(folder).index_dir, embedder=embedder)
    loaded = _rss_mb()
    asked = random.Random(0).sample(embedder.pool.questions, questions)
    vectors = [embedder.embed_query(q) for q, _, _ in asked]
    del vectors  # the encoder is warm; each search below embeds its query again, as served
    latency: dict[str, dict[str, float]] = {}
    found = dict.fromkeys(MODES, 0)
    for mode in MODES:
        times = []
        for question, _, answers in asked:
            began = time.perf_counter()
            hits = assistant.search(question, 10, mode=mode)
            times.append((time.perf_counter() - began) * 1000)
            found[mode] += any(a in h.text for h in hits for a in answers)
        latency[mode] = _percentiles(times)
    # The baseline in the same run: BM25 by FTS5's bm25() (with common words left out of a
    # big index's match), as every index was searched before inverted files.
    reader = assistant._reader  # the benchmark looks inside: vectors as loaded
    times = []
    for question, _, _ in asked:
        began = time.perf_counter()
        reader._full_text_search(lexical_words(question), 50, None)
        times.append((time.perf_counter() - began) * 1000)
    latency["lexical_fts5_baseline"] = _percentiles(times)
    source = "Daily Post"
    began = time.perf_counter()
    for question, _, _ in asked[:50]:
        assistant.search(question, 10, source=source)
    filtered_ms = (time.perf_counter() - began) * 1000 / 50
    served_rss = _rss_mb()
    queries = np.vstack([embedder.embed_query(q) for q, _, _ in asked])
    figures = {
        "pool_and_model_rss_mb": round(before),
        "loaded_rss_mb": round(loaded),
        "served_rss_mb": round(served_rss),
        "search_ms": latency,
        "filtered_hybrid_ms": round(filtered_ms, 1),
        "dense_answer_in_top10": round(100 * found["dense"] / len(asked), 1),
        "answer_in_top10": {mode: round(100 * n / len(asked), 1) for mode, n in found.items()},
        "parts": {
            name: {
                key: part.get(key)
                for key in ("kind", "rows", "segments", "memory_bytes", "disk_bytes")
            }
            for name, part in reader.parts().items()
        },
    }
    for kind in ("chunks", "sentences"):
        figures[f"{kind}_recall_at_10_vs_exact"] = _recall_vs_exact(reader, kind, queries)
    figures.update(_one_percent_filter(reader, queries[:50]))
    return figures


def _percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
    }


def _exact_top(
    reader: Any, kind: str, queries: np.ndarray, k: int, allowed=None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ids and scores by inner product over the live rows, streamed segment by
    segment."""
    from qa.store.vectors import read_ids

    vectors = reader.vector_set(kind)
    deleted = set(
        row[0] for row in reader.query("SELECT id FROM deleted_vectors WHERE kind = ?", (kind,))
    )
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for segment in vectors.segments:
        ids = read_ids(vectors.folder, segment)
        rows = np.memmap(
            vectors.folder / f"{segment.name}.f16", dtype=np.float16, mode="r"
        ).reshape(len(ids), vectors.dimension)
        for begin in range(0, len(ids), 200_000):
            block_ids = ids[begin : begin + 200_000]
            keep = ~np.isin(block_ids, list(deleted)) if deleted else np.ones(len(block_ids), bool)
            if allowed is not None:
                keep &= np.isin(block_ids, allowed)
            if not keep.any():
                continue
            block = np.asarray(rows[begin : begin + 200_000][keep], dtype=np.float32)
            scores = queries @ block.T
            merged_scores = np.hstack([best_scores, scores])
            merged_ids = np.hstack([best_ids, np.broadcast_to(block_ids[keep], scores.shape)])
            order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(merged_scores, order, axis=1)
            best_ids = np.take_along_axis(merged_ids, order, axis=1)
    return best_ids, best_scores


def _recall_vs_exact(reader: Any, kind: str, queries: np.ndarray) -> float:
    """Recall@10 of the search against exact search. The archive repeats sentences, so equal
    vectors tie: a hit counts when it scores at least the exact 10th score (any of the tied
    ids is as right as another)."""
    vectors = reader.vector_set(kind)
    _, exact_scores = _exact_top(reader, kind, queries, 10)
    hits = 0
    for query, scores in zip(queries, exact_scores, strict=True):
        found = vectors.search(query, 10)
        hits += sum(score >= scores[-1] - 1e-4 for _, score in found)
    return round(hits / (10 * len(queries)), 4)


def _one_percent_filter(reader: Any, queries: np.ndarray) -> dict[str, Any]:
    """A filter keeping 1% of the articles: its top 10 against exact search of those alone."""
    articles = [row[0] for row in reader.query("SELECT article_id FROM articles ORDER BY id")]
    kept = articles[:: max(1, len(articles) // max(1, len(articles) // 100))]
    from qa.store import ChunkFilter

    allowed = reader.filtered_chunk_ids(ChunkFilter(article_ids=tuple(kept)))
    exact, exact_scores = _exact_top(reader, "chunks", queries, 10, np.asarray(allowed))
    began = time.perf_counter()
    found = [reader.search_vectors(q, 10, allowed) for q in queries]
    elapsed = (time.perf_counter() - began) * 1000 / len(queries)
    hits = sum(
        sum(score >= scores[(ids >= 0)][-1] - 1e-4 for _, score in pairs)
        for pairs, ids, scores in zip(found, exact, exact_scores, strict=True)
    )
    wanted = sum(int((e >= 0).sum()) for e in exact)
    return {
        "one_percent_filter_share": round(len(allowed) / max(1, reader.manifest.chunks), 4),
        "one_percent_filter_recall_at_10": round(hits / max(1, wanted), 4),
        "one_percent_filter_dense_ms": round(elapsed, 1),
    }


def step_updates(folder: Path) -> dict[str, Any]:
    from qa.service import build

    embedder = _pool_embedder()
    settings = _settings(folder)
    extra = settings.corpus_dir / "extra.jsonl"
    record = {"id": "extra-article", "title": "Extra", "text": ""}
    pool = embedder.pool
    record["text"] = "\n\n".join(
        " ".join(pool.sentences[i] for i in pool.paragraphs[p][:3]) for p in (1, 2, 3)
    )
    timings = {}
    for what in ("add", "update", "delete"):
        if what == "update":
            record["text"] += "\n\n" + " ".join(pool.sentences[i] for i in pool.paragraphs[4][:3])
        if what == "delete":
            extra.unlink()
        else:
            extra.write_text(json.dumps(record) + "\n", encoding="utf-8")
        began = time.perf_counter()
        report = build(settings, embedder)
        timings[f"{what}_seconds"] = round(time.perf_counter() - began, 2)
        timings[f"{what}_summary"] = report.summary()
    timings["updates_peak_rss_mb"] = round(_peak_rss_mb())
    from qa.store import IndexReader

    reader = IndexReader.open(settings.index_dir)
    timings["segments_after_updates"] = {
        name: part.get("segments") for name, part in reader.parts().items()
    }
    reader.close()
    return timings


def _disk(folder: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in (folder / "index").rglob("*"):
        if path.is_file() and not path.is_symlink():
            suffix = path.suffix or path.name
            sizes[suffix] = sizes.get(suffix, 0) + path.stat().st_size
    return sizes


def _child(step: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--step", step, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"step {step} failed:\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {f"{step}_failed": done.stderr[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the built indexes")
    parser.add_argument(
        "--approximate-threshold",
        type=int,
        help="segments this big are searched approximately (default: the product's, 200,000)",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help="where corpora are kept")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--articles", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step == "build":
        print(json.dumps(step_build(args.folder, args.articles, args.approximate_threshold)))
        return
    if args.step == "serve":
        print(json.dumps(step_serve(args.folder, args.questions)))
        return
    if args.step == "updates":
        print(json.dumps(step_updates(args.folder)))
        return

    for chunks in args.chunks:
        articles = max(1, round(chunks / CHUNKS_PER_ARTICLE))
        folder = args.cache / f"scale-{articles}"
        shutil.rmtree(folder / "index", ignore_errors=True)
        figures: dict[str, Any] = {"target_chunks": chunks}
        threshold = (
            ["--approximate-threshold", str(args.approximate_threshold)]
            if args.approximate_threshold
            else []
        )
        build_args = ["--folder", str(folder), "--articles", str(articles), *threshold]
        figures.update(_child("build", *build_args))
        figures["disk_bytes"] = _disk(folder)
        figures.update(_child("serve", "--folder", str(folder), "--questions", str(args.questions)))
        figures.update(_child("updates", "--folder", str(folder)))
        print(json.dumps(figures, indent=1), flush=True)
        if not args.keep:
            shutil.rmtree(folder / "index", ignore_errors=True)


if __name__ == "__main__":
    main()
