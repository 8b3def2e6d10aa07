"""`benchmarks/scale.py` at its smallest size, as a test of correctness (never of speed): the
real query encoder over a 10k-chunk archive searched approximately, against exact search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SQUAD


@pytest.mark.integration
@pytest.mark.skipif(not SQUAD.exists(), reason=f"needs {SQUAD}")
def test_the_scale_benchmark_at_10k_chunks_searched_approximately(tmp_path: Path):
    done = subprocess.run(
        [
            *(sys.executable, "benchmarks/scale.py", "--chunks", "10000", "--questions", "40"),
            *("--approximate-threshold", "4000", "--cache", str(tmp_path)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)

    assert 9_000 <= int(figures["summary"].split("holds ")[1].split()[2].replace(",", "")) <= 11_000
    for part in ("vectors", "sentence_vectors"):
        assert "IVF-PQ" in figures["parts"][part]["kind"]
        assert figures["parts"][part]["segments"] == 1
    assert figures["chunks_recall_at_10_vs_exact"] >= 0.9
    assert figures["sentences_recall_at_10_vs_exact"] >= 0.9
    assert 0.005 <= figures["one_percent_filter_share"] <= 0.02
    assert figures["one_percent_filter_recall_at_10"] >= 0.99
    assert figures["dense_answer_in_top10"] >= 50
    assert figures["add_summary"].startswith("added 1, updated 0, removed 0")
    assert figures["update_summary"].startswith("added 0, updated 1, removed 0")
    assert figures["delete_summary"].startswith("added 0, updated 0, removed 1")
    assert figures["segments_after_updates"]["vectors"] >= 2  # the coded one and the new one
