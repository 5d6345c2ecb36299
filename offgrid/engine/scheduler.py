"""Continuous batching: one thread per loaded model drives all of its requests together. What a
request is and the events it gets back are in requests.py.

Each step builds ONE llama_batch holding the next token of every slot that is generating plus
prompt chunks of slots still reading their prompt, so a new request starts while others stream.
A slot keeps its KV cache after its request ends; the next request whose prompt shares the longest
prefix with it goes there and only the rest of its prompt is decoded. Before a slot drops a long
prefix, and when the scheduler closes, its state goes to the KV cache (kvcache.py); a request
that shares more with a kept state than with any slot restores that state instead of decoding.

LoRA adapters apply to the whole llama.cpp context, not to one sequence: a step decodes only the
slots whose adapter set (adapters and scales) is the same, and the sets take turns
(adapter_turns.py). A cached prefix is reused only under the adapter set it was computed with.

A generating slot may also feed a draft of its next tokens after its next token, guessed from its
own history (speculative.py) or by a draft model (draft_model.py); the rows are sampled in order
and the drafted tokens kept while each is what was sampled, so the output is what plain decoding
gives.

A second thread prepares new requests (chat template, tokenizer, sampler and grammar), so that a
slow one never stalls the streams being decoded. Whatever goes wrong with one request fails that
request alone; if a loop dies anyway, the scheduler fails what it holds, marks itself `failure`
and refuses new work, and its model makes a new one (LoadedModel.generator).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .adapter_turns import NO_ADAPTERS, AdapterSet, AdapterTurns
from .draft_model import DraftModel
from .errors import (
    DecodeFailed,
    EmptyPrompt,
    EngineClosed,
    EngineError,
    FillInTheMiddleUnsupported,
    PromptTooLong,
    QueueFull,
    RequestFailed,
    SchedulerFailed,
)
from .kvcache import KVCache, common_prefix, model_identity, worth_copying
from .llama import Batch, Context, LlamaError, LoraAdapter, Model, release_compute_threads
from .requests import (
    NOTHING_DONE,
    Failed,
    Finished,
    Generation,
    GenerationRequest,
    Started,
    Text,
)
from .sampling import OutputText, TokenLogprob, build_sampler, token_logprob
from .speculative import Draft, JobAcceptance, PromptLookup, Room, Speculator

log = logging.getLogger("offgrid.scheduler")

# -- scheduler state -------------------------------------------------------------------------------

@dataclass
class _Job:
    generation: Generation
    prompt: list[int]
    max_tokens: int
    queued_at: float
    sampler: object
    output: OutputText
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet decoded
    unreleased_logprobs: list[TokenLogprob] = field(default_factory=list)
    cached_tokens: int = 0
    next_token: int | None = None  # sampled, to be fed at the next step
    first_token_at: float | None = None
    last_step: int = -1  # the step that last decoded for it; its adapter set's turn comes by it
    lookup: PromptLookup | None = None  # its history, to draft from; None: no drafts
    drafts: JobAcceptance = field(default_factory=JobAcceptance)

    @property
    def adapters(self) -> AdapterSet:
        return self.generation.request.adapters


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    adapters: AdapterSet = NO_ADAPTERS  # what the cached KV was computed with
    job: _Job | None = None
    last_used: float = 0.0

    def reusable(self, job: _Job) -> int:
        """How many of its cached tokens `job` can keep."""
        return common_prefix(self.cached, job.prompt) if self.adapters == job.adapters else 0


class Scheduler:
    def __init__(self, model: Model, *, slots: int, ctx_per_slot: int, batch_size: int,
                 threads: int, queue_size: int, adapters: dict[str, LoraAdapter] | None = None,
                 on_finished=None, on_failure=None, kv_cache: KVCache | None = None,
                 speculative: bool = True, draft: Model | None = None):
        """`draft`: a model with the same vocabulary to guess tokens with (draft_model.py),
        besides the request's own history; neither drafts unless `speculative`."""
        self.model = model
        self._kv = kv_cache if kv_cache is not None and kv_cache.enabled else None
        self._identity = model_identity(model.path)  # what kept states of this model are under
        self._adapters = adapters if adapters is not None else {}  # by id, loaded by the model
        self._turns = AdapterTurns()  # whose turn it is; its set is on the context
        self._on_finished = on_finished  # called with each Finished event
        self._on_failure = on_failure  # called with the exception that stopped a loop
        self._recent_tokens: deque[tuple[float, int]] = deque()  # (time, tokens) per step
        self.n_slots = slots
        self._ctx = Context(model, n_ctx=ctx_per_slot * slots, n_batch=max(batch_size, slots),
                            n_seq=slots, n_threads=threads)
        # llama.cpp may round the context up; the limit stays what was asked for.
        self.ctx_per_slot = min(ctx_per_slot, self._ctx.n_ctx // slots)
        self._batch = Batch(max(batch_size, slots))
        # A step's text, sent when its sampling is done (_send_released says why).
        self._released: list[tuple[Generation, Text]] = []
        self._speculator = None
        if speculative:
            self._speculator = Speculator(None if draft is None else DraftModel(
                draft, slots=slots, ctx_per_slot=self.ctx_per_slot, batch_size=batch_size,
                threads=threads))
        self._slots = [_Slot(seq) for seq in range(slots)]
        self.capacity = slots + queue_size  # requests it holds at once, running and waiting
        self._in_flight = 0
        self.last_active = time.monotonic()  # when a request last ended
        self._unprepared: deque[Generation] = deque()  # submitted; the preparer takes them
        self._preparing = 0
        self._waiting: deque[_Job] = deque()  # prepared, waiting for a free slot
        self._cond = threading.Condition()  # guards the queues, the counters and _running
        self._running = True
        self.failure: Exception | None = None  # what stopped a loop, if one died
        self.generated_tokens = 0
        name = model.path.stem
        self._threads = [threading.Thread(target=self._guarded, args=(loop,), daemon=True,
                                          name=f"{role}:{name}")
                         for role, loop in (("scheduler", self._decode_loop),
                                            ("prepare", self._prepare_loop))]
        for thread in self._threads:
            thread.start()

    # -- called from other threads --

    def submit(self, request: GenerationRequest, events: queue.SimpleQueue, index: int = 0
               ) -> Generation:
        generation = Generation(request, events, index)
        with self._cond:
            if self.failure is not None:
                raise SchedulerFailed(self.model.path.stem)
            if not self._running:
                raise EngineClosed()
            if self._in_flight >= self.capacity:
                raise QueueFull(retry_after=1 + len(self._waiting) // self.n_slots)
            self._in_flight += 1
            self._unprepared.append(generation)
            self._cond.notify_all()
        return generation

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet ended."""
        return self._in_flight

    @property
    def busy_slots(self) -> int:
        return sum(slot.job is not None for slot in self._slots)

    @property
    def queued(self) -> int:
        return len(self._waiting) + len(self._unprepared) + self._preparing

    @property
    def kv_tokens_used(self) -> int:
        return sum(len(slot.cached) for slot in self._slots)

    @property
    def kv_tokens_capacity(self) -> int:
        return self.ctx_per_slot * self.n_slots

    def tokens_per_second(self, window: float = 10.0) -> float:
        """Tokens generated per second over the last `window` seconds, all requests together."""
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._recent_tokens) if now - t <= window]
        if not recent:
            return 0.0
        return sum(n for _, n in recent) / max(now - recent[0][0], 1.0)

    def close(self) -> None:
        """Stop the loops, fail what is still queued or running, and free llama.cpp's memory."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        if self.failure is None:  # after a failure, the slots' states are not to be trusted
            for slot in self._slots:
                self._keep_state(slot, 0)
        if self._speculator is not None:
            self._speculator.close()
        self._batch.close()
        self._ctx.close()

    # -- the two threads --

    def _guarded(self, loop) -> None:
        """Run a loop; if it dies, stop the scheduler. The decode thread fails what is left."""
        try:
            loop()
        except Exception as error:
            log.exception("%s loop of %s crashed", loop.__name__, self.model.path.name)
            with self._cond:
                self.failure, self._running = error, False
                self._cond.notify_all()
            if self._on_failure is not None:
                self._on_failure(error)
        finally:
            if loop == self._decode_loop:
                self._fail_everything()

    def _decode_loop(self) -> None:
        while True:
            if not self._has_work():
                release_compute_threads()  # an idle team would slow other models' decoding
            if not self._wait_for(self._has_work):
                return
            self._drop_cancelled()
            self._admit_waiting()
            if self._has_jobs():
                self._step()

    def _prepare_loop(self) -> None:
        """Render and tokenize new requests and build their samplers, one at a time; refuse
        those that cannot fit."""
        while self._wait_for(lambda: self._unprepared):
            with self._cond:
                generation = self._unprepared.popleft()
                self._preparing += 1
            try:
                job = self._prepared(generation)
            finally:
                with self._cond:
                    self._preparing -= 1
            if job is not None:
                self._queue(job)

    def _wait_for(self, has_work) -> bool:
        """Wait until `has_work()` or the scheduler stops; False when it stops."""
        with self._cond:
            while self._running and not has_work():
                self._cond.wait()
            return self._running

    def _has_jobs(self) -> bool:
        return any(slot.job for slot in self._slots)

    def _has_work(self) -> bool:
        return bool(self._waiting) or self._has_jobs()

    def _prepared(self, generation: Generation) -> _Job | None:
        """The request's job; None if it was cancelled or refused (and so ended)."""
        if generation.cancelled:
            self._end(generation, NOTHING_DONE)
            return None
        try:
            return self._new_job(generation)
        except EngineError as error:
            self._end(generation, Failed(error))
        except Exception:  # a bug, or input the checks at the edge missed: this request only
            log.exception("could not prepare a request for %s", self.model.path.name)
            self._end(generation, Failed(RequestFailed()))
        return None

    def _queue(self, job: _Job) -> None:
        with self._cond:
            if self._running:
                job.generation.emit(Started(len(job.prompt)))
                self._waiting.append(job)
                self._cond.notify_all()
                return
        job.sampler.close()
        self._end(job.generation, Failed(self._stop_reason()))

    def _new_job(self, generation: Generation) -> _Job:
        request = generation.request
        prompt = self._prompt_tokens(request)
        if not prompt:
            raise EmptyPrompt()
        if len(prompt) >= self.ctx_per_slot:  # no room left for a single token of answer
            raise PromptTooLong(len(prompt), self.ctx_per_slot)
        room = self.ctx_per_slot - len(prompt)
        max_tokens = room if request.max_tokens is None else min(request.max_tokens, room)
        if self._kv is not None:  # a state to restore is read here, not on the decode thread
            self._kv.prefetch(self._identity, request.adapters, prompt)
        return _Job(generation, prompt, max_tokens, queued_at=time.monotonic(),
                    sampler=build_sampler(self.model, request.sampling),
                    output=OutputText(request.stop),
                    lookup=PromptLookup(prompt) if self._speculator else None)

    def _prompt_tokens(self, request: GenerationRequest) -> list[int]:
        if request.messages is not None:
            return self.model.tokenize(self.model.render_chat(request.messages))
        if isinstance(request.prompt, list):
            return list(request.prompt)
        if request.suffix is None:
            return self.model.tokenize(request.prompt)
        markers = self.model.fim_tokens()
        if markers is None:
            raise FillInTheMiddleUnsupported(self.model.path.stem)
        prefix, suffix, middle = markers
        return [prefix, *self.model.tokenize(request.prompt, add_special=False), suffix,
                *self.model.tokenize(request.suffix, add_special=False), middle]

    # -- the decode thread --

    def _drop_cancelled(self) -> None:
        with self._cond:
            dropped = [job for job in self._waiting if job.generation.cancelled]
            for job in dropped:
                self._waiting.remove(job)
        for job in dropped:
            job.sampler.close()
            self._end(job.generation, NOTHING_DONE)
        for slot in self._slots:
            if slot.job and slot.job.generation.cancelled:
                self._finish(slot, "cancelled")

    def _admit_waiting(self) -> None:
        free = [slot for slot in self._slots if slot.job is None]
        while free:
            with self._cond:
                if not self._waiting:
                    return
                job = self._waiting.popleft()
            slot = max(free, key=lambda s: (s.reusable(job), -s.last_used))
            free.remove(slot)
            self._start(slot, job)

    def _start(self, slot: _Slot, job: _Job) -> None:
        shared = slot.reusable(job)
        self._keep_state(slot, shared)
        shared = self._restore_state(slot, job, shared)
        # Keep the longest cached prefix, but re-decode at least the prompt's last token: its
        # logits are what the first sample is drawn from.
        keep = min(shared, len(job.prompt) - 1)
        if not self._ctx.forget(slot.seq, keep):
            self._ctx.forget(slot.seq, -1)
            keep = 0
        slot.cached = job.prompt[:keep]
        slot.adapters = job.adapters
        job.cached_tokens = keep
        job.pending = job.prompt[keep:]
        job.generation.prompt_tokens = len(job.prompt)
        slot.job = job

    def _keep_state(self, slot: _Slot, keep: int) -> None:
        """Save the slot's state to the KV cache if it is about to drop a part worth keeping
        (all but its first `keep` tokens). A request continuing the slot's conversation drops
        a few tokens only: those are not saved, the slot still holds nearly all of it."""
        if (self._kv is None or not worth_copying(len(slot.cached), len(slot.cached) - keep)
                or self._kv.covers(self._identity, slot.adapters, slot.cached)):
            return
        started = time.perf_counter()
        try:
            state = self._ctx.sequence_state(slot.seq)
        except LlamaError as error:  # the slot goes on as before; only the copy is lost
            log.warning("could not keep a KV state of %s: %s", self.model.path.name, error)
            return
        self._kv.keep(self._identity, slot.adapters, slot.cached, state)
        log.debug("kept %d tokens' KV state (%d bytes) in %.1f ms", len(slot.cached),
                  len(state), (time.perf_counter() - started) * 1000)

    def _restore_state(self, slot: _Slot, job: _Job, shared: int) -> int:
        """Restore into the slot the kept state sharing the longest prefix with the job's
        prompt, if it shares more than the slot; how many tokens the slot shares now."""
        found = None if self._kv is None else self._kv.find(self._identity, job.adapters,
                                                            job.prompt, shared)
        if found is None:
            return shared
        entry, state, shared = found
        if not self._ctx.restore_sequence(slot.seq, state):
            log.warning("a kept KV state did not fit the context of %s", self.model.path.name)
            self._kv.forget(entry)
            slot.cached = []
            return 0
        slot.cached, slot.adapters = list(entry.tokens), job.adapters
        return shared

    def _step(self) -> None:
        batch = self._batch
        batch.clear()
        to_sample: list[tuple[_Slot, list[int], Draft | None]] = []  # slot, rows, its draft
        busy = self._this_turn([slot for slot in self._slots if slot.job])
        generating = [slot for slot in busy if slot.job.next_token is not None]
        drafts = ({} if self._speculator is None or any(s.job.pending for s in busy)
                  else self._drafts(generating))
        for slot in generating:
            draft = drafts.get(slot.seq)
            tokens = [slot.job.next_token, *(draft.tokens if draft else ())]
            rows = [self._feed(slot, token, True) for token in tokens]
            to_sample.append((slot, rows, draft))
            slot.job.next_token = None
        for slot in sorted((s for s in busy if s.job.pending), key=lambda s: s.job.queued_at):
            room = batch.capacity - len(batch)
            if room == 0:
                break
            chunk, slot.job.pending = slot.job.pending[:room], slot.job.pending[room:]
            for i, token in enumerate(chunk):
                last = i == len(chunk) - 1 and not slot.job.pending
                row = self._feed(slot, token, last)
            if not slot.job.pending:
                to_sample.append((slot, [row], None))
        started = time.perf_counter()
        try:
            self._ctx.decode(batch)
        except LlamaError as error:
            log.error("%s", error)
            for slot in busy:
                self._fail_slot(slot, DecodeFailed(str(error)))
            return
        if self._speculator is not None and self._ctx.one_pass(batch):  # what plan() reads
            self._speculator.observe_step(len(batch), time.perf_counter() - started)
        generated_before = self.generated_tokens
        for slot, rows, draft in to_sample:
            try:
                self._sample_rows(slot, rows, draft)
            except EngineError as error:  # the request's own dead end, such as its grammar's
                self._fail_slot(slot, error)
            except Exception:  # one request's bug must not stop the others in the batch
                log.exception("generation failed for a request to %s", self.model.path.name)
                self._fail_slot(slot, RequestFailed())
        self._send_released()
        self._note_throughput(self.generated_tokens - generated_before)

    def _drafts(self, generating: list[_Slot]) -> dict[int, Draft]:
        """Each generating slot's draft for this step, by sequence (speculative.py), within the
        batch's room and what its answer and context have room for."""
        batch_room = self._batch.capacity - len(generating)
        rooms = [Room(slot.seq, slot.job.lookup, slot.job.drafts,
                      min(batch_room, slot.job.max_tokens - slot.job.generation.completion_tokens
                          - 1, self.ctx_per_slot - len(slot.cached) - 1))
                 for slot in generating]
        return self._speculator.drafts(rooms)

    def _this_turn(self, busy: list[_Slot]) -> list[_Slot]:
        """The busy slots this step decodes: those of the adapter set whose turn it is, with
        that set applied to the context."""
        applied = self._turns.current
        adapters = self._turns.take([slot.job for slot in busy])
        if adapters != applied:
            self._ctx.use_adapters([(self._adapters[a], scale) for a, scale in adapters])
        return [slot for slot in busy if slot.job.adapters == adapters]

    def _note_throughput(self, tokens: int) -> None:
        now = time.monotonic()
        self._recent_tokens.append((now, tokens))
        while self._recent_tokens and now - self._recent_tokens[0][0] > 60:
            self._recent_tokens.popleft()

    def _feed(self, slot: _Slot, token: int, want_logits: bool) -> int:
        row = self._batch.add(token, len(slot.cached), slot.seq, want_logits)
        slot.cached.append(token)
        return row

    def _sample_rows(self, slot: _Slot, rows: list[int], draft: Draft | None) -> None:
        """Sample the slot's rows in order: the first from its last token, each next one only
        while the draft token fed there is the one just sampled. The drafted tokens not kept
        leave the slot's cache."""
        job, guessed = slot.job, draft.tokens if draft else []
        del slot.cached[len(slot.cached) - len(guessed):]
        # Counted as they happen, so that a request ending inside its draft reports them.
        job.drafts.drafted += len(guessed)
        from_model = draft is not None and draft.from_model
        job.drafts.model_drafted += len(guessed) if from_model else 0
        checked = kept = 0
        for row in rows:
            token = self._sample(slot, row)
            if slot.job is not job or kept == len(guessed):
                break
            checked += 1
            if token != guessed[kept]:
                break
            slot.cached.append(token)  # fed already, as the draft
            job.next_token = None
            kept += 1
            job.drafts.accepted += 1
            job.drafts.model_accepted += from_model
        if draft:
            self._speculator.checked(job.drafts, draft, checked, kept)
            if not self._ctx.forget(slot.seq, len(slot.cached)):
                self._ctx.forget(slot.seq, -1)
                slot.cached = []

    def _sample(self, slot: _Slot, row: int) -> int:
        job = slot.job
        n_top = job.generation.request.logprobs
        logits = self._ctx.logits(row).copy() if n_top is not None else None
        token = job.sampler.sample(self._ctx, row)
        if job.first_token_at is None:
            job.first_token_at = time.monotonic()
        if self.model.is_end_of_generation(token):
            self._finish(slot, "stop")
            return token
        if logits is not None:
            job.unreleased_logprobs.append(token_logprob(self.model, logits, token, n_top))
        self._on_token(slot, token)
        return token

    def _on_token(self, slot: _Slot, token: int) -> None:
        job = slot.job
        job.generation.completion_tokens += 1
        self.generated_tokens += 1
        if job.lookup is not None:
            job.lookup.append(token)
        text = job.output.feed(self.model.token_bytes(token))
        if text:
            self._release(job, text)
        if job.output.stopped:
            return self._finish(slot, "stop")
        if (job.generation.completion_tokens >= job.max_tokens
                or len(slot.cached) >= self.ctx_per_slot):
            return self._finish(slot, "length")
        job.next_token = token

    def _fail_slot(self, slot: _Slot, error: Exception) -> None:
        """End a slot's request with `error`, and forget its cache, which may be half-written."""
        self._ctx.forget(slot.seq, -1)
        slot.cached = []
        if slot.job is not None:
            self._finish(slot, None, Failed(error))

    def _finish(self, slot: _Slot, reason: str | None, failure: Failed | None = None) -> None:
        job, now = slot.job, time.monotonic()
        slot.job, slot.last_used = None, now
        job.sampler.close()
        if failure is None and reason != "cancelled" and not job.output.stopped:
            tail = job.output.flush()
            if tail or job.unreleased_logprobs:
                self._release(job, tail)
        self._send_released()  # before the end, which follows the text
        first = job.first_token_at or now
        finished = Finished(
            reason=reason, prompt_tokens=len(job.prompt),
            completion_tokens=job.generation.completion_tokens, cached_tokens=job.cached_tokens,
            prompt_ms=(first - job.queued_at) * 1000, generation_ms=(now - first) * 1000,
            stop_sequence=job.output.stopped_by, drafted_tokens=job.drafts.drafted,
            accepted_tokens=job.drafts.accepted, model_drafted_tokens=job.drafts.model_drafted,
            model_accepted_tokens=job.drafts.model_accepted)
        if self._on_finished is not None:
            self._on_finished(finished)
        self._end(job.generation, failure or finished)

    def _release(self, job: _Job, text: str) -> None:
        self._released.append((job.generation, Text(text, tuple(job.unreleased_logprobs))))
        job.unreleased_logprobs.clear()

    def _send_released(self) -> None:
        """Hand the released text to its callers. Done once a step, not per token: a caller's
        thread woken mid-step takes the GIL between this thread's ctypes calls and makes the
        rest of the step's sampling wait for its JSON and socket writes (py-spy, 4 clients:
        sampling was 7% of this thread's time, 2% since); woken at the step's end, it works
        while llama_decode runs without the GIL."""
        for generation, text in self._released:
            generation.emit(text)
        self._released.clear()

    def _end(self, generation: Generation, last_event) -> None:
        generation.emit(last_event)
        with self._cond:
            self._in_flight -= 1
            self.last_active = time.monotonic()
        generation.mark_ended()

    def _stop_reason(self) -> Exception:
        """What requests still held get when the scheduler stops."""
        return EngineClosed() if self.failure is None else SchedulerFailed(self.model.path.stem)

    def _fail_everything(self) -> None:
        """Once the decode loop has stopped: end every request it still holds. A request the
        preparer is still working on is ended by the preparer (see _queue)."""
        error = self._stop_reason()
        for slot in self._slots:
            if slot.job:
                generation = slot.job.generation
                try:
                    self._finish(slot, None, Failed(error))
                except Exception:  # the slot's state may be what broke the loop
                    log.exception("could not end a request to %s", self.model.path.name)
                    if not generation.wait_ended(0):
                        self._end(generation, Failed(error))
        with self._cond:
            pending = list(self._unprepared) + [job.generation for job in self._waiting]
            for job in self._waiting:
                job.sampler.close()
            self._unprepared.clear()
            self._waiting.clear()
        for generation in pending:
            self._end(generation, Failed(error))
