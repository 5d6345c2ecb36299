"""The files tool in a real workspace folder: what is written is read back and listed; paths out
of the workspace, symbolic links and special files are refused; sizes and listings bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from offgrid.agents.builtin.files import MAX_LISTED, MAX_READ_BYTES, MAX_WRITE_BYTES
from support.builtin_tools import call, refused


@pytest.fixture
def outside(tmp_path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("the server's secret")
    return folder


def test_a_file_written_is_read_back_and_listed(workspace):
    assert call("list_files", workspace).text == "The workspace is empty"
    assert workspace.is_dir() and workspace.stat().st_mode & 0o777 == 0o700
    wrote = call("write_file", workspace, path="notes/todo.txt", content="milk\nthé ☕\n")
    assert wrote.text == "Wrote 14 bytes to notes/todo.txt (a new file)"
    assert call("read_file", workspace, path="notes/todo.txt").text == "milk\nthé ☕\n"
    assert call("read_file", workspace, path="./notes//todo.txt").text == "milk\nthé ☕\n"
    again = call("write_file", workspace, path="notes/todo.txt", content="eggs")
    assert again.text == "Wrote 4 bytes to notes/todo.txt (it replaced the file there)"
    assert (workspace / "notes" / "todo.txt").read_text() == "eggs"
    assert call("list_files", workspace).text == "The workspace holds:\nnotes/"
    assert call("list_files", workspace, path="notes").text == (
        "The folder notes holds:\ntodo.txt (4 bytes)")
    assert sorted(os.listdir(workspace / "notes")) == ["todo.txt"]  # no temporary file left
    assert call("read_file", workspace, path="notes/empty.txt").is_error
    call("write_file", workspace, path="notes/empty.txt", content="")
    assert call("read_file", workspace, path="notes/empty.txt").text == "notes/empty.txt is empty"


@pytest.mark.parametrize("path, why", [
    ("../../etc/passwd", "leaves the workspace"), ("notes/../../x", "leaves the workspace"),
    ("..", "leaves the workspace"), ("/etc/passwd", "not inside the workspace"),
    ("~/.ssh/id_rsa", "not inside the workspace"), ("a\x00b", "NUL"), ("", "Give the path"),
])
def test_a_path_out_of_the_workspace_is_refused_as_written(workspace, path, why):
    refused(call("read_file", workspace, path=path), why)
    refused(call("write_file", workspace, path=path, content="x"), why)
    if path:
        refused(call("list_files", workspace, path=path), why)


def test_a_symbolic_link_is_never_followed(workspace, outside):
    workspace.mkdir(parents=True)
    (workspace / "out").symlink_to(outside)
    (workspace / "secret.txt").symlink_to(outside / "secret.txt")
    (workspace / "inside").mkdir()
    (workspace / "alias").symlink_to(workspace / "inside")
    for path in ("out/secret.txt", "out/new.txt", "alias/x.txt"):
        refused(call("read_file", workspace, path=path), "symbolic link")
        refused(call("write_file", workspace, path=path, content="planted"), "symbolic link")
    refused(call("read_file", workspace, path="secret.txt"), "symbolic link")
    refused(call("write_file", workspace, path="secret.txt", content="x"), "symbolic link")
    refused(call("list_files", workspace, path="out"), "symbolic link")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "the server's secret"
    listed = call("list_files", workspace).text.splitlines()
    assert "out (symbolic link)" in listed and "secret.txt (symbolic link)" in listed


def test_only_regular_files_are_read_and_a_fifo_never_blocks(workspace):
    workspace.mkdir(parents=True)
    os.mkfifo(workspace / "pipe")
    (workspace / "folder").mkdir()
    refused(call("read_file", workspace, path="pipe"), "special file")
    refused(call("write_file", workspace, path="pipe", content="x"), "special file")
    refused(call("read_file", workspace, path="folder"), "folder", "list_files")
    refused(call("write_file", workspace, path="folder", content="x"), "folder")
    refused(call("read_file", workspace, path="folder/nothing"), "no file folder/nothing")
    (workspace / "file").write_text("x")
    refused(call("read_file", workspace, path="file/below"), "file is not a folder")
    refused(call("list_files", workspace, path="file"), "not a folder")


def test_sizes_are_bounded(workspace):
    workspace.mkdir(parents=True)
    (workspace / "big.txt").write_bytes(b"a" * (MAX_READ_BYTES - 1) + "é".encode() * 100)
    text = call("read_file", workspace, path="big.txt").text
    assert text.startswith("a" * (MAX_READ_BYTES - 1) + "\n[... cut: big.txt has 262,343 bytes")
    refused(call("write_file", workspace, path="huge.txt", content="é" * MAX_WRITE_BYTES),
            "at most 1,048,576")
    assert not (workspace / "huge.txt").exists()
    assert not call("write_file", workspace, path="full.txt", content="a" * MAX_WRITE_BYTES
                    ).is_error
    (workspace / "data.bin").write_bytes(bytes(range(256)))
    refused(call("read_file", workspace, path="data.bin"), "not UTF-8 text (256 bytes")
    refused(call("write_file", workspace, path="odd.txt", content="\ud800"), "not valid Unicode")


def test_a_long_listing_is_cut(workspace):
    (workspace / "many").mkdir(parents=True)
    for n in range(MAX_LISTED + 20):
        (workspace / "many" / f"f{n:04}").touch()
    lines = call("list_files", workspace, path="many").text.splitlines()
    assert lines[1] == "f0000 (0 bytes)" and len(lines) == 1 + MAX_LISTED + 1
    assert lines[-1] == "[... and 20 more entries]"
