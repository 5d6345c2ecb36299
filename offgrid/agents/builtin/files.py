"""`read_file`, `write_file` and `list_files`: text files in the caller's workspace folder, and
nowhere else.

A path is relative to the workspace; an absolute one, one with `..` or a NUL is refused as
written. It is then walked one folder at a time from the workspace's own descriptor
(openat with O_NOFOLLOW), so a symbolic link is never followed, wherever it points and whenever
it appears: no check-then-use gap for a link swapped in meanwhile. Only regular files are read
or replaced (a FIFO or device is refused before it is opened), writes go to a temporary file
renamed into place, and what is read, written and listed is bounded."""

from __future__ import annotations

import codecs
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ...config import Settings
from ..tools import ToolContext, ToolResult
from .base import BuiltinTool, Refused, string

MAX_PATH_CHARS = 1024
MAX_READ_BYTES = 256 * 1024  # returned by read_file; the rest is cut, and said to be
MAX_WRITE_BYTES = 1024 * 1024
MAX_LISTED = 500  # entries shown by list_files
MAX_SCANNED = 20_000  # entries a listing reads, to sort them
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = {"type": "string", "maxLength": MAX_PATH_CHARS,
         "description": "a path relative to the workspace folder, such as notes/todo.txt"}


def workspace_folder(settings: Settings, user_id: int | None) -> Path:
    """The workspace a caller's file tools use: OFFGRID_HOME/workspace, and in multi-user mode a
    folder of it per user (callers without an account share `guests`)."""
    root = settings.home / "workspace"
    if not settings.multi_user:
        return root
    return root / ("guests" if user_id is None else f"user-{user_id}")


class ReadFile(BuiltinTool):
    name = "read_file"
    description = (f"Read a text file from the workspace folder (the first "
                   f"{MAX_READ_BYTES // 1024} KiB of a longer one).")
    parameters = {"type": "object", "properties": {"path": _PATH}, "required": ["path"],
                  "additionalProperties": False}
    timeout_s = 10.0

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        parts = _parts(string(arguments, "path", MAX_PATH_CHARS))
        shown = "/".join(parts)
        with _folder(context.workspace, parts[:-1]) as folder:
            fd = _open_regular(folder, parts[-1], shown, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                data = file.read(MAX_READ_BYTES)
        text = _text(data, cut=size > len(data))
        if text is None:
            raise Refused(f"{shown} is not UTF-8 text ({size:,} bytes of binary data); "
                          "read_file reads text files only")
        if not text:
            return ToolResult(f"{shown} is empty")
        if size > len(data):
            text += (f"\n[... cut: {shown} has {size:,} bytes; the first {len(data):,} are "
                     "shown]")
        return ToolResult(text)


class WriteFile(BuiltinTool):
    name = "write_file"
    description = ("Write a text file in the workspace folder, replacing it if it is there; "
                   "missing folders on its path are made.")
    parameters = {"type": "object",
                  "properties": {"path": _PATH,
                                 # No maxLength: the grammar bounds repetitions far lower.
                                 "content": {"type": "string",
                                             "description": "the file's whole new text"}},
                  "required": ["path", "content"], "additionalProperties": False}
    timeout_s = 10.0

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        parts = _parts(string(arguments, "path", MAX_PATH_CHARS))
        shown = "/".join(parts)
        try:
            data = string(arguments, "content", MAX_WRITE_BYTES).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, which JSON can spell
            raise Refused("The content holds characters that are not valid Unicode") from None
        if len(data) > MAX_WRITE_BYTES:
            raise Refused(f"The content is {len(data):,} bytes; write_file writes at most "
                          f"{MAX_WRITE_BYTES:,}")
        with _folder(context.workspace, parts[:-1], make=True) as folder:
            replaced = _replace(folder, parts[-1], data, shown)
        return ToolResult(f"Wrote {len(data):,} bytes to {shown}"
                          + (" (it replaced the file there)" if replaced else " (a new file)"))


class ListFiles(BuiltinTool):
    name = "list_files"
    description = ("List a folder of the workspace (the workspace itself when no path is "
                   "given): folders end with /, files show their size.")
    parameters = {"type": "object", "properties": {"path": _PATH},
                  "additionalProperties": False}
    timeout_s = 10.0

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        parts = _parts(string(arguments, "path", MAX_PATH_CHARS, default=""), root=True)
        where = f"the folder {'/'.join(parts)}" if parts else "the workspace"
        with _folder(context.workspace, parts) as folder:
            entries, more = _entries(folder)
            lines = [_entry_line(entry) for entry in entries[:MAX_LISTED]]  # while it is open
        if not entries:
            return ToolResult(f"{where.capitalize()} is empty")
        hidden = len(entries) - MAX_LISTED
        if hidden > 0 or more:
            lines.append(f"[... and {'more than ' if more else ''}{hidden:,} more entries]")
        return ToolResult(f"{where.capitalize()} holds:\n" + "\n".join(lines))


# -- paths --------------------------------------------------------------------------------------

def _parts(path: str, root: bool = False) -> tuple[str, ...]:
    """The path's names, refused unless it stays inside the workspace as written."""
    if "\x00" in path:
        raise Refused("The path holds a NUL character")
    pure = PurePosixPath(path.strip())
    if pure.is_absolute() or path.strip().startswith("~"):
        raise Refused(f"{path!r} is not inside the workspace: give a path relative to the "
                      "workspace folder, such as notes/todo.txt")
    parts = tuple(part for part in pure.parts if part != ".")
    if ".." in parts:
        raise Refused(f"{path!r} leaves the workspace: paths may not use '..'")
    if not parts and not root:
        raise Refused("Give the path of a file in the workspace, such as notes/todo.txt")
    return parts


@contextmanager
def _folder(workspace: Path, parts: tuple[str, ...], make: bool = False) -> Iterator[int]:
    """A descriptor of the workspace's folder `parts`, reached without following a link;
    `make` makes the missing ones."""
    workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, part in enumerate(parts):
            child = _step(fd, part, "/".join(parts[:depth + 1]), make)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _step(parent: int, name: str, shown: str, make: bool) -> int:
    """The folder `name` in `parent`, opened."""
    if make and _kind(parent, name, shown) is None:
        _make_folder(parent, name, shown)
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except OSError as error:
        kind = _kind(parent, name, shown)
        if kind is None:
            raise Refused(f"There is no folder {shown} in the workspace") from None
        if kind != stat.S_IFDIR:
            raise Refused(f"{shown} is not a folder but {_KINDS.get(kind, 'a special file')}"
                          ) from None
        raise Refused(f"{shown} cannot be opened: {error.strerror}") from None


def _make_folder(parent: int, name: str, shown: str) -> None:
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass  # made meanwhile; opening it checks what it is
    except OSError as error:
        raise Refused(f"The folder {shown} cannot be made: {error.strerror}") from None


_KINDS = {stat.S_IFLNK: "a symbolic link, which the file tools do not follow",
          stat.S_IFDIR: "a folder", stat.S_IFREG: "a file"}


def _kind(folder: int, name: str, shown: str) -> int | None:
    """What `name` in `folder` is (stat.S_IFMT), not following a link; None if nothing."""
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None
    except OSError as error:  # a name too long, say
        raise Refused(f"{shown} cannot be used: {error.strerror}") from None


def _open_regular(folder: int, name: str, shown: str, flags: int) -> int:
    """`name` opened, if it is a regular file. Its kind is looked at before opening (opening a
    device or FIFO can block or act) and the file opened is checked to be that one."""
    kind = _kind(folder, name, shown)
    if kind is None:
        raise Refused(f"There is no file {shown} in the workspace; list_files shows what is "
                      "there")
    if kind != stat.S_IFREG:
        raise Refused(f"{shown} is {_KINDS.get(kind, 'a special file')}, not a file to read"
                      + ("; list_files lists it" if kind == stat.S_IFDIR else ""))
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Refused(f"{shown} is {_KINDS[stat.S_IFLNK]}") from None
        raise Refused(f"{shown} cannot be opened: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped meanwhile
        os.close(fd)
        raise Refused(f"{shown} is not a regular file")
    return fd


# -- contents -----------------------------------------------------------------------------------

def _text(data: bytes, cut: bool) -> str | None:
    """`data` as text, or None for binary; a character split by the cut is left out."""
    if b"\x00" in data:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=not cut)
    except UnicodeDecodeError:
        return None


def _replace(folder: int, name: str, data: bytes, shown: str) -> bool:
    """Write `data` to a new file beside `name` and rename it over `name`, so that a reader
    sees the old file or the new one, never half of it; whether there was one."""
    kind = _kind(folder, name, shown)
    if kind not in (None, stat.S_IFREG):
        raise Refused(f"{shown} is {_KINDS.get(kind, 'a special file')}; write_file replaces "
                      "files only")
    temporary = f".offgrid-write-{secrets.token_hex(8)}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o644, dir_fd=folder)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        return kind is not None
    except OSError as error:
        try:
            os.unlink(temporary, dir_fd=folder)
        except FileNotFoundError:
            pass
        raise Refused(f"{shown} cannot be written: {error.strerror}") from None


def _entries(folder: int) -> tuple[list[os.DirEntry], bool]:
    """The folder's entries by name, as many as MAX_SCANNED, and whether there are more."""
    entries = []
    with os.scandir(folder) as scan:
        for entry in scan:
            if len(entries) == MAX_SCANNED:
                return sorted(entries, key=lambda e: e.name), True
            entries.append(entry)
    return sorted(entries, key=lambda e: e.name), False


def _entry_line(entry: os.DirEntry) -> str:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return f"{entry.name} (gone)"
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFDIR:
        return entry.name + "/"
    if kind == stat.S_IFREG:
        return f"{entry.name} ({info.st_size:,} bytes)"
    return f"{entry.name} ({'symbolic link' if kind == stat.S_IFLNK else 'special file'})"
