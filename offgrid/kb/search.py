"""Finding the passages that answer a question.

Keyword search is BM25 over the FTS5 index; the query is turned into quoted terms joined by OR,
so user text never reaches MATCH as syntax (`what's python?` is a search, not an error). Vector
search is cosine similarity against one in-memory matrix of the chunk vectors, loaded lazily
and kept current as documents come and go. Hybrid search fuses the two rankings by reciprocal
rank, and maximal marginal relevance can then trade a little relevance for diversity.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..store.kb import Visible

RRF_K = 60  # reciprocal rank fusion's constant: 1 / (60 + rank)
MAX_TERMS = 32
TERM = re.compile(r"\w+")
STOPWORDS = frozenset("""a an and are as at be by can do does for from how i if in into is it its
me my of on or our so that the their then there these this to was we what when where which who
why will with would you your""".split())
MODES = ("hybrid", "keyword", "vector")


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for `query`: its words, each quoted (words hold no quotes),
    joined by OR; common words are left out unless nothing else is left. None: no words."""
    words = list(dict.fromkeys(TERM.findall(query.lower())))
    terms = [w for w in words if w not in STOPWORDS] or words
    return " OR ".join(f'"{term}"' for term in terms[:MAX_TERMS]) or None


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float  # the mode's: BM25 relevance, cosine similarity, or fused (0-1]
    similarity: float | None = None  # cosine with the query, where the chunk has a vector


class VectorIndex:
    """The chunk vectors of one embedding model as one matrix, searched by cosine similarity
    (the vectors have unit length: a dot product) under a visibility mask. Rows are appended in
    place, into room that doubles when it runs out, so that adding a document costs its own
    rows, not a copy of the whole matrix."""

    def __init__(self, model: str, load: Callable[[str], tuple]):
        self.model = model
        self._load = load  # model -> (chunk ids, document ids, owners, shared, matrix)
        self._lock = threading.Lock()
        self._loaded = False
        self._rows = 0
        self._ids = self._documents = self._owners = self._shared = self._matrix = None
        self._row_of: dict[int, int] = {}

    @property
    def size(self) -> int:
        return self._rows

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            ids, documents_of, owners, shared, matrix = self._load(self.model)
            self._append(ids, documents_of, owners, shared, matrix)

    def _append(self, ids, documents_of, owners, shared, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        if self._matrix is None:
            self._allocate(max(1024, len(ids)), vectors.shape[1])
        elif self._rows + len(ids) > len(self._ids):
            self._allocate(max(2 * len(self._ids), self._rows + len(ids)), vectors.shape[1])
        rows = slice(self._rows, self._rows + len(ids))
        self._ids[rows], self._documents[rows], self._owners[rows] = ids, documents_of, owners
        self._shared[rows], self._matrix[rows] = shared, vectors
        self._row_of.update((int(chunk_id), self._rows + i) for i, chunk_id in enumerate(ids))
        self._rows += len(ids)

    def _allocate(self, capacity: int, dimensions: int) -> None:
        def grown(old, shape, dtype):
            new = np.zeros(shape, dtype=dtype)
            if old is not None:
                new[:self._rows] = old[:self._rows]
            return new
        self._ids = grown(self._ids, capacity, np.int64)
        self._documents = grown(self._documents, capacity, np.int64)
        self._owners = grown(self._owners, capacity, np.int64)
        self._shared = grown(self._shared, capacity, bool)
        self._matrix = grown(self._matrix, (capacity, dimensions), np.float32)

    def search(self, query: np.ndarray, visible: Visible, documents_only: list[int] | None,
               limit: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the `limit` nearest visible chunks."""
        with self._lock:
            self._ensure_loaded()
            n = self._rows
            if not n:
                return []
            scores = self._matrix[:n] @ query.astype(np.float32)
            mask = _visibility_mask(visible, self._owners[:n], self._shared[:n])
            if documents_only is not None:
                mask &= np.isin(self._documents[:n], documents_only)
            scores[~mask] = -np.inf
            ids = self._ids[:n].copy()
        limit = min(limit, int(mask.sum()))
        if limit <= 0:
            return []
        best = np.argpartition(-scores, limit - 1)[:limit] if limit < n else np.arange(n)
        best = best[np.argsort(-scores[best])][:limit]
        return [(int(ids[i]), float(scores[i])) for i in best]

    def vectors_of(self, chunk_ids: list[int]) -> dict[int, np.ndarray]:
        with self._lock:
            self._ensure_loaded()
            return {c: self._matrix[self._row_of[c]].copy() for c in chunk_ids
                    if c in self._row_of}

    def add(self, chunk_ids: list[int], document_id: int, owner: int | None, shared: bool,
            vectors: np.ndarray) -> None:
        n = len(chunk_ids)
        self.add_rows(np.array(chunk_ids, dtype=np.int64), np.full(n, document_id),
                      np.full(n, -1 if owner is None else owner), np.full(n, shared),
                      np.asarray(vectors, dtype=np.float32))

    def add_rows(self, ids, documents_of, owners, shared, vectors: np.ndarray) -> None:
        """Rows as the store's vectors() gives them; those already here are left out, so that
        hearing of a document twice (from this server, then from the database) adds it once."""
        with self._lock:
            if not self._loaded:  # it will read these from the store when first searched
                return
            new = np.array([int(chunk_id) not in self._row_of for chunk_id in ids], dtype=bool)
            if new.any():
                self._append(ids[new], documents_of[new], owners[new], shared[new],
                             vectors[new])

    def forget_document(self, document_id: int) -> None:
        with self._lock:
            if not self._loaded or not self._rows:
                return
            keep = np.flatnonzero(self._documents[:self._rows] != document_id)
            for column in (self._ids, self._documents, self._owners, self._shared,
                           self._matrix):
                column[:len(keep)] = column[keep]
            self._rows = len(keep)
            self._row_of = {int(c): i for i, c in enumerate(self._ids[:self._rows])}

    def set_shared(self, document_id: int, shared: bool) -> None:
        with self._lock:
            if self._loaded and self._rows:
                self._shared[:self._rows][self._documents[:self._rows] == document_id] = shared


def _visibility_mask(visible: Visible, owners: np.ndarray, shared: np.ndarray) -> np.ndarray:
    if visible.everything:
        return np.ones(len(owners), dtype=bool)
    if visible.owner_id is None:
        return shared.copy()
    return shared | (owners == visible.owner_id)


def fuse(keyword: list[tuple[int, float]], vector: list[tuple[int, float]]) -> list[Hit]:
    """Reciprocal rank fusion of two rankings, scaled so that first in both scores 1."""
    scores: dict[int, float] = {}
    for ranking in (keyword, vector):
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + (RRF_K + 1) / (RRF_K + rank) / 2
    similarity = dict(vector)
    return sorted((Hit(chunk_id, score, similarity.get(chunk_id))
                   for chunk_id, score in scores.items()), key=lambda hit: -hit.score)


def diversified(hits: list[Hit], vectors: dict[int, np.ndarray], limit: int,
                diversity: float) -> list[Hit]:
    """Maximal marginal relevance: each next hit is the one that ranked best (its score, scaled
    to the best one's) and is least like those already chosen (cosine of their vectors);
    `diversity` 0 keeps the ranking, 1 cares only for novelty."""
    pool = [hit for hit in hits if hit.chunk_id in vectors]
    best_score = max((hit.score for hit in pool), default=1.0) or 1.0
    chosen: list[Hit] = []
    while pool and len(chosen) < limit:
        def value(hit: Hit) -> float:
            likeness = max((float(vectors[hit.chunk_id] @ vectors[c.chunk_id]) for c in chosen),
                           default=0.0)
            return (1 - diversity) * hit.score / best_score - diversity * likeness
        best = max(pool, key=value)
        pool.remove(best)
        chosen.append(best)
    return chosen
