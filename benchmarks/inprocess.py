"""The in-process limit: the batched llama_decode loop with no server around it. B sequences
read a prompt together, then generate one token each per decode, greedily."""

from __future__ import annotations

import time
from pathlib import Path

from offgrid.engine.llama import Batch, Context, Model, SamplerChain


def measure(model_path: Path, batch_sizes: list[int], prompt: str, new_tokens: int,
            threads: int, ctx_per_sequence: int) -> dict[int, dict]:
    model = Model(model_path)
    results = {}
    try:
        for size in batch_sizes:
            results[size] = _one(model, size, prompt, new_tokens, threads, ctx_per_sequence)
    finally:
        model.close()
    return results


def _one(model: Model, size: int, prompt: str, new_tokens: int, threads: int,
         ctx_per_sequence: int) -> dict:
    tokens = model.tokenize(prompt)
    context = Context(model, n_ctx=ctx_per_sequence * size, n_batch=512, n_seq=size,
                      n_threads=threads)
    batch = Batch(max(512, size * len(tokens)))
    samplers = [SamplerChain().greedy() for _ in range(size)]
    try:
        started = time.perf_counter()
        rows = []
        for seq in range(size):
            for pos, token in enumerate(tokens):
                row = batch.add(token, pos, seq, pos == len(tokens) - 1)
            rows.append(row)
        context.decode(batch)
        next_tokens = [samplers[s].sample(context, rows[s]) for s in range(size)]
        generation_started = time.perf_counter()
        for step in range(1, new_tokens):
            batch.clear()
            for seq, token in enumerate(next_tokens):
                batch.add(token, len(tokens) + step - 1, seq, True)
            context.decode(batch)
            next_tokens = [samplers[s].sample(context, s) for s in range(size)]
        finished = time.perf_counter()
    finally:
        for sampler in samplers:
            sampler.close()
        batch.close()
        context.close()
    generated = size * new_tokens
    return {"with_prompt": generated / (finished - started),
            "generation_only": size * (new_tokens - 1) / (finished - generation_started)}
