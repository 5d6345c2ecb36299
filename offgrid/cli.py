"""The `offgrid` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__, cli_users
from .config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return args.command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offgrid", description="An offline LLM server.")
    parser.add_argument("--version", action="version", version=f"offgrid {__version__}")
    commands = parser.add_subparsers(title="commands")
    serve = commands.add_parser("serve", help="start the API server")
    serve.set_defaults(command=_serve)
    serve.add_argument("--config", help="TOML config file (default: $OFFGRID_HOME/config.toml)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 11611)")
    serve.add_argument("--models-dir", dest="models_dir", help="folder of .gguf models")
    serve.add_argument("--model", dest="default_model", help="default model id, loaded at start")
    serve.add_argument("--max-context", dest="max_context", type=int,
                       help="context tokens per parallel slot (default 4096)")
    serve.add_argument("--parallel", type=int, help="requests decoded together (default 4)")
    serve.add_argument("--threads", dest="num_threads", type=int, help="CPU threads")
    serve.add_argument("--batch-size", dest="batch_size", type=int,
                       help="most tokens evaluated per step (default 512)")
    serve.add_argument("--queue-size", dest="queue_size", type=int,
                       help="requests that may wait for a slot before 503 (default 64)")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    cli_users.register(commands)
    return parser


_SETTING_FLAGS = ("host", "port", "models_dir", "default_model", "max_context", "parallel",
                  "num_threads", "batch_size", "queue_size")


def _serve(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load({name: getattr(args, name) for name in _SETTING_FLAGS},
                                 config_file=Path(args.config) if args.config else None)
    except ConfigError as error:
        print(f"offgrid: {error}", file=sys.stderr)
        return 2
    from .server.app import serve  # the server's dependencies load only when serving

    try:
        return serve(settings)
    except ConfigError as error:
        print(f"offgrid: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"offgrid: cannot listen on {settings.host}:{settings.port}: {error}",
              file=sys.stderr)
        return 1
