"""Pooled sentence embeddings, many inputs evaluated together in one batch.

One worker thread owns the embedding context, so HTTP threads never touch llama.cpp. The context
uses a unified KV buffer: with per-sequence buffers llama.cpp pools all but the last sequence of a
batch wrongly.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import EmptyPrompt, PromptTooLong
from .llama import (
    POOLING_MEAN,
    POOLING_NONE,
    POOLING_UNSPECIFIED,
    Batch,
    Context,
    Model,
    release_compute_threads,
)

MAX_SEQUENCES_PER_BATCH = 16


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[np.ndarray]  # unit length, one per input, in input order
    prompt_tokens: int


class Embedder:
    def __init__(self, model: Model, *, max_context: int, threads: int):
        self.model = model
        self.max_input_tokens = min(model.n_ctx_train or max_context, max_context)
        self._ctx = self._context(POOLING_UNSPECIFIED, threads)
        if self._ctx.pooling == POOLING_NONE:  # a generative model: average its token states
            self._ctx.close()
            self._ctx = self._context(POOLING_MEAN, threads)
        self._batch = Batch(self.max_input_tokens)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"embedder:{model.path.stem}")
        self._lock = threading.Lock()
        self.in_flight = 0
        self.last_active = time.monotonic()

    def _context(self, pooling: int, threads: int) -> Context:
        # Non-causal encoders need a whole sequence in one micro-batch: batch = context size.
        return Context(self.model, n_ctx=self.max_input_tokens, n_batch=self.max_input_tokens,
                       n_seq=MAX_SEQUENCES_PER_BATCH, n_threads=threads, embeddings=True,
                       pooling=pooling, kv_unified=True)

    def embed(self, inputs: list[str | list[int]]) -> EmbeddingResult:
        """Embed each text (or token array); blocks until the worker is done."""
        with self._lock:
            self.in_flight += 1
        try:
            return self._worker.submit(self._embed, inputs).result()
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_active = time.monotonic()

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self._batch.close()
        self._ctx.close()

    def _embed(self, inputs: list[str | list[int]]) -> EmbeddingResult:
        token_lists = [self._tokens(item, index, len(inputs)) for index, item in enumerate(inputs)]
        vectors: list[np.ndarray] = []
        try:
            for group in self._groups(token_lists):
                vectors.extend(self._evaluate(group))
        finally:
            release_compute_threads()  # an idle team would slow the chat models' decoding
        return EmbeddingResult(vectors, sum(map(len, token_lists)))

    def _tokens(self, item: str | list[int], index: int, count: int) -> list[int]:
        tokens = self.model.tokenize(item) if isinstance(item, str) else item
        what = "input" if count == 1 else f"input at index {index}"
        if not tokens:
            raise EmptyPrompt()
        if len(tokens) > self.max_input_tokens:
            raise PromptTooLong(len(tokens), self.max_input_tokens, what)
        return tokens

    def _groups(self, token_lists: list[list[int]]):
        """Split inputs into runs that fit one batch: tokens within capacity, sequences too."""
        group: list[list[int]] = []
        size = 0
        for tokens in token_lists:
            if group and (size + len(tokens) > self._batch.capacity
                          or len(group) == MAX_SEQUENCES_PER_BATCH):
                yield group
                group, size = [], 0
            group.append(tokens)
            size += len(tokens)
        if group:
            yield group

    def _evaluate(self, group: list[list[int]]) -> list[np.ndarray]:
        self._ctx.clear()
        self._batch.clear()
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                self._batch.add(token, pos, seq, True)
        self._ctx.decode(self._batch)  # llama.cpp runs encoder-only models through their encoder
        return [_unit(self._ctx.sequence_embedding(seq)) for seq in range(len(group))]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
