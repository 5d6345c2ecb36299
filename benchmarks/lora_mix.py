"""The cost of mixing LoRA adapter sets: 4 requests at once on one scheduler, all under one
adapter set, then two sets (2 requests each), then no adapter; generated tokens per second.
Writes its two adapters with tests/support/lora.py.

    python benchmarks/lora_mix.py MODEL.gguf [--threads 2] [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from offgrid.engine.llama import LoraAdapter, Model  # noqa: E402
from offgrid.engine.requests import Failed, Finished, GenerationRequest  # noqa: E402
from offgrid.engine.sampling import SamplingParams  # noqa: E402
from offgrid.engine.scheduler import Scheduler  # noqa: E402
from support.lora import write_adapter  # noqa: E402

A, B = (("a", 1.0),), (("b", 1.0),)
CASES = {"no adapter": [()] * 4, "one set": [A] * 4, "two sets": [A, A, B, B]}


def tokens_per_second(scheduler: Scheduler, sets: list, tokens: int) -> float:
    events: queue.SimpleQueue = queue.SimpleQueue()
    started = time.monotonic()
    for index, adapters in enumerate(sets):
        request = GenerationRequest(prompt=f"Story {index}: once upon a time",
                                    sampling=SamplingParams(temperature=0.0, seed=index),
                                    max_tokens=tokens, adapters=adapters)
        scheduler.submit(request, events, index)
    generated, ended = 0, 0
    while ended < len(sets):
        _, event = events.get()
        if isinstance(event, (Finished, Failed)):
            ended += 1
            generated += event.completion_tokens if isinstance(event, Finished) else 0
    return generated / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = Model(args.model)
    with tempfile.TemporaryDirectory() as folder:
        adapters = {name: LoraAdapter(model, write_adapter(Path(folder) / f"{name}.gguf",
                                                           args.model, seed=seed, std=0.05))
                    for seed, name in enumerate("ab")}
    scheduler = Scheduler(model, slots=4, ctx_per_slot=512, batch_size=512,
                          threads=args.threads, queue_size=0, adapters=adapters)
    try:
        tokens_per_second(scheduler, CASES["one set"], 8)  # warm up
        for name, sets in CASES.items():
            rates = [tokens_per_second(scheduler, sets, args.tokens) for _ in range(args.rounds)]
            print(f"{name:>10}: {max(rates):6.1f} tokens/s (best of {args.rounds}; "
                  f"{', '.join(f'{r:.1f}' for r in rates)})")
    finally:
        scheduler.close()
        for adapter in adapters.values():
            adapter.close()
        model.close()


if __name__ == "__main__":
    main()
