"""What one decode step costs by its shape, with a KV buffer per sequence (OffGrid's chat
contexts) and with one unified buffer: llama.cpp splits a batch into micro-batches of equal token
counts over consecutive sequence ids when each sequence has its own buffer, and computes it in
one pass when the buffer is shared. Four sequences hold a prompt; each shape is decoded on top
of it and taken back, and the median of `--repeats` steps is printed (lowest–highest over
`--rounds` rounds, the layouts taking turns).

    python benchmarks/kv_layout.py MODEL.gguf [--threads 2] [--cached 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offgrid.engine.llama import Batch, Context, Model  # noqa: E402

SEQUENCES = 4
# name: (sequence, tokens) fed in that order
SHAPES = {
    "4 x 1 token": [(s, 1) for s in range(SEQUENCES)],
    "4 x 1, a 3-token draft on one": [(0, 4), (1, 1), (2, 1), (3, 1)],
    "sequences 0, 2, 3": [(0, 1), (2, 1), (3, 1)],
    "sequences 0, 1, 2": [(0, 1), (1, 1), (2, 1)],
    "4 x 1, a 16-token prompt chunk on one": [(0, 1), (1, 1), (2, 1), (3, 17)],
    "4 x 2 tokens": [(s, 2) for s in range(SEQUENCES)],
}
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle. " * 80


def step_ms(model: Model, unified: bool, threads: int, cached: int, repeats: int
            ) -> dict[str, float]:
    prompt = model.tokenize(PROMPT)[:cached]
    capacity = max(512, cached)
    context = Context(model, n_ctx=SEQUENCES * 2048, n_batch=capacity, n_seq=SEQUENCES,
                      n_threads=threads, kv_unified=unified)
    batch = Batch(capacity)
    try:
        for seq in range(SEQUENCES):
            batch.clear()
            for pos, token in enumerate(prompt):
                batch.add(token, pos, seq, pos == len(prompt) - 1)
            context.decode(batch)
        medians = {}
        for name, shape in SHAPES.items():
            times = []
            for _ in range(repeats):
                batch.clear()
                for seq, count in shape:
                    for i in range(count):
                        batch.add(prompt[i], len(prompt) + i, seq, True)
                started = time.perf_counter()
                context.decode(batch)
                times.append(time.perf_counter() - started)
                for seq, _ in shape:
                    context.forget(seq, len(prompt))
            medians[name] = statistics.median(times) * 1000
        return medians
    finally:
        batch.close()
        context.close()


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.1f}" if high - low < 0.05 else f"{low:.1f}–{high:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cached", type=int, default=60, help="prompt tokens per sequence")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = Model(args.model)
    try:
        runs: dict[str, list[dict[str, float]]] = {"per sequence": [], "unified": []}
        for _ in range(args.rounds):
            for layout, results in runs.items():
                results.append(step_ms(model, layout == "unified", args.threads, args.cached,
                                       args.repeats))
    finally:
        model.close()
    print(f"| step ({args.cached} tokens cached per sequence) | "
          + " | ".join(f"{layout} ms" for layout in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for name in SHAPES:
        print(f"| {name} | " + " | ".join(spread([r[name] for r in results])
                                          for results in runs.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
