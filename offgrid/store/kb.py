"""The knowledge base's tables: documents with their extracted text, the chunks they are cut
into, each chunk's vector per embedding model, the keyword index over the chunks (FTS5 kept by
triggers, see migrations.py; in PostgreSQL a generated tsvector column, see dialect.py), and the
knowledge base's own state. Each change to what vector search sees is announced on CHANNEL, for
servers sharing the database (db.announce)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from . import dialect
from .db import Database, IntegrityError, Row

SECTION_SEPARATOR = "\n"  # between the headings of a chunk's section: no heading holds one
CHANNEL = "offgrid_kb"  # announces "added <id>", "deleted <id>", "shared <id> <0|1>", "reload"


@dataclass(frozen=True)
class Visible:
    """Whose documents a query sees: everyone's, or a user's own (None: nobody's own, as for
    guests) together with the shared ones."""
    everything: bool = False
    owner_id: int | None = None

    def clause(self) -> tuple[str, tuple]:
        if self.everything:
            return "1 = 1", ()
        if self.owner_id is None:
            return "d.shared = 1", ()
        return "(d.owner_id = ? OR d.shared = 1)", (self.owner_id,)


@dataclass(frozen=True)
class Document:
    id: int
    owner_id: int | None
    shared: bool
    name: str
    content_type: str
    size: int
    sha256: str
    title: str | None
    metadata: dict
    created_at: float
    chunks: int


@dataclass(frozen=True)
class StoredChunk:
    id: int
    document_id: int
    document_name: str
    position: int
    text: str
    start_char: int
    end_char: int
    section: tuple[str, ...]  # the headings above it, outermost first


@dataclass(frozen=True)
class NewChunk:
    text: str
    start_char: int
    end_char: int
    section: tuple[str, ...]


@dataclass(frozen=True)
class State:
    enabled: bool | None  # None: never chosen
    embedding_model: str | None
    reembedding_to: str | None


_DOCUMENT = ("d.id, d.owner_id, d.shared, d.name, d.content_type, d.size, d.sha256, d.title, "
             "d.metadata, d.created_at, (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id)"
             " AS chunk_count")
_CHUNK = ("c.id, c.document_id, d.name AS document_name, c.position, c.text, c.start_char, "
          "c.end_char, c.section")


def _document(row: Row) -> Document:
    return Document(row["id"], row["owner_id"], bool(row["shared"]), row["name"],
                    row["content_type"], row["size"], row["sha256"], row["title"],
                    json.loads(row["metadata"]), row["created_at"], row["chunk_count"])


def _chunk(row: Row) -> StoredChunk:
    section = row["section"]
    return StoredChunk(row["id"], row["document_id"], row["document_name"], row["position"],
                       row["text"], row["start_char"], row["end_char"],
                       tuple(section.split(SECTION_SEPARATOR)) if section else ())


# -- documents ----------------------------------------------------------------------------------

def add_document(db: Database, *, owner_id: int | None, name: str, content_type: str, size: int,
                 sha256: str, title: str | None, metadata: dict, text: str,
                 chunks: list[NewChunk], model: str, vectors: np.ndarray) -> Document | None:
    """Store a document, its chunks and their vectors in one transaction: all or nothing. None
    when its owner already has the same content (the caller then answers with that one)."""
    with db.write() as connection:
        try:
            document_id = connection.execute(
                "INSERT INTO documents (owner_id, name, content_type, size, sha256, title, "
                "metadata, text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (owner_id, name, content_type, size, sha256, title, json.dumps(metadata), text,
                 time.time())).fetchone()[0]
        except IntegrityError:  # the same content, added by another request meanwhile
            return None
        for position, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
            chunk_id = connection.execute(
                "INSERT INTO chunks (document_id, position, text, start_char, end_char, section) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (document_id, position, chunk.text, chunk.start_char, chunk.end_char,
                 SECTION_SEPARATOR.join(chunk.section))).fetchone()[0]
            connection.execute("INSERT INTO vectors (chunk_id, model, vector) VALUES (?, ?, ?)",
                               (chunk_id, model, _blob(vector)))
        db.announce(connection, CHANNEL, f"added {document_id}")
    return get(db, document_id)


def find_by_content(db: Database, owner_id: int | None, sha256: str) -> Document | None:
    row = db.read_one(f"SELECT {_DOCUMENT} FROM documents d "
                      "WHERE IFNULL(d.owner_id, 0) = IFNULL(?, 0) AND d.sha256 = ?",
                      (owner_id, sha256))
    return _document(row) if row else None


def get(db: Database, document_id: int) -> Document | None:
    row = db.read_one(f"SELECT {_DOCUMENT} FROM documents d WHERE d.id = ?", (document_id,))
    return _document(row) if row else None


def text_of(db: Database, document_id: int) -> str:
    row = db.read_one("SELECT text FROM documents WHERE id = ?", (document_id,))
    return row["text"] if row else ""


def documents(db: Database, visible: Visible) -> list[Document]:
    where, parameters = visible.clause()
    return [_document(row) for row in db.read(
        f"SELECT {_DOCUMENT} FROM documents d WHERE {where} ORDER BY d.id", parameters)]


def delete(db: Database, document_id: int) -> None:
    """The document, its chunks, their vectors and index entries (by cascade and trigger)."""
    with db.write() as connection:
        connection.execute("DELETE FROM documents WHERE id = ?", (document_id,))
        db.announce(connection, CHANNEL, f"deleted {document_id}")


def set_shared(db: Database, document_id: int, shared: bool) -> None:
    with db.write() as connection:
        connection.execute("UPDATE documents SET shared = ? WHERE id = ?", (int(shared),
                                                                           document_id))
        db.announce(connection, CHANNEL, f"shared {document_id} {int(shared)}")


def counts(db: Database) -> tuple[int, int]:
    """(documents, chunks)."""
    row = db.read_one("SELECT (SELECT COUNT(*) FROM documents) AS documents, "
                      "(SELECT COUNT(*) FROM chunks) AS chunks")
    return row["documents"], row["chunks"]


# -- chunks -------------------------------------------------------------------------------------

def chunk_at(db: Database, document_id: int, position: int) -> StoredChunk | None:
    row = db.read_one(f"SELECT {_CHUNK} FROM chunks c JOIN documents d ON d.id = c.document_id "
                      "WHERE c.document_id = ? AND c.position = ?", (document_id, position))
    return _chunk(row) if row else None


def chunk_ids(db: Database, document_id: int) -> list[int]:
    """A document's chunk ids, in order."""
    return [row["id"] for row in db.read("SELECT id FROM chunks WHERE document_id = ? "
                                         "ORDER BY position", (document_id,))]


def chunks_by_id(db: Database, ids: list[int]) -> dict[int, StoredChunk]:
    found: dict[int, StoredChunk] = {}
    for start in range(0, len(ids), 500):  # sqlite's limit on parameters
        batch = ids[start:start + 500]
        for row in db.read(f"SELECT {_CHUNK} FROM chunks c JOIN documents d "
                           f"ON d.id = c.document_id WHERE c.id IN "
                           f"({', '.join('?' * len(batch))})", batch):
            found[row["id"]] = _chunk(row)
    return found


def keyword_search(db: Database, match: str, visible: Visible, documents_only: list[int] | None,
                   limit: int) -> list[tuple[int, float]]:
    """(chunk id, BM25 relevance, higher is better) for an FTS5 MATCH expression the caller
    built from quoted terms; a chunk's section counts half as much as its text."""
    where, parameters = visible.clause()
    only = ""
    if documents_only is not None:
        only = f" AND d.id IN ({', '.join('?' * len(documents_only))})"
        parameters += tuple(documents_only)
    if db.dialect == "postgresql":
        match = dialect.tsquery(match)
    rows = db.read(dialect.KEYWORD_SEARCH[db.dialect].format(where=where + only),
                   (match, *parameters, limit))
    return [(row["id"], row["relevance"]) for row in rows]


# -- vectors ------------------------------------------------------------------------------------

def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vectors(db: Database, model: str, document_id: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every chunk vector of `model` (or of one document's chunks): (chunk ids, document ids,
    owner ids (-1: none), shared flags, the vectors as one float32 matrix)."""
    only, parameters = ("", (model,)) if document_id is None else (" AND d.id = ?",
                                                                  (model, document_id))
    rows = db.read("SELECT v.chunk_id, c.document_id, IFNULL(d.owner_id, -1) AS owner, d.shared, "
                   "v.vector FROM vectors v JOIN chunks c ON c.id = v.chunk_id "
                   f"JOIN documents d ON d.id = c.document_id WHERE v.model = ?{only} "
                   "ORDER BY v.chunk_id", parameters)
    ids = np.array([r["chunk_id"] for r in rows], dtype=np.int64)
    documents_of = np.array([r["document_id"] for r in rows], dtype=np.int64)
    owners = np.array([r["owner"] for r in rows], dtype=np.int64)
    shared = np.array([bool(r["shared"]) for r in rows], dtype=bool)
    matrix = (np.frombuffer(b"".join(r["vector"] for r in rows), dtype="<f4")
              .reshape(len(rows), -1) if rows else np.zeros((0, 0), dtype=np.float32))
    return ids, documents_of, owners, shared, matrix


def chunks_without_vectors(db: Database, model: str, limit: int
                           ) -> list[tuple[StoredChunk, str]]:
    """Chunks `model` has no vector of yet, with their document's title (else its name)."""
    return [(_chunk(row), row["title"] or row["document_name"]) for row in db.read(
        f"SELECT {_CHUNK}, d.title FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id AND v.model = ?) "
        "ORDER BY c.id LIMIT ?", (model, limit))]


def add_vectors(db: Database, model: str, rows: list[tuple[int, np.ndarray]]) -> None:
    with db.write() as connection:
        connection.executemany("INSERT INTO vectors (chunk_id, model, vector) VALUES (?, ?, ?) "
                               "ON CONFLICT (model, chunk_id) DO UPDATE "
                               "SET vector = excluded.vector",
                               [(chunk_id, model, _blob(vector)) for chunk_id, vector in rows])


def drop_vectors_except(db: Database, model: str) -> None:
    """Forget the vectors of every other model: one space at a time."""
    with db.write() as connection:
        connection.execute("DELETE FROM vectors WHERE model != ?", (model,))
        db.announce(connection, CHANNEL, "reload")


# -- the knowledge base's state -----------------------------------------------------------------

def state(db: Database) -> State:
    row = db.read_one("SELECT enabled, embedding_model, reembedding_to FROM kb_state")
    enabled = None if row["enabled"] is None else bool(row["enabled"])
    return State(enabled, row["embedding_model"], row["reembedding_to"])


_UNCHANGED = object()


def set_state(db: Database, enabled=_UNCHANGED, embedding_model=_UNCHANGED,
              reembedding_to=_UNCHANGED) -> State:
    changes = {name: value for name, value in (("enabled", enabled),
                                                ("embedding_model", embedding_model),
                                                ("reembedding_to", reembedding_to))
               if value is not _UNCHANGED}
    with db.write() as connection:
        for name, value in changes.items():  # names from the list above, never the caller's
            connection.execute(f"UPDATE kb_state SET {name} = ?", (value,))
    return state(db)
