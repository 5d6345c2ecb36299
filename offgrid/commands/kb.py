"""`offgrid kb add | list | search | rm | status`: the running server's knowledge base from the
command line, through its HTTP API (OFFGRID_URL, and OFFGRID_API_KEY in multi-user mode)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..client import Client, OffGridError
from . import terminal
from .remote import on_server


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add `kb` and its actions to the main parser; `common` holds the flags every command
    takes."""
    parser = commands.add_parser("kb", parents=[common],
                                 help="the knowledge base: add documents, search them")
    parser.set_defaults(command=lambda args, settings: parser.print_help() or 2)
    actions = parser.add_subparsers(title="actions")
    add = actions.add_parser("add", help="add files, and the files in folders")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.set_defaults(command=on_server(_add))
    actions.add_parser("list", help="list the documents").set_defaults(
        command=on_server(_list))
    search = actions.add_parser("search", help="the passages that best match a question")
    search.add_argument("query")
    search.add_argument("--top-k", dest="top_k", type=int, default=5)
    search.add_argument("--mode", choices=("hybrid", "keyword", "vector"), default="hybrid")
    search.set_defaults(command=on_server(_search))
    remove = actions.add_parser("rm", help="remove documents")
    remove.add_argument("ids", nargs="+", type=int, metavar="ID")
    remove.set_defaults(command=on_server(_remove))
    actions.add_parser("status", help="on or off, the embedding model, what it holds"
                       ).set_defaults(command=on_server(_status))


def _files(paths: list[str]) -> list[Path]:
    """The files named, and those under the folders named (hidden ones left out), sorted."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
        else:
            raise OffGridError(f"{path}: no such file or folder", status=-1)
    return found


def _add(client: Client, args) -> int:
    files = _files(args.paths)
    failed = 0
    for number, path in enumerate(files, start=1):
        label = f"[{number}/{len(files)}] {path.name}"
        try:
            document = client.kb.add(path, progress=lambda done, total, label=label: (
                terminal.progress(label, done, total or None, f"{done}/{total} chunks")))
        except OffGridError as error:
            print(f"\r{label}: {error.message}", file=sys.stderr)
            failed += 1
            continue
        terminal.progress(label, 1, 1, f"{document['chunks']} chunks, id {document['id']}",
                          end=True)
    print(f"added {len(files) - failed} of {len(files)} files")
    return 1 if failed else 0


def _list(client: Client, args) -> int:
    rows = [("ID", "CHUNKS", "SIZE", "NAME")] + [
        (str(d["id"]), str(d["chunks"]), str(d["size"]), d["name"]) for d in client.kb.list()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        print("  ".join(cells) + "  " + row[3])
    return 0


def _search(client: Client, args) -> int:
    for result in client.kb.search(args.query, args.top_k, mode=args.mode):
        where = " > ".join([result["document_name"], *result["section"]])
        print(f"{result['score']:.3f}  {where}  (document {result['document_id']}, "
              f"chunk {result['chunk_index']})")
        print("    " + " ".join(result["content"].split())[:300] + os.linesep)
    return 0


def _remove(client: Client, args) -> int:
    for document_id in args.ids:
        client.kb.delete(document_id)
        print(f"removed document {document_id}")
    return 0


def _status(client: Client, args) -> int:
    status = client.kb.status()
    print(f"knowledge base: {'on' if status['enabled'] else 'off'}")
    print(f"embedding model: {status['embedding_model'] or 'none'} (available: "
          f"{', '.join(status['available_embedding_models']) or 'none'})")
    print(f"documents: {status['documents']}, chunks: {status['chunks']}")
    if status["reembedding"]:
        job = status["reembedding"]
        print(f"re-embedding: {job['done']}/{job['total']} chunks")
    return 0
