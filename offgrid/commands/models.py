"""`offgrid list | rm | info | pull | search | import | export`: the models folder from the
command line. They work on the folder directly, with or without a running server."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from .. import __version__
from ..client import Client, OffGridError
from ..config import Settings
from ..models import hub, transfer
from ..models.folder import ModelError, ModelFolder
from . import terminal
from .remote import server_url


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add the model commands to the main parser; `common` holds the flags every command
    takes."""
    listing = commands.add_parser("list", parents=[common], help="list the models")
    listing.set_defaults(command=lambda a, s: list_models(s))
    remove_ = commands.add_parser("rm", parents=[common], help="delete a model")
    remove_.add_argument("model")
    remove_.set_defaults(command=lambda a, s: remove(s, a.model))
    about = commands.add_parser("info", parents=[common],
                                help="CPU, memory, llama.cpp build and models folder")
    about.set_defaults(command=lambda a, s: info(s))
    pulling = commands.add_parser("pull", parents=[common],
                                  help="download a GGUF model from Hugging Face (or HF_ENDPOINT)")
    pulling.add_argument("repository", help="owner/name")
    pulling.add_argument("file", nargs="?",
                         help="file name (default: its Q4_K_M, else first GGUF)")
    pulling.set_defaults(command=lambda a, s: pull(s, a.repository, a.file))
    searching = commands.add_parser("search", parents=[common],
                                    help="search the hub for GGUF models")
    searching.add_argument("query")
    searching.set_defaults(command=lambda a, s: search(s, a.query))
    importing = commands.add_parser("import", parents=[common],
                                    help="copy models from a folder or USB drive")
    importing.add_argument("path")
    importing.set_defaults(command=lambda a, s: import_models(s, a.path))
    exporting = commands.add_parser("export", parents=[common],
                                    help="copy a model and a sha256 manifest to a folder")
    exporting.add_argument("model")
    exporting.add_argument("path")
    exporting.set_defaults(command=lambda a, s: export_model(s, a.model, a.path))


def _folder(settings: Settings) -> ModelFolder:
    return ModelFolder(settings.models_dir)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def list_models(settings: Settings) -> int:
    loaded = _loaded_on_server(settings)
    rows = [("ID", "SIZE", "QUANTIZATION", "LOADED")]
    for model in _folder(settings).files():
        quantization = model.info.quantization if model.info else "unreadable"
        state = "-" if loaded is None else ("yes" if model.id in loaded else "no")
        rows.append((model.id, _size(model.size), quantization or "?", state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    if loaded is None:
        print("(no server running: LOADED is unknown)", file=sys.stderr)
    return 0


def _loaded_on_server(settings: Settings) -> set[str] | None:
    try:
        models = Client(server_url(settings), timeout=2, retries=0).models.list()
    except OffGridError:
        return None
    return {m["id"] for m in models if m.get("loaded")}


def remove(settings: Settings, model_id: str) -> int:
    try:
        removed = _folder(settings).delete(model_id)
    except ModelError as error:
        return terminal.fail(str(error))
    print(f"removed {model_id} ({', '.join(p.name for p in removed.paths)})")
    return 0


def info(settings: Settings) -> int:
    import psutil

    from ..engine import llama
    memory = psutil.virtual_memory()
    print(f"offgrid {__version__}")
    print(f"llama.cpp (llama-cpp-python {llama.package_version()}): {llama.system_info()}")
    print(f"threads: {settings.num_threads} of {os.cpu_count()} CPUs")
    print(f"memory: {_size(memory.available)} free of {_size(memory.total)}")
    print(f"models: {settings.models_dir} ({len(_folder(settings).files())} models)")
    return 0


def pull(settings: Settings, repository: str, file_name: str | None) -> int:
    try:
        file_name = file_name or hub.choose_file(repository)
        job = hub.Download(repository, file_name)
        return _run_download(_folder(settings), job)
    except (hub.HubError, ModelError) as error:
        return terminal.fail(str(error))


def _run_download(folder: ModelFolder, job: hub.Download) -> int:
    """Download in a thread while this one draws progress; Ctrl-C cancels, keeping what came."""
    outcome: dict = {}

    def work():
        try:
            outcome["path"] = hub.download(folder, job)
        except (hub.HubError, ModelError, OSError) as error:
            outcome["error"] = error

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            _draw_progress(job)
            worker.join(0.2)
    except KeyboardInterrupt:
        job.cancel()
        worker.join()
        print("\ninterrupted: run the same pull again to resume", file=sys.stderr)
        return 130
    _draw_progress(job, end=True)
    if "error" in outcome:
        return terminal.fail(str(outcome["error"]))
    print(f"pulled {job.repository}/{job.file_name} -> {outcome['path']}")
    return 0


def _draw_progress(job: hub.Download, end: bool = False) -> None:
    total = job.bytes_total or 0
    terminal.progress(job.file_name, job.bytes_done, total,
                      f"{_size(job.bytes_done)} / {_size(total) if total else '?'} {job.status}",
                      end)


def search(settings: Settings, query: str) -> int:
    try:
        results = hub.search(query)
    except hub.HubError as error:
        return terminal.fail(str(error))
    for model in results:
        print(f"{model['id']}  ({model['downloads'] or 0} downloads)")
    if not results:
        print("no GGUF models found", file=sys.stderr)
    return 0


def import_models(settings: Settings, folder: str) -> int:
    try:
        report = transfer.import_from(_folder(settings), Path(folder))
    except ModelError as error:
        return terminal.fail(str(error))
    return _print_report(report, "imported")


def export_model(settings: Settings, model_id: str, folder: str) -> int:
    try:
        report = transfer.export(_folder(settings), model_id, Path(folder))
    except (ModelError, OSError) as error:
        return terminal.fail(str(error))
    return _print_report(report, "exported")


def _print_report(report, verb: str) -> int:
    for name in report.copied:
        print(f"{verb} {name}")
    for name in report.skipped:
        print(f"skipped {name}: already there")
    for name, why in report.failed.items():
        print(f"failed {name}: {why}", file=sys.stderr)
    return 1 if report.failed else 0
