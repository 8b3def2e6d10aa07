"""Start `qa serve` as a real subprocess on a free local port and wait until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it for a socket bound to 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A `qa serve` subprocess on a local port, its output going to `log`."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def healthy(self) -> bool:
        """Whether /api/health answers 200 now; raises if the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"qa serve exited with {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def wait_until_healthy(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(0.5)
        raise RuntimeError(f"qa serve did not answer within {timeout:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def start_server(
    index: Path,
    log: Path,
    *,
    corpus: Path | None = None,
    admin_token: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Start `python -m qa.cli serve --index INDEX --port PORT` from the repository root,
    without waiting for it. The admin token is the given one, never one from the environment;
    Gradio keeps its files in a `gradio` folder beside `log`.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "QA_ADMIN_TOKEN"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", GRADIO_ANALYTICS_ENABLED="False")
    # Files Gradio stores (uploads) stay beside the log, where a test can see them.
    env["GRADIO_TEMP_DIR"] = str(log.parent / "gradio")
    if admin_token:
        env["QA_ADMIN_TOKEN"] = admin_token
    command = [sys.executable, "-m", "qa.cli", "serve", "--index", str(index)]
    if corpus is not None:
        command += ["--corpus", str(corpus)]
    command += ["--port", str(port), *extra_args]
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    return Server(process, port, log)


@contextmanager
def running_server(
    index: Path, log: Path, *, extra_args: tuple[str, ...] = (), timeout: float = 180
) -> Iterator[Server]:
    """A started server that answers, stopped on exit."""
    server = start_server(index, log, extra_args=extra_args)
    try:
        server.wait_until_healthy(timeout)
        yield server
    finally:
        server.stop()
