"""Load during rebuilds, and memory over many rebuilds, on the real server over 127.0.0.1.

Figures (latency percentiles, RSS) are recorded in benchmarks/results/ and printed at the end of
the run; the assertions are about errors, answers and memory growth, never about time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.reliability_load import Rebuilds, rss_mb, run_load, warm_up
from tests.reliability.conftest import LiveServer, Sizes, record

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

MEMORY_GROWTH_LIMIT_MB = 100


def open_index_files(pid: int, index: Path) -> list[str]:
    """The files under `index` that process `pid` holds open ("... (deleted)" once removed)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(index.resolve())):
            found.append(target)
    return found


def test_no_request_fails_and_the_answer_holds_while_the_index_is_rebuilt(
    live: LiveServer, sizes: Sizes
) -> None:
    warm_up(live.url, live.rebuilds, len(Rebuilds.KINDS))
    figures = run_load(
        live.url,
        pid=live.pid,
        requests=sizes.load_requests,
        concurrency=sizes.concurrency,
        expected=live.expected,
        rebuild=live.rebuilds,
        rebuilds=sizes.load_rebuilds,
    )
    record("reliability-load", figures.to_dict())

    assert figures.errors == 0, figures.error_samples
    assert figures.wrong_answers == 0, figures.error_samples
    assert figures.requests >= sizes.load_requests
    assert len(figures.rebuilds) == sizes.load_rebuilds
    assert figures.generations_seen == sizes.load_rebuilds  # each rebuild was served


def test_memory_stays_flat_over_rebuilds_under_load(live: LiveServer, sizes: Sizes) -> None:
    """Each generation's files and memory go once no query uses it any more."""
    warm_up(live.url, live.rebuilds, len(Rebuilds.KINDS))
    samples: list[float] = []

    def after_rebuild(number: int, kind: str) -> None:
        samples.append(round(rss_mb(live.pid), 1))

    figures = run_load(
        live.url,
        pid=live.pid,
        requests=0,  # as many as the rebuilds take
        concurrency=sizes.concurrency // 2,
        expected=live.expected,
        rebuild=live.rebuilds,
        rebuilds=sizes.memory_rebuilds,
        on_rebuild=after_rebuild,
    )
    still_open = open_index_files(live.pid, live.index)
    generations = sorted(path.name for path in live.index.glob("gen-*"))
    record(
        "reliability-memory",
        {
            "rebuilds": len(figures.rebuilds),
            "requests": figures.requests,
            "errors": figures.errors,
            "rss_before_mb": figures.rss_before_mb,
            "rss_after_mb": figures.rss_after_mb,
            "rss_peak_mb": figures.rss_peak_mb,
            "rss_after_each_rebuild_mb": samples,
        },
    )

    assert figures.errors == 0 and figures.wrong_answers == 0, figures.error_samples
    assert figures.rss_after_mb <= figures.rss_before_mb + MEMORY_GROWTH_LIMIT_MB, samples
    # Only the live generation is open: none of the replaced ones (full rebuilds), deleted or
    # not, nor a segment file a merge replaced.
    assert not [path for path in still_open if path.endswith("(deleted)")], still_open
    live_generation = live.rebuilds.generation()
    assert all(live_generation in path for path in still_open), still_open
    assert len(generations) <= 2, generations  # the live one and the one before
