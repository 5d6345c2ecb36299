"""The knowledge base over HTTP, at the seed system's paths: its state (/v1/rag/...), documents
in and out, their chunks (to open a cited passage) and search."""

from __future__ import annotations

from dataclasses import dataclass

from ...kb.knowledge_base import Reader
from ...kb.search import MODES
from ...store.kb import Document
from .. import fields
from ..errors import NotFound
from ..fields import invalid
from ..http import Request, Response

MAX_TOP_K = 50


def reader_of(app, request: Request) -> Reader:
    return app.gate.reader(request.caller)


# -- state ----------------------------------------------------------------------------------------

def status(app, request: Request) -> Response:
    return Response(app.kb.status().as_dict())


def enable(app, request: Request) -> Response:
    body = request.json() if request.body else {}
    model = fields.optional_string(body, "embedding_model")
    return Response(app.kb.enable(model).as_dict())


def disable(app, request: Request) -> Response:
    return Response(app.kb.disable().as_dict())


# -- documents ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IngestRequest:
    name: str
    data: bytes
    content_type: str | None
    metadata: dict
    wait: bool  # answer once it is searchable; else at once, with a job

    @classmethod
    def parse(cls, request: Request) -> "IngestRequest":
        """A multipart upload (field `file`, optional fields `name`, `async`), or JSON
        {"name", "content", "metadata", "async"}."""
        if request.headers.get("Content-Type", "").lower().startswith("multipart/"):
            form = request.form()
            upload = form.get("file")
            if upload is None:
                raise fields.missing("file")
            named = form.get("name")
            name = named.data.decode("utf-8", "replace") if named else upload.filename
            late = form.get("async")
            return cls(_name(name), upload.data, upload.content_type or None, {},
                       not (late and late.data.strip().lower() in (b"true", b"1")))
        body = request.json()
        content = body.get("content")
        if not isinstance(content, str):
            raise fields.missing("content") if content is None else invalid(
                "content", "the document's text", content)
        return cls(_name(fields.string(body, "name")), content.encode("utf-8"),
                   fields.optional_string(body, "content_type"), fields.obj(body, "metadata"),
                   not fields.boolean(body, "async", False))


def _name(name: str | None) -> str:
    if not name or len(name) > 255 or any(c in name for c in "\0\n\r"):
        raise invalid("name", "a document name of 1 to 255 characters on one line", name)
    return name


def ingest(app, request: Request) -> Response:
    asked = IngestRequest.parse(request)
    reader = reader_of(app, request)
    if not asked.wait:
        job = app.kb.add_later(reader, asked.name, asked.data, asked.content_type,
                               asked.metadata, request.meter, request.caller.actor)
        return Response({"success": True, "job": job.as_dict()}, status=202)
    document, created = app.kb.add(reader, asked.name, asked.data, asked.content_type,
                                   asked.metadata, meter=request.meter)
    return Response({"success": True, "created": created, "document": document_json(document)},
                    status=201 if created else 200)


def job(app, request: Request, job_id: str) -> Response:
    found = app.kb.jobs.get(job_id)
    if found is None or found.owner != request.caller.actor:
        raise NotFound(f"No knowledge-base job with id {job_id}", code="job_not_found")
    return Response(found.as_dict())


def list_documents(app, request: Request) -> Response:
    documents = app.kb.documents(reader_of(app, request))
    return Response({"object": "list", "documents": [document_json(d) for d in documents],
                     "count": len(documents)})


def get_document(app, request: Request, document_id: str) -> Response:
    return Response(document_json(app.kb.document(reader_of(app, request),
                                                  _number(document_id))))


def get_chunk(app, request: Request, document_id: str, position: str) -> Response:
    chunk = app.kb.chunk(reader_of(app, request), _number(document_id), _number(position))
    return Response({"object": "chunk", "document_id": chunk.document_id,
                     "document_name": chunk.document_name, "chunk_index": chunk.position,
                     "content": chunk.text, "start_char": chunk.start_char,
                     "end_char": chunk.end_char, "section": list(chunk.section)})


def delete_document(app, request: Request, document_id: str) -> Response:
    document = app.kb.delete(reader_of(app, request), _number(document_id))
    return Response({"success": True, "id": document.id, "object": "document", "deleted": True})


def delete_document_by_body(app, request: Request) -> Response:
    """The seed system's POST /v1/documents/delete {"id"}."""
    document_id = request.json().get("id")
    if isinstance(document_id, bool) or not isinstance(document_id, (int, str)):
        raise invalid("id", "a document id", document_id)
    return delete_document(app, request, str(document_id))


def share_document(app, request: Request, document_id: str) -> Response:
    shared = request.json().get("shared")
    if not isinstance(shared, bool):
        raise invalid("shared", "true or false", shared)
    return Response(document_json(app.kb.share(_number(document_id), shared)))


def document_json(document: Document) -> dict:
    return {"id": document.id, "object": "document", "name": document.name,
            "title": document.title, "content_type": document.content_type,
            "size": document.size, "sha256": document.sha256, "chunks": document.chunks,
            "metadata": document.metadata, "shared": document.shared,
            "owner_id": document.owner_id, "created_at": int(document.created_at)}


def _number(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound(f"No document {value}", code="document_not_found")
    return int(value)


# -- search ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchRequest:
    query: str
    top_k: int
    min_score: float | None
    document_filter: list[int] | None
    mode: str
    diversity: float  # 0: none; up to 1: maximal marginal relevance

    @classmethod
    def parse(cls, body: dict) -> "SearchRequest":
        return cls(fields.string(body, "query"), fields.integer(body, "top_k", 5, 1, MAX_TOP_K),
                   min_score(body), document_filter(body), fields.choice(body, "mode", MODES),
                   fields.number(body, "diversity", 0.0, 0.0, 1.0))


def min_score(body: dict) -> float | None:
    return None if body.get("min_score") is None else fields.number(body, "min_score", 0.0,
                                                                    -1e9, 1e9)


def document_filter(body: dict) -> list[int] | None:
    value = body.get("document_filter")
    if value is None:
        return None
    if not isinstance(value, list) or not all(fields.is_token(v) for v in value):
        raise invalid("document_filter", "an array of document ids", value)
    return value


def search(app, request: Request) -> Response:
    asked = SearchRequest.parse(request.json())
    passages = app.kb.search(reader_of(app, request), asked.query, asked.top_k,
                             asked.min_score, asked.document_filter, asked.mode,
                             asked.diversity)
    return Response({"object": "list", "query": asked.query, "results": [
        {"content": p.text, "document_id": p.document_id, "document_name": p.document_name,
         "chunk_index": p.chunk_index, "start_char": p.start_char, "end_char": p.end_char,
         "section": list(p.section), "score": round(p.score, 6),
         "similarity": None if p.similarity is None else round(p.similarity, 6)}
        for p in passages]})
