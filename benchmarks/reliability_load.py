"""Load on a running `qa serve` while its index is rebuilt: errors, answers, latency and memory.

    python benchmarks/reliability_load.py [--requests 2000] [--concurrency 20] [--rebuilds 3]

Starts `qa serve` with an admin token on a temporary copy of the default corpus, then sends ask
and search requests over 127.0.0.1 from `--concurrency` clients until at least `--requests` have
been answered and `--rebuilds` rebuilds have run under them. The rebuilds take turns: an article
uploaded by the admin route, a full rebuild by the admin route, and `qa index build` in another
process after a new file appeared in the corpus. Prints, and writes to
benchmarks/results/reliability-load.json: requests, errors, wrong answers to the fixed question,
latency percentiles per kind of request, and the server's RSS before, at its peak and after.

tests/reliability/ runs the same load (smaller unless `--full`) and asserts no error and no wrong
answer; the figures are recorded, never asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
QUESTION = "Where did Blinken and Lavrov meet?"
OTHER_QUESTIONS = [
    "Which nuclear treaty did Russia suspend?",
    "How many nations agreed to the statement?",
    "Who is Sergey Lavrov?",
]
SEARCHES = [
    ("Where did Blinken and Lavrov meet?", "hybrid"),
    ("New START nuclear treaty", "lexical"),
    ("G20 joint statement", "dense"),
    ("prisoner swap Brittney Griner", "hybrid"),
]


@dataclass
class LoadFigures:
    """What one load run measured. Latencies in milliseconds, memory in MB."""

    requests: int = 0
    errors: int = 0
    wrong_answers: int = 0
    error_samples: list[str] = field(default_factory=list)
    rebuilds: list[str] = field(default_factory=list)
    generations_seen: int = 0
    concurrency: int = 0
    seconds: float = 0.0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_mb(pid: int) -> float:
    """The resident set size of process `pid` (Linux: VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        only = values[0] if values else 0.0
        return {"p50": only, "p95": only, "p99": only, "n": len(values)}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 1),
        "p95": round(cuts[94], 1),
        "p99": round(cuts[98], 1),
        "n": len(values),
    }


def answer_key(answer: dict[str, Any]) -> tuple[Any, ...]:
    """What must not change between two answers to the same question on the same articles."""
    return answer["found"], answer["text"], answer["sentence"]


def ask(client: httpx.Client, question: str = QUESTION) -> dict[str, Any]:
    response = client.post("/api/ask", json={"question": question})
    response.raise_for_status()
    return dict(response.json())


class Rebuilds:
    """The rebuilds a load runs under, in turn: upload, full rebuild, `qa index build`.

    Each step returns once the server answers from the new generation.
    """

    KINDS = ("upload", "full rebuild", "cli build")

    def __init__(
        self,
        url: str,
        token: str,
        corpus: Path,
        index: Path,
        kinds: tuple[str, ...] = KINDS,
        timeout: float = 600,
    ):
        self.url, self.token, self.corpus, self.index = url, token, corpus, index
        self.kinds = itertools.cycle(kinds)
        self.timeout = timeout
        self.count = 0
        self.client = httpx.Client(
            base_url=url, timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )

    def revision(self) -> str:
        """The index revision the server answers from (every build moves it). A server looks
        for a new one when a query comes (at most once a second), so this asks one first."""
        self.client.get("/api/stats").raise_for_status()
        return str(self.client.get("/api/index/status").json()["revision"])

    def generation(self) -> str:
        """The generation (folder) the server answers from."""
        return str(self.client.get("/api/index/status").json()["generation"])

    def __call__(self) -> str:
        kind = next(self.kinds)
        self.count += 1
        number = f"{os.getpid()}-{self.count}-{time.monotonic_ns()}"
        before = self.revision()
        if kind == "upload":
            article = {
                "id": f"reliability/{number}",
                "title": f"Council note {number}",
                "text": f"The Lumbridge council approved bridge repair number {number} on Tuesday.",
            }
            response = self.client.post("/api/articles", json=article)
            if response.status_code != 201:
                raise RuntimeError(f"upload: {response.status_code} {response.text[:300]}")
        elif kind == "full rebuild":
            response = self.client.post("/api/index/rebuild", params={"full": "true"})
            while response.status_code == 409:  # another build first
                time.sleep(0.2)
                response = self.client.post("/api/index/rebuild", params={"full": "true"})
            if response.status_code != 202:
                raise RuntimeError(f"rebuild: {response.status_code} {response.text[:300]}")
            self._wait(lambda: self.client.get("/api/index/status").json()["state"] != "running")
            status = self.client.get("/api/index/status").json()
            if status["state"] != "idle":
                raise RuntimeError(f"rebuild failed: {status['last_error']}")
        else:
            name = f"cli-{number}.txt"
            (self.corpus / name).write_text(
                f"Harbour note {number}\n\nThe Draynor harbour reopened pier {number} on Sunday.\n",
                encoding="utf-8",
            )
            command = [sys.executable, "-m", "qa.cli", "index", "build"]
            command += ["--corpus", str(self.corpus), "--index", str(self.index)]
            done = subprocess.run(
                command,
                cwd=REPO,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
            if done.returncode != 0:
                raise RuntimeError(f"qa index build: {done.returncode} {done.stderr[-500:]}")
        self._wait(lambda: self.revision() != before)
        return kind

    def _wait(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError("timed out waiting for the rebuild")
            time.sleep(0.1)

    def close(self) -> None:
        self.client.close()


def _plan(number: int) -> tuple[str, str, dict[str, Any]]:
    """The `number`th request: (kind, path, body). 40% the fixed question."""
    slot = number % 10
    if slot < 4:
        return "ask (fixed)", "/api/ask", {"question": QUESTION}
    if slot == 4:
        question = OTHER_QUESTIONS[number // 10 % len(OTHER_QUESTIONS)]
        return "ask", "/api/ask", {"question": question}
    query, mode = SEARCHES[number % len(SEARCHES)]
    return "search", "/api/search", {"query": query, "mode": mode, "k": 1 + number % 10}


def run_load(
    url: str,
    *,
    pid: int,
    requests: int,
    concurrency: int,
    expected: tuple[Any, ...],
    rebuild: Callable[[], str] | None = None,
    rebuilds: int = 0,
    on_rebuild: Callable[[int, str], None] | None = None,
) -> LoadFigures:
    """Send requests until `requests` are answered and `rebuilds` calls of `rebuild` are done.

    Args:
        pid: the server's process id, for its RSS.
        expected: `answer_key` of the fixed question's answer; any other is a wrong answer.
        on_rebuild: called after each rebuild with its number and kind (e.g. to sample memory).
    """
    figures = LoadFigures(concurrency=concurrency, rss_before_mb=rss_mb(pid))
    latencies: dict[str, list[float]] = {}
    lock = threading.Lock()
    rebuilt = threading.Event()
    failed: list[BaseException] = []
    counter = itertools.count()
    generations: set[str] = set()
    peak = [figures.rss_before_mb]
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.25):
            peak[0] = max(peak[0], rss_mb(pid))

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while True:
                number = next(counter)
                if number >= requests and rebuilt.is_set():
                    return
                kind, path, body = _plan(number)
                began = time.perf_counter()
                problem, got = None, None
                try:
                    response = client.post(path, json=body)
                    if response.status_code != 200:
                        problem = f"{path}: {response.status_code} {response.text[:200]}"
                    elif kind == "ask (fixed)":
                        got = answer_key(response.json())
                except httpx.HTTPError as error:
                    problem = f"{path}: {type(error).__name__}: {error}"
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    figures.requests += 1
                    latencies.setdefault(kind, []).append(elapsed)
                    if problem is not None:
                        figures.errors += 1
                        if len(figures.error_samples) < 10:
                            figures.error_samples.append(problem)
                    if got is not None and got != expected:
                        figures.wrong_answers += 1
                        if len(figures.error_samples) < 10:
                            figures.error_samples.append(f"wrong answer: {got!r}")

    def rebuild_loop() -> None:
        try:
            for number in range(rebuilds):
                assert rebuild is not None
                kind = rebuild()
                figures.rebuilds.append(kind)
                if on_rebuild is not None:
                    on_rebuild(number, kind)
                with httpx.Client(base_url=url, timeout=60) as client:
                    generations.add(client.get("/api/index/status").json()["revision"])
        except BaseException as error:
            failed.append(error)
        finally:
            rebuilt.set()

    began = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    for worker in workers:
        worker.start()
    builder = threading.Thread(target=rebuild_loop)
    builder.start()
    builder.join()
    for worker in workers:
        worker.join()
    stop_sampling.set()
    sampler.join()
    figures.seconds = round(time.perf_counter() - began, 1)
    figures.latency_ms = {kind: percentiles(values) for kind, values in sorted(latencies.items())}
    figures.generations_seen = len(generations)
    figures.rss_after_mb = rss_mb(pid)
    figures.rss_peak_mb = max(peak[0], figures.rss_after_mb)
    for name in ("rss_before_mb", "rss_peak_mb", "rss_after_mb"):
        setattr(figures, name, round(getattr(figures, name), 1))
    if failed:
        raise RuntimeError(f"a rebuild failed: {failed[0]}") from failed[0]
    return figures


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """Write `figures` to benchmarks/results/<name>.json (ignored by git); returns the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return path


def warm_up(url: str, rebuild: Callable[[], str], kinds: int) -> None:
    """Every kind of request and of rebuild once, so that what loads lazily is loaded."""
    with httpx.Client(base_url=url, timeout=300) as client:
        for number in range(10):
            _, path, body = _plan(number)
            client.post(path, json=body).raise_for_status()
    for _ in range(kinds):
        rebuild()


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from tests.support.server import start_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rebuilds", type=int, default=3)
    args = parser.parse_args(argv)

    token = "reliability-load-token"
    with tempfile.TemporaryDirectory(prefix="qa-load-") as scratch:
        root = Path(scratch)
        corpus, index = root / "corpus", root / "index"
        shutil.copytree(REPO / "corpus", corpus)
        server = start_server(index, root / "server.log", corpus=corpus, admin_token=token)
        try:
            server.wait_until_healthy()
            rebuild = Rebuilds(server.url, token, corpus, index)
            warm_up(server.url, rebuild, len(Rebuilds.KINDS))
            with httpx.Client(base_url=server.url, timeout=300) as client:
                expected = answer_key(ask(client))
            figures = run_load(
                server.url,
                pid=server.process.pid,
                requests=args.requests,
                concurrency=args.concurrency,
                expected=expected,
                rebuild=rebuild,
                rebuilds=args.rebuilds,
            )
            rebuild.close()
        finally:
            server.stop()
    path = write_results("reliability-load", figures.to_dict())
    print(json.dumps(figures.to_dict(), indent=2))
    print(f"written to {path.relative_to(REPO)}", file=sys.stderr)
    return 1 if figures.errors or figures.wrong_answers else 0


if __name__ == "__main__":
    sys.exit(main())
