"""`offgrid serve`: the API server, with its settings as flags (each overrides the config file
and the environment)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import ConfigError, Settings
from ..engine.errors import RpcUnavailable, RpcWorkerUnreachable
from ..store.errors import Unavailable


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add the `serve` command to the main parser; `common` holds the flags every command
    takes. A flag whose dest is a setting's name overrides that setting."""
    serve = commands.add_parser("serve", parents=[common], help="start the API server")
    serve.set_defaults(command=_serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 11611)")
    serve.add_argument("--ollama-port", dest="ollama_port", type=int,
                       help="a second port with the same API, for clients that assume "
                            "Ollama's (11434)")
    serve.add_argument("--model", dest="default_model", help="default model id, loaded at start")
    serve.add_argument("--max-context", dest="max_context", type=int,
                       help="context tokens per parallel slot (default 4096)")
    serve.add_argument("--parallel", type=int, help="requests decoded together (default 4)")
    serve.add_argument("--threads", dest="num_threads", type=int, help="CPU threads")
    serve.add_argument("--batch-size", dest="batch_size", type=int,
                       help="most tokens evaluated per step (default 512)")
    serve.add_argument("--queue-size", dest="queue_size", type=int,
                       help="requests that may wait for a slot before 503 (default 64)")
    serve.add_argument("--no-speculative", dest="speculative", action="store_const",
                       const=False, help="never draft tokens ahead from the prompt "
                                         "(speculative decoding is on by default)")
    serve.add_argument("--draft-model", dest="draft_model",
                       help="id of a smaller model with the same vocabulary that guesses the "
                            "next tokens, for the chat model to check (speculative decoding)")
    serve.add_argument("--max-models", dest="max_models", type=int,
                       help="models loaded at once (default 3)")
    serve.add_argument("--keep-alive", dest="keep_alive",
                       help='how long an idle model stays loaded: "5m", "30s", -1 for ever')
    serve.add_argument("--replica-name", dest="replica_name",
                       help="this server's name among replicas behind a load balancer")
    serve.add_argument("--rpc", dest="rpc_servers", metavar="HOST:PORT,...",
                       help="llama.cpp rpc-server workers to spread every model over, with "
                            "this machine (docs/scale-out.md)")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])


def _serve(args, settings: Settings) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # numpy's OpenBLAS would run a knowledge-base search on a thread per core, which then
    # spins for about 100 ms: a search every 0.25 s slowed chat by 15-45% on 2 cores. The cores
    # are llama.cpp's; a search on one is a few milliseconds. Read when numpy loads, just below.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..server.app import serve  # the server's dependencies load only when serving

    try:
        return serve(settings)
    except (ConfigError, RpcUnavailable, RpcWorkerUnreachable) as error:
        print(f"offgrid: {error}", file=sys.stderr)
        return 2
    except Unavailable as error:  # a database_url nobody answers at
        print(f"offgrid: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"offgrid: cannot listen on {settings.host}:{settings.port}: {error}",
              file=sys.stderr)
        return 1
