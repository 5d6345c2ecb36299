"""The models over HTTP: list, inspect, delete, download from the hub, search it, and import
from / export to a folder on the server's machine (a USB stick)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ...models import transfer
from ...models.folder import ModelFile
from .. import fields
from ..errors import BadRequest, Forbidden, NotFound
from ..http import Request, Response


def list_models(app, request: Request) -> Response:
    loaded = app.registry.loaded()
    return Response({"object": "list",
                     "data": [_card(f, loaded.get(f.id)) for f in app.registry.files()]})


def get_model(app, request: Request, model_id: str) -> Response:
    model_file = app.registry.find(model_id)
    return Response(_card(model_file, app.registry.loaded().get(model_id)))


def delete_model(app, request: Request, model_id: str) -> Response:
    app.registry.delete(model_id)
    return Response({"id": model_id, "object": "model", "deleted": True})


def _card(model_file: ModelFile, loaded) -> dict:
    """OpenAI's model object, plus what the file's header says and whether it is loaded."""
    info = model_file.info
    expires = loaded.expires_at() if loaded else None
    return {"id": model_file.id, "object": "model", "created": int(model_file.modified),
            "owned_by": "offgrid-llm", "size_bytes": model_file.size,
            "files": [p.name for p in model_file.paths],
            "architecture": info.architecture if info else None,
            "parameters": info.parameters if info else None,
            "quantization": info.quantization if info else None,
            "context_length": info.context_length if info else None,
            "chat_template": info.has_chat_template if info else None,
            "embedding": info.is_embedding if info else None,
            "loaded": loaded is not None,
            "expires_in": round(max(0.0, expires - time.monotonic()), 1)
            if expires is not None else None,
            "error": model_file.error}


# -- the hub --------------------------------------------------------------------------------------

def start_download(app, request: Request) -> Response:
    body = request.json()
    repository = fields.string(body, "repository")
    job = app.downloads.start(repository, fields.optional_string(body, "file_name"))
    return Response(job.as_dict(), status=202)


def download_progress(app, request: Request) -> Response:
    jobs = [j for j in app.downloads.all() if request.query.get("id") in (None, j.id)]
    return Response({"object": "list", "data": [j.as_dict() for j in jobs]})


def cancel_download(app, request: Request) -> Response:
    body = request.json() if request.body else {}
    job_id = body.get("id")
    cancelled = app.downloads.cancel(job_id)
    if job_id is not None and not cancelled:
        raise NotFound(f"No running download with id {job_id!r}", param="id")
    return Response({"object": "list", "data": [j.as_dict() for j in cancelled]})


def search(app, request: Request) -> Response:
    query = request.query.get("query") or request.query.get("q")
    if not query:
        raise BadRequest("Missing required parameter: 'query'", param="query",
                         code="missing_required_parameter")
    from ...models import hub
    return Response({"object": "list", "data": hub.search(query)})


# -- folders on this machine (USB) -----------------------------------------------------------------

def import_models(app, request: Request) -> Response:
    body = request.json()
    folder = _folder(app, body)
    return Response(transfer.import_from(app.registry.folder, folder).as_dict())


def export_model(app, request: Request) -> Response:
    body = request.json()
    model_id, folder = fields.string(body, "model"), _folder(app, body)
    return Response(transfer.export(app.registry.folder, model_id, folder).as_dict())


def _folder(app, body: dict) -> Path:
    """The folder `path` names, with symlinks and `..` resolved; 403 unless it lies inside one
    of the transfer_dirs, since whoever may call these would otherwise reach any folder the
    server may write (the CLI's import and export are the machine's user's, and unrestricted)."""
    path = fields.string(body, "path")
    if not Path(path).is_absolute():
        raise BadRequest("'path' must be an absolute path on the server's machine",
                         code="invalid_value", param="path")
    try:
        folder = Path(os.path.realpath(path))
    except ValueError:  # a NUL character
        raise BadRequest("'path' is not a valid path", code="invalid_value",
                         param="path") from None
    allowed = [Path(os.path.realpath(root)) for root in app.settings.transfer_folders()]
    if not any(folder.is_relative_to(root) for root in allowed):
        raise Forbidden(f"Over HTTP, models are imported and exported only inside the folders "
                        f"transfer_dirs names ({', '.join(map(str, allowed)) or 'none'}), and "
                        f"{folder} is in none of them; add its folder to OFFGRID_TRANSFER_DIRS "
                        "(comma-separated) to allow it", code="path_not_allowed", param="path")
    return folder
