"""BM25 over per-segment inverted files, scored with numpy instead of FTS5's bm25().

FTS5 ranks every row that holds any query word through a per-row callback: at a million
passages a common word's posting list has hundreds of thousands of rows and a lexical search
took 133 ms p50 (benchmarks/scale.py). Here every chunk segment carries its own inverted file,
written once with it and never changed: its terms, and per term the segment rows holding it
with their frequency (a title word counts TITLE_WEIGHT). A query reads its terms' postings in
every segment (memory-mapped), weights them by BM25 with statistics of the whole live index,
adds them per row with one `bincount` and cuts the top k: its cost follows the postings read.

The scores are FTS5's `bm25(chunks_fts, TITLE_WEIGHT, 1.0)` (same formula, k1 = 1.2, b = 0.75,
document length counted over both columns) on the same stems (FTS5's porter algorithm), with
words split where unicode61 splits them, so rankings agree with the full-text table's.

Files of a segment `<name>`: `.lex_terms.txt` (its terms, sorted, one a line), `.lex_starts.npy`
(where each term's postings start), `.lex_rows.npy` (int32 rows), `.lex_tf.npy` (float16
weighted frequencies) and `.lex_lengths.npy` (float32 tokens per row).
"""

from __future__ import annotations

import math
import re
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.files import fsync_file
from qa.store.vectors import members
from qa.terms import stem

TERMS = ".lex_terms.txt"
STARTS = ".lex_starts.npy"
ROWS = ".lex_rows.npy"
FREQUENCIES = ".lex_tf.npy"
LENGTHS = ".lex_lengths.npy"
SUFFIXES = (TERMS, STARTS, ROWS, FREQUENCIES, LENGTHS)

K1 = 1.2  # FTS5's bm25() constants
B = 0.75

_TOKEN = re.compile(r"[^\W_]+")  # unicode61: runs of letters and digits


def index_terms(text: str) -> list[str]:
    """The stems of every word of `text`, as the inverted files hold them."""
    return [_term(token) for token in _TOKEN.findall(text)]


def query_terms(words: Iterable[str]) -> list[str]:
    """The distinct stems of query words."""
    return list(dict.fromkeys(term for word in words for term in index_terms(word)))


@lru_cache(maxsize=1 << 18)
def _term(token: str) -> str:
    return stem(_fold(token))


def _fold(token: str) -> str:
    if token.isascii():
        return token
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def postings_files(folder: Path, name: str) -> list[Path]:
    return [folder / f"{name}{suffix}" for suffix in SUFFIXES]


def has_postings(folder: Path, name: str) -> bool:
    return (folder / f"{name}{LENGTHS}").exists()


class PostingsWriter:
    """Collects the rows of one new segment, in segment order, and writes its inverted file."""

    def __init__(self, title_weight: float):
        self._title_weight = title_weight
        self._term_ids: dict[str, int] = {}
        self._rows = array("i")
        self._terms = array("i")
        self._frequencies = array("f")
        self._lengths = array("f")

    def add(self, title: str, text: str) -> None:
        row = len(self._lengths)
        title_terms, text_terms = index_terms(title), index_terms(text)
        counts: dict[int, float] = {}
        ids = self._term_ids
        for term in text_terms:
            term_id = ids.setdefault(term, len(ids))
            counts[term_id] = counts.get(term_id, 0.0) + 1.0
        for term in title_terms:
            term_id = ids.setdefault(term, len(ids))
            counts[term_id] = counts.get(term_id, 0.0) + self._title_weight
        self._lengths.append(len(title_terms) + len(text_terms))
        self._rows.extend([row] * len(counts))
        self._terms.extend(counts.keys())
        self._frequencies.extend(counts.values())

    @property
    def count(self) -> int:
        return len(self._lengths)

    def write(self, folder: Path, name: str) -> None:
        terms = sorted(self._term_ids, key=self._term_ids.__getitem__)
        _write(
            folder,
            name,
            terms,
            np.frombuffer(self._terms, dtype=np.int32),
            np.frombuffer(self._rows, dtype=np.int32),
            np.frombuffer(self._frequencies, dtype=np.float32),
            np.frombuffer(self._lengths, dtype=np.float32),
        )


def merge_postings(
    folder: Path,
    name: str,
    sources: Sequence[tuple[str, np.ndarray]],
    block_postings: int = 1 << 22,
) -> None:
    """Write the inverted file of a segment made of `sources` (segment name, rows kept), in
    that order: the rows kept, renumbered, as the merged vectors are.

    Every source lists its postings by term in sorted term order, so the merged file is
    written a block of terms at a time (about `block_postings` postings, taken from every
    source's contiguous stretch for those terms): memory follows the block, not the merged
    segment, which at a million chunks holds some 80 million postings.
    """
    parts = [SegmentPostings(folder, source) for source, _ in sources]
    try:
        vocabulary = sorted(set().union(*(part.terms for part in parts)))
        place = {term: i for i, term in enumerate(vocabulary)}
        places = [
            np.fromiter((place[t] for t in part.terms), np.int64, len(part.terms)) for part in parts
        ]
        renumbering, offset = [], 0
        for _, keep in sources:
            renumbering.append(np.cumsum(keep, dtype=np.int64) - 1 + offset)
            offset += int(keep.sum())
        # First pass: the live postings per term, for the merged file's layout.
        counts = np.zeros(len(vocabulary), dtype=np.int64)
        for part, (_, keep), local in zip(parts, sources, places, strict=True):
            for low, high in _posting_blocks(part.starts, block_postings):
                term_of, rows, _ = _stretch(
                    part, local, int(part.starts[low]), int(part.starts[high])
                )
                counts += np.bincount(term_of[keep[rows]], minlength=len(vocabulary))
        present = np.flatnonzero(counts)
        starts = np.zeros(len(present) + 1, dtype=np.int64)
        np.cumsum(counts[present], out=starts[1:])
        total = int(starts[-1])
        paths = postings_files(folder, name)
        paths[0].write_text("\n".join(vocabulary[i] for i in present.tolist()), encoding="utf-8")
        np.save(paths[1], starts)
        out_rows = np.lib.format.open_memmap(paths[2], mode="w+", dtype=np.int32, shape=(total,))
        out_tf = np.lib.format.open_memmap(paths[3], mode="w+", dtype=np.float16, shape=(total,))
        # Second pass: blocks of terms, each source's postings for them, merged by term.
        first = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(counts, out=first[1:])  # where each vocabulary term's postings start
        for low, high in _posting_blocks(first, block_postings):
            pieces_term, pieces_row, pieces_tf = [], [], []
            for part, (_, keep), local, renumbered in zip(
                parts, sources, places, renumbering, strict=True
            ):
                begin = int(np.searchsorted(local, low))
                end = int(np.searchsorted(local, high))
                term_of, rows, frequencies = _stretch(
                    part, local, int(part.starts[begin]), int(part.starts[end])
                )
                live = keep[rows]
                pieces_term.append(term_of[live])
                pieces_row.append(renumbered[rows[live]])
                pieces_tf.append(frequencies[live])
            term_of = np.concatenate(pieces_term)
            # Stable: sources in order, so each term's rows stay ascending.
            order = np.argsort(term_of, kind="stable")
            at, until = int(first[low]), int(first[high])
            out_rows[at:until] = np.concatenate(pieces_row)[order]
            out_tf[at:until] = np.concatenate(pieces_tf)[order]
        out_rows.flush()
        out_tf.flush()
        del out_rows, out_tf
        lengths = [
            np.asarray(part.lengths[keep], np.float32)
            for part, (_, keep) in zip(parts, sources, strict=True)
        ]
        np.save(paths[4], np.concatenate(lengths) if lengths else np.zeros(0, np.float32))
        for path in paths:
            fsync_file(path)
    finally:
        for part in parts:
            part.close()


def _posting_blocks(starts: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Ranges [low, high) of term indices whose postings (`starts` per term) come to about
    `size` each; a term with more postings than that is a block of its own."""
    blocks, low, terms = [], 0, len(starts) - 1
    while low < terms:
        high = int(np.searchsorted(starts, starts[low] + size, side="right")) - 1
        high = min(terms, max(high, low + 1))
        blocks.append((low, high))
        low = high
    return blocks


def _stretch(
    part: SegmentPostings, local: np.ndarray, low: int, high: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Postings `low:high` of `part`: their merged-vocabulary term, row and frequency."""
    rows = np.asarray(part.rows[low:high], dtype=np.int64)
    frequencies = np.asarray(part.frequencies[low:high])
    term_of = np.searchsorted(part.starts, np.arange(low, high), side="right") - 1
    return local[term_of], rows, frequencies


def _write(
    folder: Path,
    name: str,
    terms: Sequence[str],
    term_of_posting: np.ndarray,
    rows: np.ndarray,
    frequencies: np.ndarray,
    lengths: np.ndarray,
) -> None:
    """Sort postings by term (in sorted term order); drop terms with none; save.

    The postings come in row order within each term (rows are added, or sources merged, in
    order), so a stable sort by term alone keeps each term's rows ascending.
    """
    by_name = np.asarray(sorted(range(len(terms)), key=terms.__getitem__), dtype=np.int64)
    rank = np.empty(len(terms), dtype=np.int32)
    rank[by_name] = np.arange(len(terms), dtype=np.int32)
    keys = rank[term_of_posting]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    rows, frequencies = rows[order], frequencies[order]
    del order
    counts = np.bincount(keys, minlength=len(terms))
    present = np.flatnonzero(counts)
    sorted_terms = [terms[i] for i in by_name[present].tolist()]
    starts = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(counts[present], out=starts[1:])
    paths = postings_files(folder, name)
    paths[0].write_text("\n".join(sorted_terms), encoding="utf-8")
    np.save(paths[1], starts)
    np.save(paths[2], rows.astype(np.int32))
    np.save(paths[3], frequencies.astype(np.float16))
    np.save(paths[4], lengths.astype(np.float32))
    for path in paths:
        fsync_file(path)


class SegmentPostings:
    """One segment's inverted file, its arrays memory-mapped."""

    def __init__(self, folder: Path, name: str):
        paths = postings_files(folder, name)
        text = paths[0].read_text(encoding="utf-8")
        self.terms = text.split("\n") if text else []
        self.starts = np.load(paths[1])
        self.rows = np.load(paths[2], mmap_mode="r")
        self.frequencies = np.load(paths[3], mmap_mode="r")
        self.lengths = np.load(paths[4], mmap_mode="r")
        self._place: dict[str, int] | None = None

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding `term` and its weighted frequency in each."""
        if self._place is None:
            self._place = {term: i for i, term in enumerate(self.terms)}
        i = self._place.get(term)
        if i is None:
            return _NO_ROWS, _NO_FREQUENCIES
        start, end = int(self.starts[i]), int(self.starts[i + 1])
        return np.asarray(self.rows[start:end]), np.asarray(self.frequencies[start:end])

    def close(self) -> None:
        # np.load's memory maps close when their arrays go.
        self.rows = self.frequencies = self.lengths = _NO_ROWS


_NO_ROWS = np.zeros(0, dtype=np.int32)
_NO_FREQUENCIES = np.zeros(0, dtype=np.float16)


@dataclass(frozen=True)
class CollectionStatistics:
    """What BM25 weighs a query's terms by: the number of chunks, their total length in terms,
    and how many chunks hold each term."""

    documents: int
    total_length: float
    frequency: dict[str, int]

    def __add__(self, other: CollectionStatistics) -> CollectionStatistics:
        terms = self.frequency.keys() | other.frequency.keys()
        return CollectionStatistics(
            self.documents + other.documents,
            self.total_length + other.total_length,
            {t: self.frequency.get(t, 0) + other.frequency.get(t, 0) for t in terms},
        )

    @property
    def average_length(self) -> float:
        return self.total_length / self.documents if self.documents else 1.0

    def idf(self, term: str) -> float:
        frequency = self.frequency.get(term, 0)
        idf = math.log((self.documents - frequency + 0.5) / (frequency + 0.5))
        return idf if idf > 0 else 1e-6  # FTS5's floor for words in most rows


# One segment's postings of a query: its index, then (term, (rows, frequencies)) per term found.
_Gathered = tuple[int, list[tuple[str, tuple[np.ndarray, np.ndarray]]]]


class LexicalSet:
    """BM25 over the live rows of every chunk segment. Read-only after loading: searches may
    run from many threads at once."""

    def __init__(
        self,
        folder: Path,
        segments: Sequence[tuple[str, np.ndarray]],
        deleted: np.ndarray,
    ):
        """`segments`: each chunk segment's name and ids (chunk ids, in row order)."""
        self._folder = folder
        self._parts: list[tuple[SegmentPostings, np.ndarray, np.ndarray | None]] = []
        self._names = [name for name, _ in segments]
        documents, total_length = 0, 0.0
        for name, ids in segments:
            part = SegmentPostings(folder, name)
            live = ~np.isin(ids, deleted) if len(deleted) else None
            lengths = np.asarray(part.lengths, dtype=np.float64)
            documents += int(live.sum()) if live is not None else len(ids)
            total_length += float(lengths[live].sum() if live is not None else lengths.sum())
            self._parts.append((part, ids, live))
        self.documents = documents
        self._total_length = total_length

    def statistics(self, words: Sequence[str]) -> CollectionStatistics:
        """This set's share of the statistics BM25 needs for `words`: summed over the shards of
        a sharded index, they make every shard score as one index would."""
        terms = query_terms(words)
        return self._statistics(terms, self._gathered(terms))

    def _statistics(self, terms: Sequence[str], found: list[_Gathered]) -> CollectionStatistics:
        frequency = dict.fromkeys(terms, 0)
        for _, gathered in found:
            for term, (rows, _) in gathered:
                frequency[term] += len(rows)
        return CollectionStatistics(self.documents, self._total_length, frequency)

    def _gathered(self, terms: Sequence[str]) -> list[_Gathered]:
        """Every live posting of `terms`: per segment, (term, (rows, frequencies)) pairs."""
        found: list[_Gathered] = []
        for index, (part, _, live) in enumerate(self._parts):
            gathered = []
            for term in terms:
                rows, tf = part.postings(term)
                if live is not None and len(rows):
                    kept = live[rows]
                    rows, tf = rows[kept], tf[kept]
                if len(rows):
                    gathered.append((term, (rows, tf)))
            found.append((index, gathered))
        return found

    def search(
        self,
        words: Sequence[str],
        k: int,
        allowed: np.ndarray | None = None,
        statistics: CollectionStatistics | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` best chunk ids for `words` by BM25, best first; with `allowed` (sorted chunk
        ids), only among those. Collection statistics ignore `allowed`, as FTS5's do; with
        `statistics` (a whole sharded index's), those are used instead of this set's own."""
        terms = query_terms(words)
        if k <= 0 or not terms or not self.documents:
            return []
        found = self._gathered(terms)
        statistics = statistics or self._statistics(terms, found)
        idf = {term: statistics.idf(term) for term in terms}
        average_length = statistics.average_length
        best: list[tuple[int, float]] = []
        for index, gathered in found:
            if not gathered:
                continue
            part, ids, _ = self._parts[index]
            rows = np.concatenate([rows for _, (rows, _) in gathered])
            tf = np.concatenate([tf for _, (_, tf) in gathered]).astype(np.float64)
            weight = np.concatenate([np.full(len(r), idf[t]) for t, (r, _) in gathered])
            norm = K1 * (1 - B + B * np.asarray(part.lengths[rows]) / average_length)
            scores = np.bincount(rows, weight * tf * (K1 + 1) / (tf + norm), len(ids))
            candidates = np.flatnonzero(scores)
            if allowed is not None:
                candidates = candidates[members(allowed, ids[candidates])]
            if len(candidates) > k:
                top = np.argpartition(-scores[candidates], k - 1)[:k]
                candidates = candidates[top]
            best.extend(zip(ids[candidates].tolist(), scores[candidates].tolist(), strict=True))
        best.sort(key=lambda pair: (-pair[1], pair[0]))
        return best[:k]

    def memory_bytes(self) -> int:
        """Held in memory: term tables and the id and liveness arrays (postings are mapped)."""
        total = 0
        for part, ids, live in self._parts:
            total += part.starts.nbytes + ids.nbytes + (live.nbytes if live is not None else 0)
            total += sum(len(term) + 100 for term in part.terms)  # a str and a dict entry
        return total

    @property
    def segments(self) -> int:
        return len(self._parts)

    def disk_bytes(self) -> int:
        return sum(
            path.stat().st_size
            for name in self._names
            for path in postings_files(self._folder, name)
        )

    def close(self) -> None:
        for part, _, _ in self._parts:
            part.close()
