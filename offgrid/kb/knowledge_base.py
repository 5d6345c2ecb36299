"""The knowledge base: documents in (extracted, chunked along their structure, embedded with the
engine's embedder, stored whole or not at all), passages out (hybrid search), and its state (on
or off, which embedding model), which lives in the database and so survives a restart.

Who may see what: in single-user mode everything is everyone's. In multi-user mode a document
belongs to whoever added it; users search and cite their own and the shared ones (an admin
shares), guests and callers without an account only the shared ones, and an admin lists and
deletes any.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..store import kb as store
from ..store.db import Database
from ..store.kb import Document, NewChunk, StoredChunk, Visible
from . import chunking, context, ingest
from .context import Passage
from .errors import DocumentNotFound, KnowledgeBaseOff, NoEmbeddingModel
from .jobs import Job, Jobs
from .search import MODES, Hit, VectorIndex, diversified, fuse, match_expression

CHUNK_TOKENS = 200  # MiniLM reads 256 word pieces; title and headings go in front
OVERLAP_TOKENS = 40
EMBED_BATCH = 64  # chunks per call to the embedder
CANDIDATES = 50  # from each of keyword and vector search, before fusing
CHAT_MIN_SIMILARITY = 0.3  # cosine below which a passage is not worth citing
INGESTS_AT_ONCE = 2


@dataclass(frozen=True)
class Reader:
    """Who is asking, as far as documents go."""
    user_id: int | None = None  # None: no account (single-user mode, or an anonymous guest)
    role: str | None = None  # None: single-user mode, where everything is everyone's
    single_user: bool = False

    @property
    def sees(self) -> Visible:
        """What it may search and cite."""
        if self.single_user:
            return Visible(everything=True)
        return Visible(owner_id=self.user_id if self.role in ("user", "admin") else None)

    @property
    def lists(self) -> Visible:
        return Visible(everything=True) if self.role == "admin" else self.sees

    @property
    def owner(self) -> int | None:
        return None if self.single_user else self.user_id

    def may_change(self, document: Document) -> bool:
        return self.single_user or self.role == "admin" or (
            self.role == "user" and document.owner_id == self.user_id)


@dataclass(frozen=True)
class Status:
    enabled: bool
    embedding_model: str | None
    embedding_models: list[str]  # every embedding model in the models folder
    documents: int
    chunks: int
    job: Job | None  # a re-embedding under way

    def as_dict(self) -> dict:
        return {"enabled": self.enabled, "embedding_model": self.embedding_model,
                "available_embedding_models": self.embedding_models,
                "documents": self.documents, "chunks": self.chunks,
                "reembedding": self.job.as_dict() if self.job else None}


class KnowledgeBase:
    def __init__(self, db: Database, registry, on_search=None):
        self._db = db
        self._registry = registry  # loads the embedding model
        self._on_search = on_search  # called with each search's seconds, for /metrics
        self.jobs = Jobs()
        self._lock = threading.Lock()
        self._index: VectorIndex | None = None
        self._ingesting = threading.BoundedSemaphore(INGESTS_AT_ONCE)
        # Servers sharing a database announce what they change (store/kb.py's CHANNEL); with
        # one sqlite file there is nothing to hear.
        db.listen(store.CHANNEL, self._heard)

    # -- state --------------------------------------------------------------------------------

    def embedding_models(self) -> list[str]:
        return [f.id for f in self._registry.files() if f.info and f.info.is_embedding]

    def embedding_model(self) -> str | None:
        """Whose vectors search uses: the one chosen, else the only one there is."""
        chosen = store.state(self._db).embedding_model
        models = self.embedding_models()
        if chosen is not None:
            return chosen if chosen in models else None
        return models[0] if len(models) == 1 else None

    def status(self) -> Status:
        state = store.state(self._db)
        model = self.embedding_model()
        enabled = state.enabled if state.enabled is not None else model is not None
        documents, chunks = store.counts(self._db)
        return Status(enabled and model is not None, model, self.embedding_models(), documents,
                      chunks, self.jobs.running("reembed"))

    def enable(self, model: str | None = None) -> Status:
        """Turn the knowledge base on, with `model` (default: the one it has); a new model
        re-embeds every chunk in a job first, and search keeps the old one until it is done."""
        model = model or self.embedding_model()
        if model is None or model not in self.embedding_models():
            raise NoEmbeddingModel(model, self.embedding_models())
        current = self.embedding_model()
        store.set_state(self._db, enabled=True)
        if current is None or store.counts(self._db)[1] == 0:
            store.set_state(self._db, embedding_model=model, reembedding_to=None)
            self._use(model)
        elif model != current and not self.jobs.running("reembed"):
            store.set_state(self._db, reembedding_to=model)
            self.jobs.submit("reembed", store.counts(self._db)[1],
                             lambda job: self._reembed(job, model))
        return self.status()

    def disable(self) -> Status:
        store.set_state(self._db, enabled=False)
        return self.status()

    def _active_model(self) -> str:
        status = self.status()
        if not status.enabled:
            raise KnowledgeBaseOff(status.embedding_models)
        return status.embedding_model

    def _use(self, model: str) -> VectorIndex:
        with self._lock:
            if self._index is None or self._index.model != model:
                self._index = VectorIndex(model, lambda m: store.vectors(self._db, m))
            return self._index

    def _heard(self, announcement: str | None) -> None:
        """Bring the vector matrix up to date with a change a server (maybe this one) made;
        None: changes may have been missed, so read it afresh."""
        with self._lock:
            index = self._index
        if index is None:
            return
        what, *arguments = (announcement or "reload").split()
        if what == "added":
            index.add_rows(*store.vectors(self._db, index.model, int(arguments[0])))
        elif what == "deleted":
            index.forget_document(int(arguments[0]))
        elif what == "shared":
            index.set_shared(int(arguments[0]), arguments[1] == "1")
        elif what == "reload":  # the vectors of another model: read them afresh when needed
            with self._lock:
                if self._index is index:
                    self._index = None

    # -- documents ----------------------------------------------------------------------------

    def add(self, reader: Reader, name: str, data: bytes, content_type: str | None = None,
            metadata: dict | None = None, job: Job | None = None, meter=None
            ) -> tuple[Document, bool]:
        """Add a document and answer once it is searchable: (the document, whether it is new).
        The same content from the same owner is the document already there. `meter` hears of
        the tokens embedded (engine.generate.Meter)."""
        model = self._active_model()
        digest = hashlib.sha256(data).hexdigest()
        known = store.find_by_content(self._db, reader.owner, digest)
        if known is not None:
            return known, False
        with self._ingesting:  # extraction is CPU work: a few at a time leave room for chat
            extracted = ingest.extract(data, name, content_type)
            tokenizer = self._registry.get(model).model
            pieces = chunking.chunks(extracted, lambda text: len(tokenizer.tokenize(
                text, add_special=False, parse_special=False)), CHUNK_TOKENS, OVERLAP_TOKENS)
            title = extracted.title or name
            if job is not None:
                job.total = len(pieces)
            vectors = self._embed(model, [chunking.embedding_text(title, p) for p in pieces],
                                  job, meter)
        document = store.add_document(
            self._db, owner_id=reader.owner, name=name, content_type=extracted.content_type,
            size=len(data), sha256=digest, title=extracted.title, metadata=metadata or {},
            text=extracted.text, model=model, vectors=vectors,
            chunks=[NewChunk(p.text, p.start, p.end, p.heading_path) for p in pieces])
        if document is None:  # added meanwhile by another request
            return store.find_by_content(self._db, reader.owner, digest), False
        self._use(model).add(store.chunk_ids(self._db, document.id), document.id,
                             document.owner_id, document.shared, vectors)
        return document, True

    def add_later(self, reader: Reader, name: str, data: bytes, content_type: str | None = None,
                  metadata: dict | None = None, meter=None, owner: str = "") -> Job:
        """The same, as a job that answers at once: poll it for progress and the document;
        `owner` names who may."""
        self._active_model()  # refused now, rather than in the job
        return self.jobs.submit("ingest", 0, lambda job: job.result.update(_added(
            *self.add(reader, name, data, content_type, metadata, job, meter))), owner)

    def _embed(self, model: str, texts: list[str], job: Job | None, meter=None) -> np.ndarray:
        vectors = []
        for start in range(0, len(texts), EMBED_BATCH):
            result = self._registry.get(model).embedder().embed(texts[start:start + EMBED_BATCH])
            vectors.extend(result.vectors)
            if meter is not None:
                meter.add(result.prompt_tokens)
            if job is not None:
                job.done = start + len(result.vectors)
        return np.array(vectors, dtype=np.float32)

    def documents(self, reader: Reader) -> list[Document]:
        return store.documents(self._db, reader.lists)

    def document(self, reader: Reader, document_id: int) -> Document:
        document = store.get(self._db, document_id)
        visible = reader.lists
        if document is None or not (visible.everything or document.shared or (
                visible.owner_id is not None and document.owner_id == visible.owner_id)):
            raise DocumentNotFound(document_id)  # another's document is not there, for them
        return document

    def chunk(self, reader: Reader, document_id: int, position: int) -> StoredChunk:
        self.document(reader, document_id)
        found = store.chunk_at(self._db, document_id, position)
        if found is None:
            raise DocumentNotFound(document_id, position)
        return found

    def delete(self, reader: Reader, document_id: int) -> Document:
        document = self.document(reader, document_id)
        if not reader.may_change(document):
            raise DocumentNotFound(document_id)
        store.delete(self._db, document_id)
        with self._lock:
            if self._index is not None:
                self._index.forget_document(document_id)
        return document

    def share(self, document_id: int, shared: bool) -> Document:
        """Let every user search and cite a document (admins only: the route says so)."""
        if store.get(self._db, document_id) is None:
            raise DocumentNotFound(document_id)
        store.set_shared(self._db, document_id, shared)
        with self._lock:
            if self._index is not None:
                self._index.set_shared(document_id, shared)
        return store.get(self._db, document_id)

    # -- search -------------------------------------------------------------------------------

    def search(self, reader: Reader, query: str, top_k: int = 5, min_score: float | None = None,
               documents_only: list[int] | None = None, mode: str = "hybrid",
               diversity: float = 0.0) -> list[Passage]:
        """The passages best matching `query` that `reader` may see, best first."""
        assert mode in MODES
        started = time.perf_counter()
        model = self._active_model()
        visible = reader.sees
        keyword, vector, query_vector = [], [], None
        if mode in ("hybrid", "keyword") and (match := match_expression(query)):
            keyword = store.keyword_search(self._db, match, visible, documents_only, CANDIDATES)
        if mode in ("hybrid", "vector") or diversity:
            query_vector = self._registry.get(model).embedder().embed([query]).vectors[0]
            if mode != "keyword":
                vector = self._use(model).search(query_vector, visible, documents_only,
                                                 CANDIDATES)
        hits = {"hybrid": lambda: fuse(keyword, vector),
                "keyword": lambda: [Hit(c, score) for c, score in keyword],
                "vector": lambda: [Hit(c, score, score) for c, score in vector]}[mode]()
        if min_score is not None:
            hits = [hit for hit in hits if hit.score >= min_score]
        if query_vector is not None:
            vectors = self._use(model).vectors_of([h.chunk_id for h in hits])
            hits = [_with_similarity(hit, vectors, query_vector) for hit in hits]
            if diversity:
                hits = diversified(hits, vectors, top_k, diversity)
        passages = self._passages(hits[:top_k])
        if self._on_search is not None:
            self._on_search(time.perf_counter() - started)
        return passages

    def _passages(self, hits: list[Hit]) -> list[Passage]:
        chunks = store.chunks_by_id(self._db, [hit.chunk_id for hit in hits])
        return [Passage(c.document_id, c.document_name, c.position, c.start_char, c.end_char,
                        c.text, c.section, hit.score, hit.similarity)
                for hit in hits if (c := chunks.get(hit.chunk_id)) is not None]

    def for_chat(self, reader: Reader, messages: list[tuple[str, str]], top_k: int,
                 min_score: float | None, documents_only: list[int] | None) -> list[Passage]:
        """The passages a chat's question finds, those close enough in meaning to be worth
        citing (without a `min_score` of the caller's); none when it has no question."""
        asked = context.question(messages)
        if asked is None:
            return []
        passages = self.search(reader, asked, top_k, min_score, documents_only)
        if min_score is not None:
            return passages
        return [p for p in passages if p.similarity is not None
                and p.similarity >= CHAT_MIN_SIMILARITY]

    # -- a new embedding model ----------------------------------------------------------------

    def _reembed(self, job: Job, model: str) -> None:
        """Give every chunk a vector of `model`, then switch search to it and forget the old
        vectors; search uses the old ones until then, so two spaces are never mixed."""
        while batch := store.chunks_without_vectors(self._db, model, EMBED_BATCH):
            vectors = self._embed(model, [chunking.embedding_text(title, _as_piece(chunk))
                                          for chunk, title in batch], None)
            store.add_vectors(self._db, model, [(chunk.id, vector) for (chunk, _), vector
                                                in zip(batch, vectors, strict=True)])
            job.done += len(batch)
        store.set_state(self._db, embedding_model=model, reembedding_to=None)
        store.drop_vectors_except(self._db, model)
        self._use(model)
        job.result.update({"embedding_model": model})


def _with_similarity(hit: Hit, vectors: dict[int, np.ndarray], query: np.ndarray) -> Hit:
    if hit.similarity is not None or hit.chunk_id not in vectors:
        return hit
    return Hit(hit.chunk_id, hit.score, float(vectors[hit.chunk_id] @ query))


def _added(document: Document, created: bool) -> dict:
    return {"document_id": document.id, "created": created, "chunks": document.chunks}


def _as_piece(chunk: StoredChunk) -> chunking.Chunk:
    return chunking.Chunk(chunk.position, chunk.text, chunk.start_char, chunk.end_char,
                          chunk.section)
