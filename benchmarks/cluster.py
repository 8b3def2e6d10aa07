"""Building and searching on a Ray cluster against one process, on this machine.

    python benchmarks/cluster.py [--articles 32] [--queries 200] [--workers 2]

In one run:
- **build**: the SQuAD articles built into one index in this process (`qa index build`), then
  into 3 shards with the chunking and embedding on a local Ray cluster of `--workers` model
  actors (`qa index build --cluster local --shards 3`). Chunks per second for each, the Ray
  overhead ratio (Ray time / local time; target ≤ 1.3 on 2 cores), and the per-worker
  embedding rate with the cluster size it implies for 10 million chunks in an hour. The local
  model is loaded before its clock starts; the Ray build's time includes its actors' start and
  model loads (that is what a build on a cluster costs), the cluster's own start is shown apart.
- **search**: hybrid search p50/p95 (k = 10) over `--queries` SQuAD questions, on the single
  index, on the 3 shards opened in this process, and on the 3 shards served by Ray Serve (one
  deployment each); the added p50 of Serve over the single index (target ≤ 15 ms). Served
  searches are timed twice: first pass (every new query term costs the shards one more round
  trip for BM25 statistics) and again (terms known).

The embedding model was not tuned on these articles (it is the stock all-MiniLM-L6-v2): there
is no in-sample / held-out split to report here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.squad_common import load_squad, write_corpus
from qa.components import make_chunker, make_embedder
from qa.config import Settings
from qa.indexing import build_index, build_sharded_index
from qa.reading import HeuristicReader
from qa.service import Assistant
from qa.store import IndexReader, ShardedReader

TEN_MILLION = 10_000_000


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def timed_searches(assistant: Assistant, questions: list[str]) -> list[float]:
    times = []
    for question in questions:
        began = time.perf_counter()
        assistant.search(question, k=10)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=32, help="SQuAD articles (of 32)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    data = load_squad()[: args.articles]
    questions = [q["question"] for entry in data for p in entry["paragraphs"] for q in p["qas"]]
    questions = questions[:: max(1, len(questions) // args.queries)][: args.queries]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_corpus(root / "corpus", data)
        settings = Settings(corpus_dir=root / "corpus")
        embedder = make_embedder(settings)
        embedder.warm_up()
        embedder.embed_passages(["warm up"] * 8, [[]] * 8)
        chunker = make_chunker(settings, embedder)

        began = time.perf_counter()
        local = build_index(root / "corpus", root / "single", embedder, chunker)
        local_seconds = time.perf_counter() - began

        from qa.cluster import connect
        from qa.cluster.build import ray_pipeline

        began = time.perf_counter()
        ray = connect("local", num_cpus=max(2, args.workers))
        start_seconds = time.perf_counter() - began
        pipeline = ray_pipeline(settings, ray, workers=args.workers)
        began = time.perf_counter()
        sharded = build_sharded_index(
            root / "corpus", root / "sharded", embedder, chunker, shards=3, pipeline=pipeline
        )
        ray_seconds = time.perf_counter() - began
        assert sharded.chunks == local.chunks, (sharded.chunks, local.chunks)

        chunks = local.chunks
        per_worker = chunks / ray_seconds / args.workers
        print(f"build: {local.articles} articles, {chunks} chunks")
        print(f"  one process      {local_seconds:7.1f} s  {chunks / local_seconds:6.1f} chunks/s")
        print(
            f"  Ray, {args.workers} workers   {ray_seconds:7.1f} s  {chunks / ray_seconds:6.1f} "
            f"chunks/s  (cluster start {start_seconds:.1f} s, not counted)"
        )
        print(f"  Ray overhead ratio (Ray / one process): {ray_seconds / local_seconds:.2f}")
        print(
            f"  per worker (1 core): {per_worker:.1f} chunks/s; 10M chunks in an hour needs "
            f"{TEN_MILLION / 3600 / per_worker:,.0f} such workers"
        )

        from qa.cluster.serve import deploy_shards

        reader = HeuristicReader()
        single = Assistant(IndexReader.open(root / "single"), embedder, short_reader=reader)
        in_process = Assistant(ShardedReader.open(root / "sharded"), embedder, short_reader=reader)
        began = time.perf_counter()
        remote = deploy_shards(root / "sharded", ray, replicas=1)
        deploy_seconds = time.perf_counter() - began
        served = Assistant(ShardedReader(root / "sharded", remote), embedder, short_reader=reader)
        for assistant in (single, in_process, served):
            timed_searches(assistant, ["warm up", "Where did they meet?"])

        rows = [
            ("single index", timed_searches(single, questions)),
            ("3 shards, this process", timed_searches(in_process, questions)),
            ("3 shards, Ray Serve (1st)", timed_searches(served, questions)),
            ("3 shards, Ray Serve (2nd)", timed_searches(served, questions)),
        ]
        deploy = f"Serve deploy {deploy_seconds:.1f} s"
        print(f"search: {len(questions)} questions, hybrid, k=10 ({deploy})")
        base = percentiles(rows[0][1])[0]
        for label, times in rows:
            p50, p95 = percentiles(times)
            print(
                f"  {label:<28} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (+{p50 - base:5.1f} ms p50)"
            )


if __name__ == "__main__":
    main()
