"""`offgrid convert PATH`: a Hugging Face BERT sentence-embedding model (safetensors) to a GGUF
file, by default in the models folder. The converter, and the gguf package it needs, load only
when this command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import Settings
from . import terminal

# convert.OUTTYPES, named here so that building the parser does not import gguf
OUTTYPES = ("q8_0", "f16")


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add the `convert` command to the main parser; `common` holds the flags every command
    takes."""
    parser = commands.add_parser(
        "convert", parents=[common],
        help="convert a Hugging Face BERT embedding model (safetensors) to GGUF")
    parser.add_argument("path", help="a folder, or a zip of one, holding config.json, "
                                     "model.safetensors and tokenizer.json")
    parser.add_argument("--outtype", choices=OUTTYPES, default="q8_0",
                        help="type of the weight matrices (default q8_0)")
    parser.add_argument("--output", type=Path,
                        help="the .gguf file to write (default: NAME-OUTTYPE.gguf in the models "
                             "folder, NAME from the folder or zip)")
    parser.set_defaults(command=_convert)


def _convert(args, settings: Settings) -> int:
    try:
        from ..models import convert
    except ImportError as error:
        return terminal.fail(f"convert needs the {error.name} package: "
                             "pip install 'offgrid[server]'")
    source = Path(args.path)
    try:
        output = args.output or convert.default_output(source, args.outtype, settings.models_dir)
        written = convert.convert(source, output, args.outtype, progress=_show)
    except (convert.ConvertError, OSError) as error:
        return terminal.fail(f"cannot convert {source}: {error}")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return terminal.fail("interrupted: nothing was written", 130)
    print(f"converted {source} -> {written}")
    return 0


def _show(step: str, done: int, total: int) -> None:
    """A line per step; a step with parts draws a bar."""
    if not total:
        print(f"{step} ...", file=sys.stderr, flush=True)
    else:
        terminal.progress(step, done, total, f"{done}/{total}", end=done == total)
