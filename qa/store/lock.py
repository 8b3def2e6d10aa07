"""One build at a time per index, and the leftovers of killed builds."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

from qa.store.schema import MANIFEST

BUILD_LOCK = ".build.lock"


def remove_abandoned(index_dir: Path) -> None:
    """Remove the staging folders and half-written manifests a killed build left behind.

    They are never part of an index. Call it with the build lock held, so that no other build
    is writing them.
    """
    for leftover in index_dir.glob(".staging-gen-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in index_dir.glob(f".{MANIFEST}.*.tmp"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def build_lock(index_dir: Path | str) -> Iterator[None]:
    """Hold the exclusive build lock of `index_dir`; waits while another build holds it.

    One build at a time per index, across processes: a second concurrent build would take
    the first one's staging folder for a killed build's leftovers and remove it.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / BUILD_LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
