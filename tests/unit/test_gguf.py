"""The GGUF header reader and the models folder, on small files made here: what a header says;
a file cut short, of another format or of another version refused with GgufError and nothing
else; split files as one model; and the test models' own headers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from offgrid.models import gguf
from offgrid.models.folder import InvalidName, ModelFolder, NotFound, check_file_name
from offgrid.models.gguf import GgufError, GgufInfo

UINT32, STRING, ARRAY, FLOAT32 = 4, 8, 9, 6  # GGUF metadata value types


def write_model(path: Path, architecture: str = "llama", tensors: dict | None = None,
                metadata: dict | None = None) -> Path:
    """A GGUF file as llama.cpp's own writer makes it: float32 tensors of zeros, of `tensors`'
    shapes, and `metadata` (strings, lists, or integers as uint32)."""
    writer = GGUFWriter(path, architecture)
    for key, value in (metadata or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, list):
            writer.add_array(key, value)
        else:
            writer.add_uint32(key, value)
    for name, shape in (tensors or {"token_embd.weight": (8, 4)}).items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def string(text: str) -> bytes:
    encoded = text.encode()
    return struct.pack("<Q", len(encoded)) + encoded


def header(metadata: list[tuple[str, int, bytes]] = (), tensors: list[tuple] = (),
           version: int = 3, magic: bytes = b"GGUF") -> bytes:
    """A GGUF header written by hand: (key, value type, value bytes) and (name, shape)."""
    out = magic + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, kind, value in metadata:
        out += string(key) + struct.pack("<I", kind) + value
    for name, shape in tensors:
        out += string(name) + struct.pack(f"<I{len(shape)}Q", len(shape), *shape)
        out += struct.pack("<IQ", 0, 0)  # element type, data offset
    return out


def read_bytes(tmp_path: Path, data: bytes) -> GgufInfo:
    path = tmp_path / "made.gguf"
    path.write_bytes(data)
    return gguf.read(path)


LLAMA = ("general.architecture", STRING, string("llama"))


# -- what a header says ------------------------------------------------------------------------

def test_a_header_tells_architecture_size_quantization_and_shape(tmp_path):
    path = write_model(tmp_path / "m.gguf", tensors={"a": (8, 4), "b": (16,)}, metadata={
        "general.file_type": 15, "llama.context_length": 2048, "llama.block_count": 2,
        "llama.embedding_length": 8, "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2, "tokenizer.chat_template": "{{ x }}",
        "tokenizer.ggml.tokens": ["a", "b"]})
    assert gguf.is_gguf(path)
    assert gguf.read(path) == GgufInfo(
        architecture="llama", parameters=8 * 4 + 16, quantization="Q4_K_M",
        context_length=2048, has_chat_template=True, is_embedding=False, layers=2,
        embedding_length=8, heads=4, kv_heads=2)


def test_what_a_header_leaves_out_has_defaults(tmp_path):
    info = gguf.read(write_model(tmp_path / "m.gguf", "bert", metadata={
        "bert.attention.head_count": 12, "bert.pooling_type": 1, "general.file_type": 999}))
    assert (info.architecture, info.quantization, info.context_length) == ("bert", None, None)
    assert info.is_embedding and not info.has_chat_template
    assert (info.heads, info.kv_heads, info.layers) == (12, 12, 0), "kv heads default to heads"


def test_arrays_are_skipped_and_what_follows_them_is_read(tmp_path):
    strings = struct.pack("<IQ", STRING, 2) + string("one") + string("two")
    floats = struct.pack("<IQ2f", FLOAT32, 2, 0.5, 1.5)
    nested = struct.pack("<IQ", ARRAY, 2) + b"".join(
        struct.pack("<IQ3I", UINT32, 3, 1, 2, 3) for _ in range(2))
    info = read_bytes(tmp_path, header([
        LLAMA, ("tokenizer.ggml.tokens", ARRAY, strings), ("tokenizer.ggml.scores", ARRAY, floats),
        ("nested", ARRAY, nested), ("llama.context_length", UINT32, struct.pack("<I", 96))],
        [("w", (3, 5))]))
    assert (info.context_length, info.parameters) == (96, 15)


@pytest.mark.parametrize("version", [2, 3])
def test_versions_two_and_three_are_read(tmp_path, version):
    assert read_bytes(tmp_path, header([LLAMA], version=version)).architecture == "llama"


@pytest.mark.parametrize("version", [0, 1, 4, 2 ** 32 - 1])
def test_other_versions_are_refused(tmp_path, version):
    with pytest.raises(GgufError, match=f"GGUF version {version} is not supported"):
        read_bytes(tmp_path, header([LLAMA], version=version))


@pytest.mark.parametrize("magic", [b"GGML", b"gguf", b"\x00\x00\x00\x00", b"PK\x03\x04"])
def test_other_formats_are_refused(tmp_path, magic):
    path = tmp_path / "other.gguf"
    path.write_bytes(header([LLAMA], magic=magic))
    assert not gguf.is_gguf(path)
    with pytest.raises(GgufError, match="not a GGUF file"):
        gguf.read(path)


# -- damaged headers ---------------------------------------------------------------------------

def test_a_header_cut_anywhere_is_refused(tmp_path):
    whole = header([LLAMA, ("llama.context_length", UINT32, struct.pack("<I", 96))],
                   [("w", (3, 5)), ("v", (7,))])
    assert read_bytes(tmp_path, whole).parameters == 22
    for length in range(len(whole)):
        with pytest.raises(GgufError):
            read_bytes(tmp_path, whole[:length])


def test_a_model_file_cut_in_its_header_says_so(tmp_path, model_files):
    path = tmp_path / "truncated.gguf"
    path.write_bytes(model_files["embedding"].read_bytes()[:1000])
    with pytest.raises(GgufError, match="truncated.gguf is cut short or corrupt"):
        gguf.read(path)


@pytest.mark.parametrize("metadata, says", [
    ([("x", 13, b"")], "unknown metadata type 13"),
    ([("x", STRING, struct.pack("<Q", 2 ** 64 - 1))], "cut short or corrupt"),  # a huge string
    ([("x", STRING, struct.pack("<Q", 1000) + b"short")], "cut short or corrupt"),
    ([("x", ARRAY, struct.pack("<IQ", 13, 1))], "unknown metadata type 13"),
    ([("x", STRING, struct.pack("<Q", 2) + b"\xff\xfe")], "cut short or corrupt"),  # not UTF-8
])
def test_impossible_values_are_refused(tmp_path, metadata, says):
    with pytest.raises(GgufError, match=says):
        read_bytes(tmp_path, header([LLAMA, *metadata]))


def test_more_tensors_than_the_file_holds_are_refused(tmp_path):
    data = bytearray(header([LLAMA], [("w", (3, 5))]))
    data[8:16] = struct.pack("<Q", 2 ** 40)  # the tensor count
    with pytest.raises(GgufError, match="cut short or corrupt"):
        read_bytes(tmp_path, bytes(data))


# -- the test models --------------------------------------------------------------------------

def test_the_test_models_headers(model_files):
    assert gguf.read(model_files["starter"]) == GgufInfo(
        architecture="llama", parameters=134_515_008, quantization="Q4_1", context_length=8192,
        has_chat_template=True, is_embedding=False, layers=30, embedding_length=576, heads=9,
        kv_heads=3)
    embedding = gguf.read(model_files["embedding"])
    assert (embedding.architecture, embedding.quantization, embedding.is_embedding) == (
        "bert", "Q8_0", True)
    gemma = gguf.read(model_files["gemma"])
    assert (gemma.architecture, gemma.quantization, gemma.has_chat_template) == (
        "gemma3", "Q4_K_M", False)


# -- the models folder -------------------------------------------------------------------------

def test_split_files_are_one_model_named_without_their_part_numbers(tmp_path):
    for part in (1, 2):
        write_model(tmp_path / f"big-0000{part}-of-00002.gguf", tensors={"w": (part, 4)})
    write_model(tmp_path / "small.gguf")
    (tmp_path / "cut.gguf").write_bytes(header([LLAMA])[:20])
    write_model(tmp_path / ".hidden.gguf")  # a download in progress, say
    (tmp_path / "notes.txt").write_text("not a model")
    found = {model.id: model for model in ModelFolder(tmp_path).files()}
    assert sorted(found) == ["big", "cut", "small"]
    big = found["big"]
    assert [path.name for path in big.paths] == ["big-00001-of-00002.gguf",
                                                 "big-00002-of-00002.gguf"]
    assert big.size == sum(path.stat().st_size for path in big.paths)
    assert big.info.parameters == 4, "the header of the first part"
    assert found["cut"].info is None and "cut short" in found["cut"].error


def test_ids_and_file_names_that_could_leave_the_folder_are_refused(tmp_path):
    folder = ModelFolder(tmp_path)
    write_model(tmp_path / "model.gguf")
    assert folder.find("model").path == tmp_path / "model.gguf"
    for model_id in ("../model", "a/b", "..", ".hidden", "x\\y", "", "model\x00"):
        with pytest.raises(InvalidName):
            folder.find(model_id)
    with pytest.raises(NotFound):
        folder.find("missing")
    for name in ("model.bin", "../x.gguf", "a/b.gguf"):
        with pytest.raises(InvalidName):
            check_file_name(name)
    assert check_file_name("model-Q4_K_M.gguf") == "model-Q4_K_M.gguf"
