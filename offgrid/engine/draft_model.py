"""A draft model: a smaller model with the chat model's vocabulary that guesses a slot's next
tokens greedily, for the scheduler to check in its step the way it checks drafts found in the
slot's history (speculative.py). Whatever it guesses, the answer is the chat model's own: a
guess is kept only where it is the token the chat model sampled.

It has a context of its own, with one sequence per slot of the chat model's scheduler holding
what it last read of that slot's history. Before guessing it catches each sequence up with the
history (the prefix they share stays), then takes as many greedy steps as asked, all slots in
one batch a step.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .kvcache import common_prefix
from .llama import Batch, Context, LlamaError, Model
from .speculative import StepCost

log = logging.getLogger("offgrid.draft_model")

VOCABULARY_PROBES = 512  # tokens compared between the two vocabularies, spread over them


def vocabulary_mismatch(chat: Model, draft: Model) -> str | None:
    """Why `draft` cannot guess tokens for `chat`, or None if their vocabularies agree (same
    size, the same bytes for tokens spread over it, the same end of text)."""
    if draft.n_vocab != chat.n_vocab:
        return f"its vocabulary has {draft.n_vocab} tokens, not {chat.n_vocab}"
    if draft.end_token != chat.end_token:
        return f"its end-of-text token is {draft.end_token}, not {chat.end_token}"
    step = max(1, chat.n_vocab // VOCABULARY_PROBES)
    for token in range(0, chat.n_vocab, step):
        if draft.token_bytes(token) != chat.token_bytes(token):
            return (f"its token {token} is {draft.token_bytes(token)!r}, "
                    f"not {chat.token_bytes(token)!r}")
    return None


class DraftModel:
    """Greedy guesses from `model` for the sequences of a scheduler with `slots` slots."""

    def __init__(self, model: Model, *, slots: int, ctx_per_slot: int, batch_size: int,
                 threads: int):
        self.model = model
        self._ctx = Context(model, n_ctx=ctx_per_slot * slots, n_batch=max(batch_size, slots),
                            n_seq=slots, n_threads=threads)
        self._batch = Batch(max(batch_size, slots))
        self._read: list[list[int]] = [[] for _ in range(slots)]  # tokens each sequence holds
        self.cost = StepCost()  # one greedy step, by the slots in it

    def guess(self, histories: dict[int, list[int]], depth: int) -> dict[int, list[int]]:
        """`depth` tokens guessed to follow each sequence's history; none if the draft model
        failed (then it starts over: its sequences may be half-written)."""
        try:
            return self._guess(histories, depth)
        except LlamaError as error:
            log.warning("the draft model %s failed: %s", self.model.path.name, error)
            self._ctx.clear()
            self._read = [[] for _ in self._read]
            return {}

    def _guess(self, histories: dict[int, list[int]], depth: int) -> dict[int, list[int]]:
        rows = self._catch_up(histories)
        guesses: dict[int, list[int]] = {seq: [] for seq in histories}
        for step in range(depth):
            for seq, row in rows.items():
                guesses[seq].append(int(np.argmax(self._ctx.logits(row))))
            if step + 1 < depth:
                self._batch.clear()
                rows = {seq: self._feed(seq, guesses[seq][-1], True) for seq in histories}
                self._decode(timed=True)
        return guesses

    def _catch_up(self, histories: dict[int, list[int]]) -> dict[int, int]:
        """Bring each sequence up to its history; the row of each one's last token, whose
        logits give its first guess. All but the last tokens go first, in as many batches as
        they need, so that the last ones share one batch and their logits are all there."""
        tails = {}
        for seq, history in histories.items():
            keep = min(common_prefix(self._read[seq], history), len(history) - 1)
            if not self._ctx.forget(seq, keep):
                self._ctx.forget(seq, -1)
                keep = 0
            del self._read[seq][keep:]
            tails[seq] = history[keep:]
        self._batch.clear()
        for seq, tail in tails.items():
            for token in tail[:-1]:
                if len(self._batch) == self._batch.capacity:
                    self._decode(timed=False)
                    self._batch.clear()
                self._feed(seq, token, False)
        if len(self._batch):
            self._decode(timed=False)
            self._batch.clear()
        rows = {seq: self._feed(seq, tail[-1], True) for seq, tail in tails.items()}
        self._decode(timed=True)
        return rows

    def _feed(self, seq: int, token: int, want_logits: bool) -> int:
        row = self._batch.add(token, len(self._read[seq]), seq, want_logits)
        self._read[seq].append(token)
        return row

    def _decode(self, timed: bool) -> None:
        started = time.perf_counter()
        self._ctx.decode(self._batch)
        if timed and self._ctx.one_pass(self._batch):
            self.cost.observe(len(self._batch), time.perf_counter() - started)

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()
