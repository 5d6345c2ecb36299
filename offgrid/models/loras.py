"""The LoRA adapters folder (`loras/` inside the models folder): the GGUF adapter files in it,
what their headers say (architecture, base model, alpha, rank), and whether one fits a model.

An adapter's id is its file name without `.gguf`. A request may name an adapter by its id or by
the name its header gives (`general.name`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import gguf

FOLDER_NAME = "loras"
_A, _B = ".lora_a", ".lora_b"


@dataclass(frozen=True)
class LoraFile:
    id: str
    path: Path
    name: str  # general.name, else the id
    architecture: str | None
    base_model: str | None  # general.base_model.0.name, when the converter wrote it
    alpha: float | None  # adapter.lora.alpha; llama.cpp scales by alpha / rank when it is set
    rank: int | None
    tensors: dict  # the base tensors it changes -> (lora_a shape, lora_b shape)
    error: str | None = None  # why it is not a usable LoRA adapter

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "path": str(self.path), "scale": 1.0,
                "base_model": self.base_model, "architecture": self.architecture,
                "alpha": self.alpha, "rank": self.rank, "error": self.error}

    def misfit(self, model: gguf.GgufInfo | None) -> str | None:
        """Why this adapter cannot go on a model with these header facts; None if it fits."""
        if self.error:
            return self.error
        if model is None:
            return None  # llama.cpp's own checks decide
        if self.architecture != model.architecture:
            return (f"it is for a {self.architecture} model, not {model.architecture} "
                    f"(base model {self.base_model or 'not named'})")
        for name, (a, b) in self.tensors.items():
            shape = model.tensors.get(name)
            if shape is None:
                return f"the model has no tensor {name}"
            if len(shape) != 2 or shape[0] != a[0] or shape[1] != b[1]:
                return (f"its {name} changes a {a[0]}x{b[1]} matrix, the model's is "
                        f"{'x'.join(map(str, shape))}")
        return None


def read(path: Path) -> LoraFile:
    adapter_id = path.name[:-len(".gguf")]
    try:
        info = gguf.read(path)
    except (gguf.GgufError, OSError) as error:
        return LoraFile(adapter_id, path, adapter_id, None, None, None, None, {}, str(error))
    meta = info.metadata
    tensors = _pairs(info.tensors)
    ranks = {a[1] for a, _ in tensors.values()}
    error = None
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        error = "not a LoRA adapter (general.type 'adapter', adapter.type 'lora')"
    elif not tensors:
        error = "it has no lora_a / lora_b tensor pairs"
    alpha = meta.get("adapter.lora.alpha")
    return LoraFile(adapter_id, path, str(meta.get("general.name") or adapter_id),
                    meta.get("general.architecture"), meta.get("general.base_model.0.name"),
                    float(alpha) if isinstance(alpha, (int, float)) else None,
                    ranks.pop() if len(ranks) == 1 else None, tensors, error)


def _pairs(tensors: dict) -> dict:
    """base tensor name -> (lora_a shape, lora_b shape), for the names with both halves."""
    pairs = {}
    for name, shape in tensors.items():
        if name.endswith(_A) and name[:-len(_A)] + _B in tensors:
            pairs[name[:-len(_A)]] = (shape, tensors[name[:-len(_A)] + _B])
    return pairs


class LoraFolder:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._headers: dict[tuple, LoraFile] = {}  # (path, size, mtime) -> what it says

    def files(self) -> list[LoraFile]:
        if not self.folder.is_dir():
            return []
        return [self._read(path) for path in sorted(self.folder.glob("*.gguf"))
                if not path.name.startswith(".") and path.is_file()]

    def find(self, key: str) -> LoraFile | None:
        """The adapter with this id, else the first with this name; None if there is none."""
        files = self.files()
        return next((f for f in files if f.id == key), None) or next(
            (f for f in files if f.name == key), None)

    def _read(self, path: Path) -> LoraFile:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime)
        if key not in self._headers:
            self._headers[key] = read(path)
        return self._headers[key]
