"""Vector segments: immutable files of vectors, searched exactly when small, approximately when big.

A segment is written once and never changed: its ids (`<name>.ids.npy`), its vectors as float16
rows (`<name>.f16`) and, when it holds at least `AnnSettings.threshold` vectors, their IVF-PQ
codes (`<name>.ivfpq.faiss`). A build adds one segment per kind holding only its new vectors and
records the ids it deletes; merging (`merge_segments`) writes one segment from several, without
the deleted rows. Which segments and deletions make up the live index is recorded in the
database, in the same transaction as the rows, so vectors and rows always move together.

Loaded for search (`VectorSet`):
- the small segments: every live vector in one FAISS index of float16 rows, searched exactly;
- the coded segments: their IVF-PQ codes in memory (`m` bytes a vector, the rows are not), the
  `refine × k` best candidates re-scored exactly from the float16 rows, read with `pread` from
  the page cache (not counted in the process's memory).
A filter applies before the top-k cut either way; an approximate search that may only return a
small share of the vectors scans every list (`nprobe = nlist`), so nothing allowed is missed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa.files import fsync_file

IDS = ".ids.npy"
ROWS = ".f16"
CODES = ".ivfpq.faiss"
# Candidates among which the shortlist of distinct codes is chosen (see _search_coded).
_SPAN = 2048


@dataclass(frozen=True)
class AnnSettings:
    """When and how vectors are searched approximately; recorded in the manifest."""

    threshold: int = 200_000  # a segment this big or bigger is coded and searched approximately
    nlist: int = 0  # IVF lists; 0: about 4·√n, a power of two between 64 and 8192
    m: int = 0  # PQ bytes a vector (8-bit codes); 0: one per 4 dimensions
    nprobe: int = 64  # lists searched per query
    # Candidates re-scored exactly: refine × k, at least 100. At 1M chunks, 10 against 4 cost
    # hybrid search 58 against 30 ms p50 (a hybrid search asks for 50 chunks and 200 sentences,
    # so 10 read 2,500 rows) for one question in 200 leaving the top 10 (benchmarks/scale.py).
    refine: int = 4
    selective: float = 0.05  # a filter keeping less than this share scans every list
    train_sample: int = 100_000  # vectors the quantizer is trained on, at most

    def lists_for(self, count: int) -> int:
        if self.nlist:
            return self.nlist
        return int(min(8192, max(64, 2 ** round(math.log2(4 * math.sqrt(max(count, 1)))))))

    def bytes_for(self, dimension: int) -> int:
        return self.m or max(1, dimension // 4)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class Segment:
    """One immutable segment: `count` vectors of one kind, approximate when `coded`."""

    name: str
    kind: str  # "chunks" or "sentences"
    count: int
    coded: bool = False


def segment_files(folder: Path, segment: Segment) -> list[Path]:
    suffixes = [IDS, ROWS, *([CODES] if segment.coded else [])]
    return [folder / f"{segment.name}{suffix}" for suffix in suffixes]


class SegmentWriter:
    """Writes one segment a batch at a time, so a big merge never holds all its rows at once."""

    def __init__(self, folder: Path, name: str, kind: str, quantizer: Any | None = None):
        self.folder, self.name, self.kind = folder, name, kind
        self._ids: list[np.ndarray] = []
        self._coded = None
        if quantizer is not None:
            self._coded = faiss.clone_index(quantizer)
            self._coded.reset()
        self._paths = segment_files(folder, Segment(name, kind, 0, quantizer is not None))
        self._rows = open(self._paths[1], "wb")  # noqa: SIM115 - closed in finish()

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        if not len(ids):
            return
        self._ids.append(ids)
        self._rows.write(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
        if self._coded is not None:
            self._coded.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def finish(self) -> Segment:
        """Close and fsync the files; the segment they make."""
        self._rows.close()
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, dtype=np.int64)
        np.save(self._paths[0], ids)
        if self._coded is not None:
            faiss.write_index(self._coded, str(self._paths[2]))
        for path in self._paths:
            fsync_file(path)
        return Segment(self.name, self.kind, len(ids), self._coded is not None)


def write_segment(
    folder: Path,
    name: str,
    kind: str,
    ids: np.ndarray,
    vectors: np.ndarray,
    quantizer: Any | None = None,
) -> Segment:
    """Write a segment and fsync it; with `quantizer` (a trained IVF-PQ) its codes too."""
    writer = SegmentWriter(folder, name, kind, quantizer)
    writer.append(ids, vectors)
    return writer.finish()


def read_ids(folder: Path, segment: Segment) -> np.ndarray:
    return np.load(folder / f"{segment.name}{IDS}")


def read_rows(folder: Path, segment: Segment, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """A segment's ids and its vectors (float32)."""
    ids = read_ids(folder, segment)
    rows = np.fromfile(folder / f"{segment.name}{ROWS}", dtype=np.float16)
    return ids, rows.reshape(len(ids), dimension).astype(np.float32)


def train_quantizer(sample: np.ndarray, settings: AnnSettings, count: int) -> Any:
    """An empty IVF-PQ for `count` vectors of inner-product search, trained on `sample`."""
    dimension = sample.shape[1]
    code_bytes = settings.bytes_for(dimension)
    if dimension % code_bytes:
        raise ValueError(f"PQ of {code_bytes} bytes does not divide dimension {dimension}")
    lists = max(1, min(settings.lists_for(count), len(sample) // 39))
    index = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(dimension), dimension, lists, code_bytes, 8, faiss.METRIC_INNER_PRODUCT
    )
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def quantizer_of(folder: Path, segment: Segment) -> Any:
    """The trained IVF-PQ a coded segment was written with, emptied (to code others alike)."""
    index = faiss.read_index(str(folder / f"{segment.name}{CODES}"))
    index.reset()
    return index


class VectorSet:
    """The live vectors of one kind across its segments, loaded for search.

    Searches may run from many threads at once: FAISS searches are thread-safe and nothing here
    changes after loading.
    """

    def __init__(
        self,
        folder: Path,
        segments: Sequence[Segment],
        deleted: Iterable[int],
        dimension: int,
        settings: AnnSettings,
    ):
        self.folder = folder
        self.dimension = dimension
        self.settings = settings
        self.segments = list(segments)
        gone = np.fromiter(deleted, dtype=np.int64)
        self.exact: Any = faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(
                dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
        )
        self._exact_ids = np.zeros(0, dtype=np.int64)
        self.coded: Any | None = None
        coded_ids, coded_places = [], []
        self._files: list[int] = []
        try:
            for segment in self.segments:
                if segment.coded:
                    ids = read_ids(folder, segment)
                    keep = ~np.isin(ids, gone)
                    coded_ids.append(ids[keep])
                    rows = np.flatnonzero(keep)
                    places = np.stack([np.full(len(rows), len(self._files)), rows], axis=1)
                    coded_places.append(places.astype(np.int64))
                    self._files.append(os.open(folder / f"{segment.name}{ROWS}", os.O_RDONLY))
                    part = faiss.read_index(str(folder / f"{segment.name}{CODES}"))
                    if self.coded is None:
                        self.coded = part
                    else:
                        self.coded.merge_from(part, 0)
                else:
                    ids, vectors = read_rows(folder, segment, dimension)
                    keep = ~np.isin(ids, gone)
                    if keep.any():
                        self.exact.add_with_ids(vectors[keep], ids[keep])
                        self._exact_ids = np.concatenate([self._exact_ids, ids[keep]])
        except BaseException:
            self.close()
            raise
        self._exact_ids.sort()
        if self.coded is not None and len(gone):
            self.coded.remove_ids(faiss.IDSelectorBatch(gone))
        all_coded = np.concatenate(coded_ids) if coded_ids else np.zeros(0, np.int64)
        order = np.argsort(all_coded, kind="stable")
        self._coded_ids = all_coded[order]
        self._coded_places = (
            np.concatenate(coded_places)[order] if coded_places else np.zeros((0, 2), np.int64)
        )

    @property
    def count(self) -> int:
        return int(self.exact.ntotal) + len(self._coded_ids)

    @property
    def approximate_count(self) -> int:
        return len(self._coded_ids)

    def close(self) -> None:
        files, self._files = self._files, []
        for fd in files:
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def search(
        self, query: np.ndarray, k: int, allowed: Sequence[int] | np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` live vectors nearest `query` by inner product, best first; with `allowed`
        (ids), only among those."""
        if k <= 0 or self.count == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        found: list[tuple[int, float]] = []
        if self.exact.ntotal:
            # faiss's stubs miss the keyword arguments its Python wrapper adds.
            params = faiss.SearchParameters(sel=selector) if selector else None  # type: ignore[call-arg]
            scores, ids = self.exact.search(query, min(k, self.exact.ntotal), params=params)
            found.extend(_pairs(ids[0], scores[0]))
        if self.coded is not None and self.coded.ntotal:
            found.extend(self._search_coded(query, k, selector, allowed))
        found.sort(key=lambda pair: -pair[1])
        return found[:k]

    def _search_coded(
        self,
        query: np.ndarray,
        k: int,
        selector: Any,
        allowed: Sequence[int] | np.ndarray | None,
    ) -> list[tuple[int, float]]:
        """The best `depth` distinct codes re-scored exactly, then the copies of the best.

        Copies of one vector (a wire story's sentences in every outlet that carried it, the
        same boilerplate line in every article) share one code and one approximate score: a
        shortlist of the `depth` best candidates can hold nothing but the copies of one
        sentence whose code scores a little too high, and miss the sentence that is truly
        best. So the shortlist is of distinct approximate scores among the first `_SPAN`
        candidates (a search costs about the same for 100 or 2,048 of them: the lists scanned
        are the same).
        """
        assert self.coded is not None
        total = int(self.coded.ntotal)
        depth = min(max(100, self.settings.refine * k), total)
        nprobe = min(self.settings.nprobe, self.coded.nlist)
        if allowed is not None and len(allowed) < self.settings.selective * self.count:
            nprobe = self.coded.nlist  # few allowed: look in every list, miss none
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)  # type: ignore[call-arg]
        approximate, ids = self.coded.search(query, min(total, max(depth, _SPAN)), params=params)
        keep = ids[0] >= 0
        approximate, candidates = approximate[0][keep], ids[0][keep]
        if not len(candidates):
            return []
        # One representative (the first) of each approximate score, in the search's order.
        _, first, group = np.unique(approximate, return_index=True, return_inverse=True)
        groups = np.argsort(first, kind="stable")[:depth]
        representatives = candidates[first[groups]]
        exact = self._coded_rows(representatives) @ query[0]
        scored = dict(zip(representatives.tolist(), exact.tolist(), strict=True))
        # Copies score alike: the best groups' copies are re-scored until k are found.
        by_group = np.argsort(group, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(group))])
        copies: list[int] = []
        found = 0
        for chosen in groups[np.argsort(-exact, kind="stable")]:
            members = candidates[by_group[starts[chosen] : starts[chosen + 1]]][: k - found]
            copies.extend(int(i) for i in members if int(i) not in scored)
            found += len(members)
            if found >= k:
                break
        if copies:
            rows = self._coded_rows(np.asarray(copies, dtype=np.int64)) @ query[0]
            scored.update(zip(copies, rows.tolist(), strict=True))
        best = sorted(scored.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
        return [(vector_id, float(score)) for vector_id, score in best]

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The vectors of `ids` (a zero row for an id not in the set)."""
        wanted = np.asarray(ids, dtype=np.int64)
        rows = np.zeros((len(wanted), self.dimension), dtype=np.float32)
        in_exact = members(self._exact_ids, wanted)
        for position in np.flatnonzero(in_exact):
            rows[position] = self.exact.reconstruct(int(wanted[position]))
        rest = np.flatnonzero(~in_exact)
        if len(rest):
            rows[rest] = self._coded_rows(wanted[rest])
        return rows

    def _coded_rows(self, ids: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(ids), self.dimension), dtype=np.float32)
        if not len(self._coded_ids):
            return rows
        places = np.searchsorted(self._coded_ids, ids).clip(0, len(self._coded_ids) - 1)
        size = 2 * self.dimension
        for position, (place, vector_id) in enumerate(zip(places, ids, strict=True)):
            if self._coded_ids[place] != vector_id:
                continue
            file, row = self._coded_places[place]
            data = os.pread(self._files[int(file)], size, int(row) * size)
            rows[position] = np.frombuffer(data, dtype=np.float16)
        return rows

    def memory_bytes(self) -> int:
        """What the loaded vectors hold in memory: rows or codes, ids and the id maps."""
        exact = int(self.exact.ntotal) * (2 * self.dimension + 8 + 16 + 8)
        if self.coded is None:
            return exact
        coded = len(self._coded_ids) * (int(self.coded.code_size) + 8 + 8 + 16)
        return exact + coded + int(self.coded.nlist) * self.dimension * 4

    def disk_bytes(self) -> int:
        return sum(
            path.stat().st_size
            for segment in self.segments
            for path in segment_files(self.folder, segment)
        )

    def describe(self) -> str:
        parts = []
        if self.exact.ntotal or self.coded is None:
            parts.append(f"exact inner product over fp16 rows ({int(self.exact.ntotal):,} vectors)")
        if self.coded is not None:
            parts.append(
                f"IVF-PQ ({int(self.coded.nlist)} lists, {int(self.coded.code_size)} bytes a "
                f"vector, nprobe {self.settings.nprobe}, exact re-scoring of the best "
                f"{self.settings.refine}×k) over {self.approximate_count:,} vectors"
            )
        return "; ".join(parts)


def members(sorted_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Whether each of `wanted` is among `sorted_ids`."""
    if not len(sorted_ids):
        return np.zeros(len(wanted), dtype=bool)
    places = np.searchsorted(sorted_ids, wanted).clip(0, len(sorted_ids) - 1)
    return np.asarray(sorted_ids[places] == wanted)


def _pairs(ids: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
