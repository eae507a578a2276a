"""Vector segments of the default store: append-only files, live rows in SQLite, tiered merging.

A segment is an immutable file pair under ``<index>/segments/``: ``<name>.npy`` (raw float32 rows)
and, when it is large enough, ``<name>.faiss`` (its approximate structure, see ``faiss_index``).
Which rows are live and which id each row has lives in the store's SQLite tables::

    segments(seg, kind, name, n_rows, n_live, structure)     kind 0 = chunks, 1 = sentences
    vec(kind, id, seg, row)                                  one row per live vector

so adding a file writes one small segment, deleting is a row delete (a missing ``vec`` row is the
tombstone), and a reader sees exactly the vectors of its SQLite snapshot. ``maintain`` keeps the
segment count and the dead rows bounded: a segment with more than ``DEAD_RATIO`` dead rows is
rewritten alone, and ``MERGE_FACTOR`` segments of the same size tier (powers of ``MERGE_FACTOR``)
are merged into one; each merge is its own transaction and touches only the merged segments, so
a vector is rewritten about log_10(N) times over its life (amortised, like an LSM tree).
"""

from __future__ import annotations

import json
import math
import os
import uuid
import weakref
from pathlib import Path
from typing import Callable, Collection, Iterable, Sequence

import numpy as np

from .base import StoreError
from .faiss_index import FaissParams, ann_top, build_faiss, choose_kind, exact_top, structure

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments(seg INTEGER PRIMARY KEY, kind INTEGER NOT NULL, name TEXT NOT NULL,
                                    n_rows INTEGER NOT NULL, n_live INTEGER NOT NULL, structure TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vec(kind INTEGER NOT NULL, id TEXT NOT NULL, seg INTEGER NOT NULL, row INTEGER NOT NULL,
                               PRIMARY KEY(kind, id)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS vec_pos ON vec(seg, row);
"""
CHUNKS, SENTENCES = 0, 1
MERGE_FACTOR = 10  # segments per size tier before they are merged (tiers: 1-9, 10-99, 100-999 … live rows)
DEAD_RATIO = 0.3  # a segment with more dead rows than this share is rewritten without them

Rows = Callable[[str, tuple], list]


class Segment:
    """The files of one segment, opened: raw rows (memory-mapped) and the optional FAISS structure."""

    def __init__(self, name: str, vectors: np.ndarray, ann):
        self.name, self.vectors, self.ann = name, vectors, ann

    def top(self, qvec: np.ndarray, k: int, params: FaissParams) -> tuple[np.ndarray, np.ndarray]:
        if self.ann is None:
            return exact_top(self.vectors, qvec, k)
        return ann_top(self.ann, self.vectors, qvec, k, params)


_open_segments: "weakref.WeakValueDictionary[str, Segment]" = weakref.WeakValueDictionary()


def load_segment(folder: Path, name: str) -> Segment:
    """Open a segment (shared by every view in this process: segment files never change).
    Raises ``FileNotFoundError`` when a newer commit has already dropped it."""
    key = str(folder / name)
    seg = _open_segments.get(key)
    if seg is None:
        import faiss

        vectors = np.load(folder / f"{name}.npy", mmap_mode="r")
        ann_path = folder / f"{name}.faiss"
        ann = faiss.read_index(str(ann_path)) if ann_path.exists() else None
        seg = Segment(name, vectors, ann)
        _open_segments[key] = seg
    return seg


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(folder: Path, name: str, vectors: np.ndarray, params: FaissParams) -> str:
    """Write a segment's files (made durable before anything refers to them); returns its structure."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    np.save(folder / f"{name}.npy", x)
    _fsync(folder / f"{name}.npy")
    ann = None
    if choose_kind(len(x), params) != "flat":
        import faiss

        ann = build_faiss(x, x.shape[1], choose_kind(len(x), params), params)
        faiss.write_index(ann, str(folder / f"{name}.faiss"))
        _fsync(folder / f"{name}.faiss")
    _fsync(folder)
    return structure(ann)


def remove_files(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        for ext in (".npy", ".faiss"):
            try:
                (folder / f"{name}{ext}").unlink()
            except FileNotFoundError:
                pass


def new_name(kind: int) -> str:
    return f"{'cs'[kind]}-{uuid.uuid4().hex[:12]}"


# ---------- writing (inside the writer's transaction) ----------

def append(con, folder: Path, kind: int, ids: Sequence[str], vectors: np.ndarray, params: FaissParams) -> str:
    """A new segment holding ``ids``; returns its name (its files exist before the transaction commits)."""
    name = new_name(kind)
    st = write_segment(folder, name, vectors, params)
    (seg,) = con.execute("INSERT INTO segments(kind, name, n_rows, n_live, structure) VALUES (?, ?, ?, ?, ?) "
                         "RETURNING seg", (kind, name, len(ids), len(ids), st)).fetchone()
    con.executemany("INSERT INTO vec VALUES (?, ?, ?, ?)", [(kind, i, seg, r) for r, i in enumerate(ids)])
    return name


def delete_ids(con, kind: int, ids: Collection[str]) -> None:
    if not ids:
        return
    arg = json.dumps(list(ids))
    for seg, n in con.execute("SELECT seg, COUNT(*) FROM vec WHERE kind = ? AND id IN (SELECT value FROM json_each(?)) "
                              "GROUP BY seg", (kind, arg)).fetchall():
        con.execute("UPDATE segments SET n_live = n_live - ? WHERE seg = ?", (n, seg))
    con.execute("DELETE FROM vec WHERE kind = ? AND id IN (SELECT value FROM json_each(?))", (kind, arg))


def _tier(n: int) -> int:
    return int(math.log(max(n, 1), MERGE_FACTOR))


def plan(segs: list[tuple[int, int, int]]) -> list[list[int]]:
    """Segment groups to rewrite, from (seg, n_rows, n_live) rows: empty ones alone (dropped),
    ones with too many dead rows alone, and a full size tier together."""
    groups = [[s] for s, rows, live in segs if live < (1 - DEAD_RATIO) * rows]
    rest = [(s, live) for s, rows, live in segs if live >= (1 - DEAD_RATIO) * rows]
    tiers: dict[int, list[int]] = {}
    for s, live in rest:
        tiers.setdefault(_tier(live), []).append(s)
    groups += [sorted(t) for t in tiers.values() if len(t) >= MERGE_FACTOR]
    return groups


def maintain(con, folder: Path, params: FaissParams, on_commit: Callable[[list[str]], None]) -> int:
    """Merge and compact segments until the plan is empty; each rewrite is one transaction, after
    which ``on_commit(old names)`` may delete the old files. Returns the number of rewrites."""
    done = 0
    while True:
        todo = None
        for kind in (CHUNKS, SENTENCES):
            groups = plan(con.execute("SELECT seg, n_rows, n_live FROM segments WHERE kind = ?", (kind,)).fetchall())
            if groups:
                todo = (kind, groups[0])
                break
        if todo is None:
            return done
        kind, group = todo
        con.execute("BEGIN IMMEDIATE")
        try:
            names = dict(con.execute("SELECT seg, name FROM segments WHERE seg IN (SELECT value FROM json_each(?))",
                                     (json.dumps(group),)).fetchall())
            live = con.execute("SELECT id, seg, row FROM vec WHERE seg IN (SELECT value FROM json_each(?)) "
                               "ORDER BY seg, row", (json.dumps(group),)).fetchall()
            con.execute("DELETE FROM segments WHERE seg IN (SELECT value FROM json_each(?))", (json.dumps(group),))
            if live:
                parts, ids = [], []
                for s in group:
                    rows = np.array([r for _, sg, r in live if sg == s], dtype=np.int64)
                    if len(rows):
                        parts.append(np.asarray(load_segment(folder, names[s]).vectors[rows]))
                    ids += [i for i, sg, _ in live if sg == s]
                con.execute("DELETE FROM vec WHERE seg IN (SELECT value FROM json_each(?))", (json.dumps(group),))
                append(con, folder, kind, ids, np.concatenate(parts), params)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        on_commit(list(names.values()))
        done += 1


# ---------- reading (one snapshot) ----------

class SegmentVectors:
    """A read-only ``VectorIndex`` over the segments of one snapshot; ids come from ``vec`` rows read
    through ``rows(sql, params)`` inside that snapshot, so dead rows are never returned."""

    def __init__(self, rows: Rows, kind: int, dim: int, segs: list[tuple[int, int, int, Segment]],
                 params: FaissParams):
        self._rows, self.kind, self.dim, self._params = rows, kind, int(dim), params
        self._segs = segs  # (seg, n_rows, n_live, Segment)
        self._by_seg = {s: seg for s, _, _, seg in segs}

    def __len__(self) -> int:
        return sum(live for _, _, live, _ in self._segs)

    @property
    def structure(self) -> str:
        if not self._segs:
            return "empty"
        kinds: dict[str, int] = {}
        for _, _, _, seg in self._segs:
            kinds[structure(seg.ann)] = kinds.get(structure(seg.ann), 0) + 1
        return " + ".join(f"{k}×{n}" for k, n in sorted(kinds.items())) + f" ({len(self._segs)} segments)"

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        raise StoreError("a store view is read-only; change it through store.writer()")

    def delete(self, ids: Iterable[str]) -> None:
        raise StoreError("a store view is read-only; change it through store.writer()")

    def save(self, folder: Path) -> None:
        raise StoreError("a store view is saved by its writer's commit")

    def _ids_at(self, seg: int, rows: np.ndarray) -> dict[int, str]:
        got = self._rows("SELECT row, id FROM vec WHERE seg = ? AND row IN (SELECT value FROM json_each(?))",
                         (seg, json.dumps(rows.tolist())))
        return dict(got)

    def _locate(self, ids: Collection[str]) -> list[tuple[str, int, int]]:
        return self._rows("SELECT id, seg, row FROM vec WHERE kind = ? AND id IN (SELECT value FROM json_each(?))",
                          (self.kind, json.dumps(list(ids))))

    def search(self, qvec: np.ndarray, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        q = np.asarray(qvec, dtype=np.float32).reshape(-1)
        if allowed is not None:  # exact over the allowed rows only
            found: list[tuple[str, float]] = []
            by_seg: dict[int, list[tuple[int, str]]] = {}
            for i, s, r in self._locate(allowed):
                by_seg.setdefault(s, []).append((r, i))
            for s, pairs in by_seg.items():
                pairs.sort()
                rows = np.array([r for r, _ in pairs], dtype=np.int64)
                scores = np.asarray(self._by_seg[s].vectors[rows], dtype=np.float32) @ q
                found += [(i, float(sc)) for (_, i), sc in zip(pairs, scores)]
            found.sort(key=lambda t: (-t[1], t[0]))
            return found[:k]
        out: list[tuple[str, float]] = []
        for s, n_rows, n_live, seg in self._segs:
            if n_live:
                out += self._segment_top(s, n_rows, n_live, seg, q, k)
        out.sort(key=lambda t: (-t[1], t[0]))
        return out[:k]

    def _segment_top(self, s: int, n_rows: int, n_live: int, seg: Segment, q: np.ndarray,
                     k: int) -> list[tuple[str, float]]:
        """The best ``k`` live rows of one segment: fetch more while dead rows fill the top."""
        want = min(k, n_live)
        fetch = min(n_rows, want if n_rows == n_live else want + max(want, (n_rows - n_live) // 4))
        while True:
            rows, scores = seg.top(q, fetch, self._params)
            ids = self._ids_at(s, rows)
            live = [(ids[int(r)], float(sc)) for r, sc in zip(rows, scores) if int(r) in ids]
            if len(live) >= want or fetch >= n_rows:
                return live[:want]
            fetch = min(n_rows, fetch * 4)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        where = {i: (s, r) for i, s, r in self._locate(ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise KeyError(missing[0])
        return np.stack([np.asarray(self._by_seg[where[i][0]].vectors[where[i][1]], dtype=np.float32) for i in ids])
