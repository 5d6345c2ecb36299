"""LoRA adapter files for the tests, written with the `gguf` package the way llama.cpp's
convert_lora_to_gguf.py writes them: general.type "adapter", adapter.type "lora",
adapter.lora.alpha, and a `<base tensor>.lora_a` / `.lora_b` pair per changed matrix."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from offgrid.models import gguf as header

RANK = 4
ALPHA = 8.0


def write_adapter(path: Path, base: Path, *, seed: int, layers: range = range(4),
                  matrices: tuple[str, ...] = ("attn_q", "attn_v"), std: float = 0.2,
                  architecture: str | None = None, widen: int = 0) -> Path:
    """A rank-4 adapter for the model file `base`, random but fixed by `seed`, with values
    large enough to change its answers. `architecture` and `widen` (extra input columns) make
    one that claims to be for another model."""
    info = header.read(base)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), architecture or info.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, ALPHA)
    writer.add_name(path.stem.replace("-", " "))
    writer.add_string("general.base_model.0.name", str(info.metadata.get("general.name")))
    for layer in layers:
        for matrix in matrices:
            name = f"blk.{layer}.{matrix}.weight"
            n_in, n_out = info.tensors[name]  # ggml's order: the row length first
            # numpy's shapes are ggml's reversed: lora_a is (rank, in), lora_b (out, rank)
            writer.add_tensor(f"{name}.lora_a", rng.normal(0, std, (RANK, n_in + widen))
                              .astype(np.float32))
            writer.add_tensor(f"{name}.lora_b", rng.normal(0, std, (n_out, RANK))
                              .astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
