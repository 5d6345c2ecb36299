"""The `offgrid` command: an argparse front. Each module in commands/ adds its own subcommands
and does their work."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from . import __version__
from .commands import agents, chat, convert, db, kb, models, serve, users
from .config import ConfigError, Settings

COMMANDS = (serve, chat, models, kb, agents, users, db, convert)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    # A flag whose dest is a setting's name overrides the config file and the environment.
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)
                 if getattr(args, f.name, None) is not None}
    try:
        settings = Settings.load(overrides,
                                 config_file=Path(args.config) if args.config else None)
    except ConfigError as error:
        print(f"offgrid: {error}", file=sys.stderr)
        return 2
    try:
        return args.command(args, settings)
    except BrokenPipeError:  # `offgrid list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offgrid", description="An offline LLM server.")
    parser.add_argument("--version", action="version", version=f"offgrid {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (default: $OFFGRID_HOME/config.toml)")
    common.add_argument("--models-dir", dest="models_dir", help="folder of .gguf models")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands, common)
    return parser
