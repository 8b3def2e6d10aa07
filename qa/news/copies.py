"""Near-duplicate articles: the same wire story carried by several outlets, under other headlines.

Each article's cleaned text gets a MinHash signature (datasketch) over its word 3-shingles at
build time. Signatures are cut into bands; articles sharing a band are candidates, confirmed
when their estimated Jaccard similarity is at least COPY_SIMILARITY. The bands live in an
indexed SQLite table, so a build compares each new article with its few candidates and never
loads the whole archive's signatures. A group of copies is one *report*, named by the id of its
first article indexed.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

PERMUTATIONS = 64
BANDS = 16  # of 4 rows: pairs at Jaccard 0.5 share a band with probability 0.65, at 0.7 with 0.98
COPY_SIMILARITY = 0.5  # estimated Jaccard of word 3-shingles; unrelated stories score < 0.1
_SHINGLE = 3
_WORD = re.compile(r"\w+")
_SEED = 17


def signature(text: str) -> np.ndarray:
    """The MinHash signature of `text`'s lower-cased word 3-shingles (PERMUTATIONS values)."""
    from datasketch import MinHash  # imported when a build needs it, not by every reader

    tokens = [w.lower() for w in _WORD.findall(text)]
    shingles = {
        " ".join(tokens[i : i + _SHINGLE]) for i in range(max(1, len(tokens) - _SHINGLE + 1))
    }
    model = _model()
    minhash = MinHash(
        num_perm=PERMUTATIONS, seed=_SEED, permutations=model.permutations, scheme=model.scheme
    )
    minhash.update_batch([s.encode("utf-8") for s in shingles if s])
    return np.asarray(minhash.hashvalues, dtype=np.uint64)


@lru_cache(maxsize=1)
def _model() -> Any:
    """A MinHash whose permutations every signature reuses: making them took a tenth of a big
    build's time when each article's MinHash made its own."""
    from datasketch import MinHash

    return MinHash(num_perm=PERMUTATIONS, seed=_SEED)


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    """The Jaccard similarity that two signatures estimate."""
    return float(np.mean(first == second))


def band_keys(values: np.ndarray) -> list[int]:
    """One signed 64-bit key per band (SQLite integers are signed)."""
    rows = PERMUTATIONS // BANDS
    keys = []
    for band in range(BANDS):
        part = values[band * rows : (band + 1) * rows].tobytes()
        keys.append(int.from_bytes(_digest(part), "little", signed=True))
    return keys


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


@dataclass(frozen=True)
class CopyGroups:
    """What `record_copies` did: how many articles it signed and how many joined a report."""

    signed: int
    copies: int


def record_copies(db: sqlite3.Connection, others: Sequence[sqlite3.Connection] = ()) -> CopyGroups:
    """Sign every article of `db` that has no signature yet and put it in its report.

    Called inside a build's transaction: new and changed articles (their old rows went with the
    article), and every article of an index built before this table existed. `others`: the
    other shards of a sharded index (`qa.store.sharded`), whose articles a copy may join.
    """
    # The unsigned ids first, from an index (a scan of the table would read every text).
    unsigned = sorted(
        row[0]
        for row in db.execute(
            """SELECT a.id FROM articles a INDEXED BY articles_catalog
               WHERE NOT EXISTS (SELECT 1 FROM article_copies c WHERE c.article = a.id)"""
        )
    )
    todo = [
        tuple(row)
        for start in range(0, len(unsigned), 500)
        for row in db.execute(
            """SELECT id, article_id, text FROM articles
               WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id""",
            [json.dumps(unsigned[start : start + 500])],
        )
    ]
    copies = 0
    for row_id, article_id, text in todo:
        values = signature(text)
        keys = band_keys(values)
        report = _report_of_copy([db, *others], values, keys) or article_id
        copies += report != article_id
        db.execute(
            "INSERT INTO article_copies (article, report, signature) VALUES (?, ?, ?)",
            (row_id, report, values.tobytes()),
        )
        db.executemany(
            "INSERT OR IGNORE INTO article_copy_bands (article, band, key) VALUES (?, ?, ?)",
            [(row_id, band, key) for band, key in enumerate(keys)],
        )
    return CopyGroups(len(todo), copies)


def _report_of_copy(
    databases: Sequence[sqlite3.Connection], values: np.ndarray, keys: Sequence[int]
) -> str | None:
    """The report of the most similar signed article in `databases`, when it is a copy."""
    clauses = " OR ".join("(b.band = ? AND b.key = ?)" for _ in keys)
    parameters = [p for band, key in enumerate(keys) for p in (band, key)]
    candidates = []
    for db in databases:
        try:
            candidates += db.execute(
                f"""SELECT DISTINCT c.report, c.signature FROM article_copy_bands b
                    JOIN article_copies c ON c.article = b.article WHERE {clauses}""",
                parameters,
            ).fetchall()
        except sqlite3.OperationalError:  # a shard built before copies were recorded
            continue
    best, best_report = COPY_SIMILARITY, None
    for report, blob in candidates:
        score = similarity(values, np.frombuffer(blob, dtype=np.uint64))
        if score >= best:
            best, best_report = score, report
    return best_report


Query = Callable[[str, Sequence[Any]], Sequence[Sequence[Any]]]


def reports_of(query: Query, article_ids: Iterable[str]) -> dict[str, str]:
    """The report of each of `article_ids` (its own id when it has no recorded copies, or the
    index predates them). `query` runs SQL on the index (`IndexReader.query`)."""
    ids = list(dict.fromkeys(article_ids))
    found = {article_id: article_id for article_id in ids}
    if not ids:
        return found
    marks = ",".join("?" * len(ids))
    try:
        rows = query(
            f"""SELECT a.article_id, c.report FROM articles a
                JOIN article_copies c ON c.article = a.id WHERE a.article_id IN ({marks})""",
            ids,
        )
    except sqlite3.OperationalError:  # an index built before copies were recorded
        return found
    for article_id, report in rows:
        found[article_id] = report
    return found
