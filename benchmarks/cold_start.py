"""How long `qa ask` takes from a cold process: imports, loading, the first answer.

    python benchmarks/cold_start.py [--runs 5]

Builds the default corpus into a temporary index, then runs `qa ask "…"` as a new process
`--runs` times and prints the median wall time, and, from a separate probe process per run,
the breakdown: importing the service, loading the index, the query encoder and the reader
(ONNX Runtime sessions from the on-disk export cache), and answering the first question.
The first run after a change of model or library exports the models to ONNX once; that run is
printed separately and not counted in the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTION = "How many nations agreed to the statement?"

PROBE = """
import json, sys, time
began = time.perf_counter()
from qa.components import make_embedder, make_short_reader
from qa.service import Assistant
from qa.config import Settings
imported = time.perf_counter()
settings = Settings.from_env().with_values(index_dir=sys.argv[1])
embedder = make_embedder(settings)
reader = make_short_reader(settings)
assistant = Assistant.load(settings.index_dir, embedder=embedder, short_reader=reader)
opened = time.perf_counter()
embedder.embed_query("warm")
encoder = time.perf_counter()
getattr(reader, "warm_up", lambda: None)()
read_loaded = time.perf_counter()
answer = assistant.ask(sys.argv[2])
answered = time.perf_counter()
print(json.dumps({
    "import": imported - began,
    "open index": opened - imported,
    "query encoder": encoder - opened,
    "reader": read_loaded - encoder,
    "first answer": answered - read_loaded,
    "total": answered - began,
    "text": answer.text,
    "torch loaded": "torch" in sys.modules,
}))
"""


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return time.perf_counter() - began, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_CACHE_DIR": str(Path(folder) / "cache")}
        index = str(Path(folder) / "index")
        qa = [sys.executable, "-m", "qa.cli"]
        run([*qa, "index", "build", "--corpus", str(REPO / "corpus"), "--index", index], env)
        first, _ = run([*qa, "ask", QUESTION, "--index", index], env)
        print(f"first run, exporting the models to ONNX: {first:.2f} s")
        walls, phases = [], []
        for _ in range(args.runs):
            wall, shown = run([*qa, "ask", QUESTION, "--index", index], env)
            walls.append(wall)
            _, probed = run([sys.executable, "-c", PROBE, index, QUESTION], env)
            phases.append(json.loads(probed))
        median = statistics.median(walls)
        print(f"`qa ask` from a cold process, median of {args.runs}: {median:.2f} s")
        print(f"  answer: {shown.splitlines()[0]!r}")
        for name in ("import", "open index", "query encoder", "reader", "first answer", "total"):
            print(f"  {name:<14}{statistics.median(p[name] for p in phases):>7.2f} s")
        print(f"  PyTorch imported: {any(p['torch loaded'] for p in phases)}")


if __name__ == "__main__":
    main()
