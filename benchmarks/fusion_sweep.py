"""Recall of hybrid retrieval over a grid of fusion settings, on the open-domain SQuAD corpus.

    python benchmarks/fusion_sweep.py [--limit 1000]

Uses the index that benchmarks/squad_open.py builds (run that first). Prints recall@1/5/20 for
each setting beside the single rankings, so the defaults in qa/retrieval.py can be checked.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.squad_common import load_squad, questions
from qa.components import make_embedder
from qa.config import Settings
from qa.retrieval import FusionSettings, Retriever
from qa.store import IndexReader

INDEX = Path(__file__).resolve().parent / ".cache" / "squad-index-200-32"
KS = (1, 5, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()

    reader = IndexReader.open(INDEX)
    embedder = make_embedder(Settings())
    asked = random.Random(0).sample(questions(load_squad()), args.limit)
    vectors = [embedder.embed_query(q.question) for q in asked]

    grid = [("lexical only", None, "lexical"), ("dense only (defaults)", FusionSettings(), "dense")]
    for lexical, dense, k in itertools.product((0.75, 1.0, 1.25, 1.5, 2.0), (0.0, 0.5), (2, 5, 10)):
        fusion = FusionSettings(dense_weight=dense, lexical_weight=lexical, rrf_k=k)
        grid.append((f"lexical {lexical}, passage {dense}, sentence 1, k={k}", fusion, "hybrid"))
    before = FusionSettings(dense_weight=1.0, sentence_weight=0.0, lexical_weight=1.5)
    grid.append(("passage vectors only, lexical 1.5, k=5 (before)", before, "hybrid"))

    print(f"{len(asked)} questions; recall in %\n")
    print(f"{'setting':<52}" + "".join(f"{'R@' + str(k):>7}" for k in KS))
    for label, fusion, mode in grid:
        retriever = Retriever(reader, embedder, fusion)
        found = dict.fromkeys(KS, 0)
        for question, vector in zip(asked, vectors, strict=True):
            hits = retriever.search(question.question, k=max(KS), mode=mode, query_vector=vector)
            for k in KS:
                found[k] += any(
                    h.article_id == question.article_id
                    and any(answer in h.text for answer in question.answers)
                    for h in hits[:k]
                )
        print(f"{label:<52}" + "".join(f"{100 * found[k] / len(asked):>7.1f}" for k in KS))


if __name__ == "__main__":
    main()
