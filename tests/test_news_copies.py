"""Near-duplicate articles grouped into reports at build time (MinHash over the cleaned text)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from qa.chunking import Chunker
from qa.indexing import build_index
from qa.news.copies import reports_of, signature, similarity
from qa.store import IndexReader
from qa.types import Citation, describe_corroboration
from tests.conftest import REPO, FakeEmbedder

NEWS = REPO / "tests" / "news_corpus"


def build(corpus: Path, index: Path) -> None:
    embedder = FakeEmbedder()
    build_index(
        corpus, index, embedder, Chunker(embedder.count_tokens, chunk_tokens=60, overlap_tokens=8)
    )


def reports(index: Path) -> dict[str, str]:
    reader = IndexReader.open(index)
    try:
        return reports_of(reader.query, [a.article_id for a in reader.articles()])
    finally:
        reader.close()


def test_signatures_tell_copies_from_other_stories() -> None:
    post = (NEWS / "post-rates.md").read_text(encoding="utf-8")
    times = (NEWS / "times-rates.md").read_text(encoding="utf-8")
    other = (NEWS / "gazette-wildfire.md").read_text(encoding="utf-8")
    assert similarity(signature(post), signature(times)) > 0.6
    assert similarity(signature(post), signature(other)) < 0.1


def test_a_wire_story_under_two_headlines_is_one_report(tmp_path: Path) -> None:
    build(NEWS, tmp_path / "index")
    found = reports(tmp_path / "index")
    assert found["post-rates"] == found["times-rates"]
    # Everything else is its own report, the two wildfire stories included (different text).
    others = {k: v for k, v in found.items() if k not in ("post-rates", "times-rates")}
    assert others == {k: k for k in others}


def test_copies_are_found_across_incremental_builds_and_removals(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(NEWS / "post-rates.md", corpus)
    shutil.copy(NEWS / "gazette-wildfire.md", corpus)
    index = tmp_path / "index"
    build(corpus, index)
    assert reports(index)["post-rates"] == "post-rates"

    shutil.copy(NEWS / "times-rates.md", corpus)  # the copy arrives later
    build(corpus, index)
    assert reports(index)["times-rates"] == "post-rates"

    (corpus / "post-rates.md").unlink()  # the first one goes; its rows go with it
    build(corpus, index)
    assert reports(index) == {"times-rates": "post-rates", "gazette-wildfire": "gazette-wildfire"}
    reader = IndexReader.open(index)
    (rows,) = reader.query("SELECT count(*) FROM article_copies")[0]
    reader.close()
    assert rows == 2


def test_an_index_without_the_table_counts_each_article_once(tmp_path: Path) -> None:
    build(NEWS, tmp_path / "index")
    reader = IndexReader.open(tmp_path / "index")
    database = reader.index_dir / reader.manifest.generation / "qa.sqlite3"
    reader.close()
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE article_copies")
    found = reports(tmp_path / "index")
    assert found["times-rates"] == "times-rates"


def citation(article_id: str, source: str, report: str) -> Citation:
    return Citation(article_id, "t", source, "", "", "s", 0, 1, 0, 0, 1.0, report=report)


def test_corroboration_wording() -> None:
    assert describe_corroboration([]) == ""
    assert describe_corroboration([citation("a", "Post", "a")]) == "1 report"
    wire = [citation("a", "Post", "a"), citation("b", "Times", "a"), citation("c", "Sun", "a")]
    assert describe_corroboration(wire) == "1 report, carried by 3 outlets"
    two = [citation("a", "Post", "a"), citation("b", "Times", "b")]
    assert describe_corroboration(two) == "2 independent reports"
    assert (
        describe_corroboration([*two, citation("c", "Sun", "a")])
        == "2 independent reports, carried by 3 outlets"
    )


def test_signatures_are_those_a_fresh_datasketch_minhash_gives() -> None:
    """Signatures are stored: sharing the permutations must not change a single value."""
    import re

    import numpy as np
    from datasketch import MinHash

    from qa.news.copies import PERMUTATIONS

    for text in ["", "one", "Café in Zürich, 日本語 text", (REPO / "README.md").read_text()[:5000]]:
        words = [w.lower() for w in re.findall(r"\w+", text)]
        shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
        fresh = MinHash(num_perm=PERMUTATIONS, seed=17)
        fresh.update_batch([s.encode("utf-8") for s in shingles if s])
        assert np.array_equal(signature(text), fresh.hashvalues), text[:40]


def test_copies_in_different_shards_are_one_report(tmp_path: Path) -> None:
    """A sharded index groups a story with its copy wherever the two are stored: in the same
    build, and when the copy arrives later in another shard."""
    from qa.indexing import build_sharded_index
    from qa.store import ShardedReader, shard_of

    # The partition puts the two copies in different shards of 3 (pinned in test_shards.py).
    assert shard_of("post-rates", 3) != shard_of("times-rates", 3)
    embedder = FakeEmbedder()
    chunker = Chunker(embedder.count_tokens, chunk_tokens=60, overlap_tokens=8)
    build_sharded_index(NEWS, tmp_path / "together", embedder, chunker, shards=3)
    reader = ShardedReader.open(tmp_path / "together")
    found = reports_of(reader.query, [a.article_id for a in reader.articles()])
    assert found["post-rates"] == found["times-rates"]
    assert found["gazette-wildfire"] == "gazette-wildfire"

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(NEWS / "post-rates.md", corpus)
    build_sharded_index(corpus, tmp_path / "later", embedder, chunker, shards=3)
    shutil.copy(NEWS / "times-rates.md", corpus)
    build_sharded_index(corpus, tmp_path / "later", embedder, chunker)
    reader = ShardedReader.open(tmp_path / "later")
    assert reports_of(reader.query, ["times-rates"]) == {"times-rates": "post-rates"}
