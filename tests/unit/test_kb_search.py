"""The knowledge base's search parts on their own: the keyword query built from a question, the
in-memory vector index, rank fusion and diversity. End to end they run in test_kb.py."""

import numpy as np

from offgrid.kb.search import Hit, VectorIndex, diversified, fuse, match_expression
from offgrid.store.kb import Visible


def test_a_question_becomes_quoted_terms_never_syntax():
    assert match_expression("What's the radio's reset?") == '"s" OR "radio" OR "reset"'
    assert match_expression('a AND "b" OR NEAR(c)') == '"b" OR "near" OR "c"'
    assert match_expression("the and of") == '"the" OR "and" OR "of"'  # only common words
    assert match_expression("?!*") is None


def unit(*values) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def index_of(rows) -> VectorIndex:
    """rows: (chunk id, document id, owner or None, shared, vector)."""
    def load(model):
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows], dtype=np.int64),
                np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.int64),
                np.array([r[3] for r in rows], dtype=bool),
                np.array([r[4] for r in rows], dtype=np.float32))
    return VectorIndex("m", load)


def test_the_vector_index_finds_the_nearest_visible_chunks():
    index = index_of([(1, 10, 7, False, unit(1, 0)), (2, 10, 7, False, unit(1, 1)),
                      (3, 20, 8, False, unit(1, 0.1)), (4, 30, 8, True, unit(0, 1))])
    query = unit(1, 0)
    assert [c for c, _ in index.search(query, Visible(everything=True), None, 2)] == [1, 3]
    assert [c for c, _ in index.search(query, Visible(owner_id=7), None, 9)] == [1, 2, 4]
    assert [c for c, _ in index.search(query, Visible(), None, 9)] == [4]  # shared only
    assert [c for c, _ in index.search(query, Visible(everything=True), [20], 9)] == [3]
    best = index.search(query, Visible(everything=True), None, 1)[0]
    assert best[0] == 1 and abs(best[1] - 1.0) < 1e-6


def test_the_vector_index_grows_and_forgets_in_place():
    index = index_of([(1, 10, None, False, unit(1, 0))])
    index.search(unit(1, 0), Visible(everything=True), None, 1)  # loaded now
    for start in range(2, 3000, 100):  # room doubles as it runs out
        ids = list(range(start, start + 100))
        index.add(ids, start, None, False, np.tile(unit(0, 1), (100, 1)))
    assert index.size == 1 + 30 * 100
    index.forget_document(10)
    assert index.size == 3000 and 1 not in index.vectors_of([1])
    index.set_shared(2, True)
    found = index.search(unit(0, 1), Visible(), None, 500)
    assert len(found) == 100 and {c for c, _ in found} == set(range(2, 102))


def test_rank_fusion_rewards_agreement():
    hits = fuse([(1, 9.0), (2, 8.0), (3, 7.0)], [(3, 0.9), (1, 0.8), (4, 0.7)])
    assert [h.chunk_id for h in hits][:2] == [1, 3]
    assert hits[0].score < 1 and fuse([(5, 1.0)], [(5, 0.5)])[0].score == 1.0
    assert {h.chunk_id: h.similarity for h in hits}[2] is None


def test_diversity_skips_a_near_copy():
    vectors = {1: unit(1, 0, 0), 2: unit(1, 0.01, 0), 3: unit(0.7, 0.7, 0)}
    hits = [Hit(1, 1.0), Hit(2, 0.9), Hit(3, 0.8)]
    assert [h.chunk_id for h in diversified(hits, vectors, 2, 0.0)] == [1, 2]
    assert [h.chunk_id for h in diversified(hits, vectors, 2, 0.7)] == [1, 3]
