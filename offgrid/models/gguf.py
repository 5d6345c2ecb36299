"""Read what a GGUF file says about itself, from its header, without loading it.

Format: magic `GGUF`, version, tensor count, metadata count, then typed key/value metadata, then
one record per tensor (name, shape, type, offset). Everything little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"

# llama.cpp's `general.file_type` values (enum llama_ftype).
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class GgufError(ValueError):
    """The file is not a GGUF model, or is cut short."""


@dataclass(frozen=True)
class GgufInfo:
    architecture: str
    parameters: int  # summed over this file's tensors
    quantization: str | None
    context_length: int | None
    has_chat_template: bool
    is_embedding: bool  # sentence-embedding models declare how to pool
    # per layer, for memory estimates
    layers: int
    embedding_length: int
    heads: int
    kv_heads: int
    # every key with a string, number or boolean value (arrays are skipped), as the file has it
    metadata: dict = field(default_factory=dict, compare=False, repr=False)
    # tensor name -> shape (ggml's order: the row length first), to check a LoRA adapter's fit
    tensors: dict = field(default_factory=dict, compare=False, repr=False)


def is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


def read(path: Path) -> GgufInfo:
    with open(path, "rb") as f:
        try:
            info = _read(_Reader(f))
            if f.tell() > Path(path).stat().st_size:
                raise struct.error("header runs past the end of the file")
            return info
        except (struct.error, UnicodeDecodeError, OverflowError, MemoryError, OSError):
            raise GgufError(f"{Path(path).name} is cut short or corrupt") from None


def _read(reader: "_Reader") -> GgufInfo:
    if reader.bytes(4) != MAGIC:
        raise GgufError("not a GGUF file (wrong magic bytes)")
    version = reader.scalar("<I")
    if version not in (2, 3):
        raise GgufError(f"GGUF version {version} is not supported")
    n_tensors, n_metadata = reader.scalar("<Q"), reader.scalar("<Q")
    metadata = {}
    for _ in range(n_metadata):
        key = reader.string()
        metadata[key] = reader.value(reader.scalar("<I"))
    parameters, tensors = 0, {}
    for _ in range(n_tensors):
        name = reader.string()
        shape = tuple(reader.scalar("<Q") for _ in range(reader.scalar("<I")))
        tensors[name] = shape
        reader.scalar("<I")  # element type
        reader.scalar("<Q")  # data offset
        count = 1
        for dim in shape:
            count *= dim
        parameters += count
    arch = str(metadata.get("general.architecture", "unknown"))
    heads = int(metadata.get(f"{arch}.attention.head_count", 0) or 0)
    return GgufInfo(
        architecture=arch, parameters=parameters,
        quantization=FILE_TYPES.get(metadata.get("general.file_type")),
        context_length=metadata.get(f"{arch}.context_length"),
        has_chat_template="tokenizer.chat_template" in metadata,
        is_embedding=f"{arch}.pooling_type" in metadata,
        layers=int(metadata.get(f"{arch}.block_count", 0)),
        embedding_length=int(metadata.get(f"{arch}.embedding_length", 0)),
        heads=heads, kv_heads=int(metadata.get(f"{arch}.attention.head_count_kv", heads) or 0),
        metadata={key: value for key, value in metadata.items() if value is not None},
        tensors=tensors)


class _Reader:
    def __init__(self, file):
        self._file = file

    def bytes(self, n: int) -> bytes:
        data = self._file.read(n)
        if len(data) != n:
            raise struct.error("end of file")
        return data

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.bytes(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.bytes(self.scalar("<Q")).decode("utf-8")

    def skip(self, n: int) -> None:
        self._file.seek(n, 1)

    def value(self, kind: int):
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:  # no array is needed, and tokenizer arrays are long: skip them
            item_kind, count = self.scalar("<I"), self.scalar("<Q")
            if item_kind in _SCALARS:
                self.skip(struct.calcsize(_SCALARS[item_kind]) * count)
            elif item_kind == _STRING:
                for _ in range(count):
                    self.skip(self.scalar("<Q"))
            else:
                for _ in range(count):
                    self.value(item_kind)
            return None
        raise GgufError(f"unknown metadata type {kind}")
