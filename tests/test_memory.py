"""qa.memory: the malloc settings `qa serve` applies before it starts serving."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from qa import memory
from tests.conftest import REPO


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_malloc_applies_on_glibc() -> None:
    # In a fresh process: the settings last for the life of the process that makes them.
    code = "from qa.memory import tune_malloc; print(tune_malloc(), tune_malloc(arenas=3))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True"]


def test_tune_malloc_changes_nothing_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert memory.tune_malloc() is False


def test_qa_serve_tunes_malloc_before_it_loads_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa import cli

    calls: list[str] = []
    monkeypatch.setattr(memory, "tune_malloc", lambda **_: calls.append("tuned") or True)

    def stop(*args: object, **kwargs: object) -> None:
        calls.append("application")
        raise SystemExit(0)

    monkeypatch.setattr("qa.application.make_application", stop)
    with pytest.raises(SystemExit):
        cli.main(["serve", "--index", "nowhere", "--corpus", "nowhere"])
    assert calls == ["tuned", "application"]
