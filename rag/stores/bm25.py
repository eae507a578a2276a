"""BM25 over chunks with Dutch stemming and stop words: one scoring definition, two homes.

Terms are ``rag.text.content_terms`` of ``title + text`` (stemmed, stop words dropped; a chunk
without any is one ``_empty_`` term). Scores are bm25s' default ("lucene") variant, so numbers
stay what they were when this store used bm25s:

    score(q, d) = sum over query terms t (repeats count) of idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)),   k1 = 1.2, b = 0.75

- ``BM25Index``: in memory, built from a list of texts (small corpora, tests).
- ``SqlBM25``: the default store's ``KeywordIndex``: an inverted index in SQLite tables that is
  changed per document (``sql_add`` / ``sql_remove``: cost in proportion to its chunks, not the index)
  and read inside the store view's snapshot.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from typing import Callable, Collection, Sequence

import numpy as np

from ..text import content_terms, stem, words
from ..types import Chunk

K1, B = 1.2, 0.75
CACHE_POSTINGS = 2_000_000  # posting-list entries a snapshot keeps decoded (12 bytes each: ~24 MB at most)
EMPTY = "_empty_"


def chunk_terms(chunk: Chunk) -> list[str]:
    """The terms BM25 indexes for one chunk (of ``Chunk.keyword_text``)."""
    return content_terms(chunk.keyword_text()) or [EMPTY]


def idf(df: np.ndarray | float, n: int) -> np.ndarray:
    return np.log1p((n - np.asarray(df, dtype=np.float64) + 0.5) / (np.asarray(df, dtype=np.float64) + 0.5))


def tf_part(tf: np.ndarray, dl: np.ndarray, avgdl: float) -> np.ndarray:
    tf = np.asarray(tf, dtype=np.float64)
    return tf / (tf + K1 * (1 - B + B * np.asarray(dl, dtype=np.float64) / avgdl))


def has_term(word: str, known: Callable[[str], bool], known_prefix: Callable[[str], bool]) -> bool:
    """Whether ``word`` (or a word sharing its stem or first five letters, or a part of a hyphenated
    word) occurs in the index; ``known(stem)`` and ``known_prefix(five letters)`` ask the index."""
    for w in words(word):
        parts = [w] + [p for p in w.replace("’", "'").replace("'", "-").split("-") if len(p) >= 4]
        for p in parts:
            if known(stem(p)) or (len(p) >= 5 and known_prefix(p[:5])):
                return True
    return False


def _top(crows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Best ``k`` positive (key, score) pairs, best first; ties by key."""
    keep = scores > 0
    crows, scores = crows[keep], scores[keep]
    order = np.lexsort((crows, -scores))[:k]
    return [(int(crows[i]), float(scores[i])) for i in order]


class BM25Index:
    """In-memory BM25 over a fixed list of texts, keyed by ids."""

    def __init__(self, ids: Sequence[str] = (), postings: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 dl: np.ndarray | None = None):
        self._ids = list(ids)
        self._post = postings or {}
        self._dl = dl if dl is not None else np.zeros(0)
        self._prefixes = {t[:5] for t in self._post if len(t) >= 5}

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> "BM25Index":
        rows: dict[str, tuple[list[int], list[int]]] = {}
        dl = np.zeros(len(texts))
        for i, t in enumerate(texts):
            terms = content_terms(t) or [EMPTY]
            dl[i] = len(terms)
            for term, tf in Counter(terms).items():
                r = rows.setdefault(term, ([], []))
                r[0].append(i)
                r[1].append(tf)
        post = {t: (np.array(d, dtype=np.int64), np.array(f, dtype=np.float64)) for t, (d, f) in rows.items()}
        return cls(ids, post, dl)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every text (in id order) for ``query``."""
        out = np.zeros(len(self._ids))
        n = len(self._ids)
        if not n:
            return out
        avgdl = float(self._dl.mean())
        for term, times in Counter(content_terms(query)).items():
            if term in self._post:
                d, tf = self._post[term]
                out[d] += times * idf(len(d), n) * tf_part(tf, self._dl[d], avgdl)
        return out

    def top(self, query: str, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        s = self.scores(query)
        if allowed is not None:
            s = np.where(np.array([c in allowed for c in self._ids], dtype=bool), s, 0.0)
        return [(self._ids[i], sc) for i, sc in _top(np.arange(len(s)), s, k)]

    def has_term(self, word: str) -> bool:
        return has_term(word, self._post.__contains__, self._prefixes.__contains__)


# ---------- in SQLite ----------

SCHEMA = """
CREATE TABLE IF NOT EXISTS bm25_terms(tid INTEGER PRIMARY KEY, term TEXT UNIQUE NOT NULL, df INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bm25_postings(tid INTEGER NOT NULL, crow INTEGER NOT NULL, tf INTEGER NOT NULL,
                                         PRIMARY KEY(tid, crow)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bm25_docs(crow INTEGER PRIMARY KEY, dl INTEGER NOT NULL, terms TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bm25_stats(one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL,
                                      total INTEGER NOT NULL);
INSERT OR IGNORE INTO bm25_stats VALUES (1, 0, 0);
"""


def sql_add(con, items: Sequence[tuple[int, list[str]]]) -> None:
    """Index chunks: ``(crow, terms)`` pairs (``crow``: the chunk's row id in the store's ``chunks``
    table). A few statements per call, whatever the number of terms."""
    if not items:
        return
    df: Counter = Counter()
    posts = []
    for crow, terms in items:
        tf = Counter(terms)
        df.update(tf.keys())
        posts += [[t, crow, n] for t, n in tf.items()]
    con.execute("INSERT INTO bm25_terms(term, df) SELECT key, value FROM json_each(?) WHERE true "
                "ON CONFLICT(term) DO UPDATE SET df = df + excluded.df", (json.dumps(df),))
    con.execute("INSERT INTO bm25_postings SELECT t.tid, json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]') "
                "FROM json_each(?) j JOIN bm25_terms t ON t.term = json_extract(j.value, '$[0]')", (json.dumps(posts),))
    con.executemany("INSERT INTO bm25_docs VALUES (?, ?, ?)", [(c, len(t), " ".join(t)) for c, t in items])
    con.execute("UPDATE bm25_stats SET n = n + ?, total = total + ?", (len(items), sum(len(t) for _, t in items)))


def sql_remove(con, crows: Sequence[int]) -> None:
    """Un-index chunks by row id (their terms are read back from ``bm25_docs``)."""
    rows = con.execute("SELECT crow, dl, terms FROM bm25_docs WHERE crow IN (SELECT value FROM json_each(?))",
                       (json.dumps(list(crows)),)).fetchall()
    if not rows:
        return
    df: Counter = Counter()
    pairs = []
    for crow, _, terms in rows:
        uniq = set(terms.split(" "))
        df.update(uniq)
        pairs += [[t, crow] for t in uniq]
    con.execute("DELETE FROM bm25_postings WHERE (tid, crow) IN (SELECT t.tid, json_extract(j.value, '$[1]') "
                "FROM json_each(?) j JOIN bm25_terms t ON t.term = json_extract(j.value, '$[0]'))", (json.dumps(pairs),))
    con.execute("UPDATE bm25_terms SET df = df - j.value FROM json_each(?) j WHERE bm25_terms.term = j.key",
                (json.dumps(df),))
    con.execute("DELETE FROM bm25_terms WHERE df <= 0 AND term IN (SELECT key FROM json_each(?))", (json.dumps(df),))
    con.execute("DELETE FROM bm25_docs WHERE crow IN (SELECT value FROM json_each(?))", (json.dumps([r[0] for r in rows]),))
    con.execute("UPDATE bm25_stats SET n = n - ?, total = total - ?", (len(rows), sum(r[1] for r in rows)))


class SqlBM25:
    """``KeywordIndex`` over the SQLite tables, read through ``rows(sql, params)`` of one snapshot.
    ``crow`` is the row id of the store's ``chunks(rowid, chunk_id)`` table."""

    def __init__(self, rows: Callable[[str, tuple], list]):
        self._rows = rows
        self._lengths: tuple[np.ndarray, np.ndarray] | None = None  # (crows sorted, their lengths), read once
        self._cache: OrderedDict[str, tuple[int, np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0  # postings held in _cache
        self._lock = threading.Lock()

    def _dl(self, crows: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._lengths is None:
                got = np.array(self._rows("SELECT crow, dl FROM bm25_docs ORDER BY crow", ()), dtype=np.int64)
                self._lengths = (got[:, 0], got[:, 1]) if len(got) else (np.zeros(0, np.int64),) * 2
        keys, lengths = self._lengths
        return lengths[np.searchsorted(keys, crows)]

    def _postings(self, terms: list[str]) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
        """term -> (df, chunk rows, term frequencies) for the terms that occur. Posting lists are kept
        in a least-recently-used cache of at most ``CACHE_POSTINGS`` entries: the snapshot never
        changes, and the long lists of common terms are what a query spends its time reading."""
        out: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        with self._lock:
            for t in terms:
                if t in self._cache:
                    self._cache.move_to_end(t)
                    out[t] = self._cache[t]
        missing = [t for t in terms if t not in out]
        if not missing:
            return out
        # one row per term, its posting list as two comma-joined strings parsed in C (a Python tuple per
        # posting costs ~3x more on the common terms)
        got = self._rows("SELECT t.term, t.df, group_concat(p.crow), group_concat(p.tf) FROM bm25_terms t "
                         "JOIN bm25_postings p ON p.tid = t.tid WHERE t.term IN (SELECT value FROM json_each(?)) "
                         "GROUP BY t.tid", (json.dumps(missing),))
        with self._lock:
            for term, df, crows_s, tf_s in got:
                entry = (int(df), np.fromstring(crows_s, dtype=np.int64, sep=","),
                         np.fromstring(tf_s, dtype=np.int32, sep=","))
                out[term] = entry
                if len(entry[1]) <= CACHE_POSTINGS and term not in self._cache:
                    self._cache[term] = entry
                    self._cached += len(entry[1])
            while self._cached > CACHE_POSTINGS:
                _, old = self._cache.popitem(last=False)
                self._cached -= len(old[1])
        return out

    def top(self, query: str, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        times = Counter(content_terms(query))
        if not times:
            return []
        stats = self._rows("SELECT n, total FROM bm25_stats", ())
        if not stats or not stats[0][0]:
            return []
        n, avgdl = stats[0][0], stats[0][1] / stats[0][0]
        keys, parts = [], []
        post = self._postings(list(times))
        for term in times:  # query order, whatever was cached: the same sums in the same order every time
            if term not in post:
                continue
            df, crows, tf = post[term]
            keys.append(crows)
            parts.append(times[term] * idf(df, n) * tf_part(tf, self._dl(crows), avgdl))
        if not keys:
            return []
        crows, inv = np.unique(np.concatenate(keys), return_inverse=True)
        scores = np.bincount(inv, weights=np.concatenate(parts))
        if allowed is not None:
            ok = {r for (r,) in self._rows("SELECT rowid FROM chunks WHERE chunk_id IN "
                                          "(SELECT value FROM json_each(?))", (json.dumps(list(allowed)),))}
            scores = np.where(np.isin(crows, np.fromiter(ok, dtype=np.int64, count=len(ok))), scores, 0.0)
        best = _top(crows, scores, k)
        if not best:
            return []
        names = dict(self._rows("SELECT rowid, chunk_id FROM chunks WHERE rowid IN (SELECT value FROM json_each(?))",
                                (json.dumps([c for c, _ in best]),)))
        return [(names[c], s) for c, s in best if c in names]

    def has_term(self, word: str) -> bool:
        def known(s: str) -> bool:
            return bool(self._rows("SELECT 1 FROM bm25_terms WHERE term = ?", (s,)))

        def known_prefix(p: str) -> bool:
            return bool(self._rows("SELECT 1 FROM bm25_terms WHERE term >= ? AND term < ? LIMIT 1",
                                   (p, p + "\U0010ffff")))

        return has_term(word, known, known_prefix)
