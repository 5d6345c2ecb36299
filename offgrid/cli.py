"""The `offgrid` command: an argparse front; the work is done in server/ and commands/."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .commands import chat, convert, models, users
from .config import ConfigError, Settings

# serve's flags that are settings: each overrides the config file and the environment
_SETTING_FLAGS = ("host", "port", "models_dir", "default_model", "max_context", "parallel",
                  "num_threads", "batch_size", "queue_size", "max_models", "keep_alive")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.load({name: getattr(args, name, None) for name in _SETTING_FLAGS},
                                 config_file=Path(args.config) if args.config else None)
    except ConfigError as error:
        print(f"offgrid: {error}", file=sys.stderr)
        return 2
    return args.command(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offgrid", description="An offline LLM server.")
    parser.add_argument("--version", action="version", version=f"offgrid {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (default: $OFFGRID_HOME/config.toml)")
    common.add_argument("--models-dir", dest="models_dir", help="folder of .gguf models")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="start the API server")
    serve.set_defaults(command=_serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 11611)")
    serve.add_argument("--model", dest="default_model", help="default model id, loaded at start")
    serve.add_argument("--max-context", dest="max_context", type=int,
                       help="context tokens per parallel slot (default 4096)")
    serve.add_argument("--parallel", type=int, help="requests decoded together (default 4)")
    serve.add_argument("--threads", dest="num_threads", type=int, help="CPU threads")
    serve.add_argument("--batch-size", dest="batch_size", type=int,
                       help="most tokens evaluated per step (default 512)")
    serve.add_argument("--queue-size", dest="queue_size", type=int,
                       help="requests that may wait for a slot before 503 (default 64)")
    serve.add_argument("--max-models", dest="max_models", type=int,
                       help="models loaded at once (default 3)")
    serve.add_argument("--keep-alive", dest="keep_alive",
                       help='how long an idle model stays loaded: "5m", "30s", -1 for ever')
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])

    run = commands.add_parser("run", parents=[common], help="chat with a model in the terminal")
    run.add_argument("model")
    run.add_argument("--temperature", type=float, help="sampling temperature (default 0.7)")
    run.add_argument("--seed", type=int, help="same seed, same answers")
    run.add_argument("--max-tokens", dest="max_tokens", type=int,
                     help="longest answer (default: as long as the context allows)")
    run.set_defaults(command=lambda a, s: chat.run(s, a.model, {
        name: getattr(a, name) for name in ("temperature", "seed", "max_tokens")
        if getattr(a, name) is not None}))

    listing = commands.add_parser("list", parents=[common], help="list the models")
    listing.set_defaults(command=lambda a, s: models.list_models(s))
    remove = commands.add_parser("rm", parents=[common], help="delete a model")
    remove.add_argument("model")
    remove.set_defaults(command=lambda a, s: models.remove(s, a.model))
    info = commands.add_parser("info", parents=[common],
                               help="CPU, memory, llama.cpp build and models folder")
    info.set_defaults(command=lambda a, s: models.info(s))

    pull = commands.add_parser("pull", parents=[common],
                               help="download a GGUF model from Hugging Face (or HF_ENDPOINT)")
    pull.add_argument("repository", help="owner/name")
    pull.add_argument("file", nargs="?", help="file name (default: its Q4_K_M, else first GGUF)")
    pull.set_defaults(command=lambda a, s: models.pull(s, a.repository, a.file))
    search = commands.add_parser("search", parents=[common], help="search the hub for GGUF models")
    search.add_argument("query")
    search.set_defaults(command=lambda a, s: models.search(s, a.query))

    importing = commands.add_parser("import", parents=[common],
                                    help="copy models from a folder or USB drive")
    importing.add_argument("path")
    importing.set_defaults(command=lambda a, s: models.import_models(s, a.path))
    export = commands.add_parser("export", parents=[common],
                                 help="copy a model and a sha256 manifest to a folder")
    export.add_argument("model")
    export.add_argument("path")
    export.set_defaults(command=lambda a, s: models.export_model(s, a.model, a.path))
    users.register(commands, common)
    convert.register(commands, common)
    return parser


def _serve(args, settings: Settings) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
