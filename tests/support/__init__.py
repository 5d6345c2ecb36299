"""What the tests share besides fixtures (tests/conftest.py holds those): the test models' ids,
servers started as processes, HTTP and raw-socket helpers, one `wait_until`, one runner for the
`offgrid` command, /metrics readers, multi-user sites and a Hugging Face Hub mirror."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]  # the repository


def script(name: str) -> ModuleType:
    """scripts/<name>.py, imported once (with scripts/ on the path, for what they share)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.append(str(ROOT / "scripts"))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
