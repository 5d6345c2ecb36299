"""Thin, typed wrapper over llama-cpp-python's low-level ctypes API.

This is the only module in OffGrid that calls llama.cpp. It hides ctypes buffers and pointers
behind a few small classes: Model, LoraAdapter, Context, Batch, SamplerChain, Grammar and
Candidates, the compute devices a model may be spread over (Device, rpc_devices), and the
OpenMP threads that compute for the calling thread (release_compute_threads).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

import numpy as np
from llama_cpp import llama_cpp as C

log = logging.getLogger("offgrid.llama")

POOLING_UNSPECIFIED = C.LLAMA_POOLING_TYPE_UNSPECIFIED
POOLING_NONE = C.LLAMA_POOLING_TYPE_NONE
POOLING_MEAN = C.LLAMA_POOLING_TYPE_MEAN
RANDOM_SEED = C.LLAMA_DEFAULT_SEED

# llama.cpp knows these chat formats by name; a model file without a template of its own gets the
# one its architecture was trained with, or ChatML when none is known.
_BUILTIN_TEMPLATE_BY_ARCH = {"gemma": b"gemma", "gemma2": b"gemma", "gemma3": b"gemma"}

# llama.cpp's info level is chatty (every tensor of every load): it goes to debug.
_GGML_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}


class LlamaError(RuntimeError):
    """llama.cpp refused or failed an operation."""


# -- process-wide setup ---------------------------------------------------------------------------

_backend_lock = threading.Lock()
_log_callback = None  # a reference must be kept or ctypes frees the trampoline


def init_backend() -> None:
    """Route llama.cpp's log into Python logging and initialise its backend, once per process."""
    global _log_callback
    with _backend_lock:
        if _log_callback is not None:
            return
        _log_callback = C.llama_log_callback(_forward_log)
        C.llama_log_set(_log_callback, None)
        C.llama_backend_init()


def _forward_log(level: int, text: bytes, _user_data) -> None:
    if text:
        log.log(_GGML_LOG_LEVELS.get(level, logging.DEBUG),
                text.decode("utf-8", "replace").rstrip())


def package_version() -> str:
    import llama_cpp
    return llama_cpp.__version__


def system_info() -> str:
    return C.llama_print_system_info().decode("utf-8", "replace")


# -- compute threads ------------------------------------------------------------------------------

OMP_PAUSE_SOFT = 1
_libgomp: ctypes.CDLL | None | bool = False  # False: not looked for yet


def release_compute_threads() -> None:
    """End the calling thread's OpenMP worker threads; its next decode starts them again.

    llama.cpp's CPU backend computes a graph on an OpenMP team, and libgomp keeps each calling
    thread's team alive as long as that thread. It counts the teams' threads together, and once
    they outnumber the CPUs every barrier between two ops spins 100 times instead of 300,000
    before it sleeps in the kernel: decoding on every thread slows down. One embedding request
    cut chat from 90-109 to 60-70 tokens/s for the rest of the server's life (SmolLM2 and
    MiniLM on 2 cores). So a thread that decodes lets its team go when it goes idle."""
    global _libgomp
    if _libgomp is False:
        _libgomp = _loaded_openmp()
    if _libgomp is not None:
        _libgomp.omp_pause_resource_all(OMP_PAUSE_SOFT)


def _loaded_openmp() -> ctypes.CDLL | None:
    """The libgomp llama.cpp's CPU backend loaded, or None: a build without it, or not Linux
    (the only platform whose wheels use it). Wheels may bundle it under a mangled name."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/libgomp" in line})
    except OSError:
        return None
    for path in paths:
        try:
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
        except OSError:
            continue
        if hasattr(library, "omp_pause_resource_all"):
            library.omp_pause_resource_all.argtypes = [ctypes.c_int]
            return library
    return None


# -- devices --------------------------------------------------------------------------------------

def _ggml(name: str, argtypes: list, restype):
    """A function of ggml's C API. llama-cpp-python binds none of ggml's backend registry, and
    libllama's handle resolves ggml's symbols too, so they come from the very ggml that llama
    uses (loading libggml a second time could give a second, empty registry)."""
    function = getattr(C._lib, name)
    function.argtypes, function.restype = argtypes, restype
    return function


_P = ctypes.c_void_p
_reg_by_name = _ggml("ggml_backend_reg_by_name", [ctypes.c_char_p], _P)
_reg_proc_address = _ggml("ggml_backend_reg_get_proc_address", [_P, ctypes.c_char_p], _P)
_reg_dev_count = _ggml("ggml_backend_reg_dev_count", [_P], ctypes.c_size_t)
_reg_dev_get = _ggml("ggml_backend_reg_dev_get", [_P, ctypes.c_size_t], _P)
_dev_name = _ggml("ggml_backend_dev_name", [_P], ctypes.c_char_p)
_dev_description = _ggml("ggml_backend_dev_description", [_P], ctypes.c_char_p)
_dev_memory = _ggml("ggml_backend_dev_memory", [_P, ctypes.POINTER(ctypes.c_size_t),
                                                ctypes.POINTER(ctypes.c_size_t)], None)
_dev_by_type = _ggml("ggml_backend_dev_by_type", [ctypes.c_int], _P)
_DEVICE_TYPE_CPU = 0  # enum ggml_backend_dev_type
# ggml_backend_reg_t ggml_backend_rpc_add_server(const char * endpoint), found through the RPC
# backend's registry entry (as llama.cpp's own --rpc does) rather than linked by name.
_RPC_ADD_SERVER = ctypes.CFUNCTYPE(_P, ctypes.c_char_p)


class Device:
    """A compute device of ggml's backend registry: the local CPU, or one an RPC worker offers.
    Devices live as long as the process."""

    def __init__(self, handle: int):
        self._ptr = handle

    @property
    def name(self) -> str:
        return _dev_name(self._ptr).decode()

    @property
    def description(self) -> str:
        return _dev_description(self._ptr).decode()

    def memory(self) -> tuple[int, int]:
        """(free, total) bytes; for an RPC device this asks its worker."""
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        _dev_memory(self._ptr, ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value


def cpu_device() -> Device:
    init_backend()
    return Device(_dev_by_type(_DEVICE_TYPE_CPU))


def rpc_supported() -> bool:
    """Whether this llama.cpp was built with its RPC backend (GGML_RPC=ON)."""
    return bool(C.llama_supports_rpc()) and bool(_reg_by_name(b"RPC"))


def rpc_devices(endpoint: str) -> list[Device]:
    """The devices the rpc-server at `endpoint` ("host:port") offers. llama.cpp aborts the
    process if it cannot reach the worker: check that it answers first (engine/rpc.py)."""
    init_backend()
    add_server = _reg_proc_address(_reg_by_name(b"RPC"), b"ggml_backend_rpc_add_server")
    if not add_server:
        raise LlamaError("this llama.cpp's RPC backend has no ggml_backend_rpc_add_server")
    reg = _RPC_ADD_SERVER(add_server)(endpoint.encode())
    if not reg:
        raise LlamaError(f"the RPC worker at {endpoint} offers no devices")
    return [Device(_reg_dev_get(reg, i)) for i in range(_reg_dev_count(reg))]


# -- model ----------------------------------------------------------------------------------------

class Model:
    """A loaded GGUF file: weights, vocabulary and metadata. Safe to share between contexts."""

    def __init__(self, path: Path, devices: list[Device] | None = None):
        """`devices`: where its layers go, split by each one's free memory (all of them, as
        llama.cpp's n_gpu_layers default asks); None: llama.cpp's own choice (here, the CPU)."""
        init_backend()
        self.path = Path(path)
        params = C.llama_model_default_params()
        if devices:  # a NULL-terminated array, read only during the load
            chosen = (_P * (len(devices) + 1))(*(d._ptr for d in devices), None)
            params.devices = ctypes.cast(chosen, _P)
        self._ptr = C.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._ptr:
            raise LlamaError(f"{self.path.name} could not be loaded: not a valid GGUF model file")
        self._vocab = C.llama_model_get_vocab(self._ptr)
        self.n_vocab = C.llama_vocab_n_tokens(self._vocab)
        self.n_embd = C.llama_model_n_embd(self._ptr)
        self.n_ctx_train = C.llama_model_n_ctx_train(self._ptr)
        self.architecture = self.metadata("general.architecture") or ""
        # Sentence-embedding models (BERT and kin) declare how to pool; chat models do not.
        self.is_embedding_only = self.metadata(f"{self.architecture}.pooling_type") is not None
        self._template = self._chat_template()

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1024)
        n = C.llama_model_meta_val_str(self._ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def close(self) -> None:
        if self._ptr:
            C.llama_model_free(self._ptr)
            self._ptr = None

    # -- text --

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True
                 ) -> list[int]:
        """Text to tokens; `add_special` adds BOS where the model wants one, `parse_special`
        reads special-token text such as `<|im_start|>` as that token."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        for _ in range(2):
            out = (C.llama_token * capacity)()
            n = C.llama_tokenize(self._vocab, data, len(data), out, capacity, add_special,
                                 parse_special)
            if n >= 0:
                return list(out[:n])
            capacity = -n
        raise LlamaError("tokenization failed")

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token stands for; may end inside a UTF-8 character."""
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", "replace")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self._vocab, token))

    @property
    def end_token(self) -> int:
        """The token that ends a text (EOS)."""
        return C.llama_vocab_eos(self._vocab)

    def fim_tokens(self) -> tuple[int, int, int] | None:
        """(prefix, suffix, middle) markers for fill-in-the-middle, if the model has them."""
        tokens = (C.llama_vocab_fim_pre(self._vocab), C.llama_vocab_fim_suf(self._vocab),
                  C.llama_vocab_fim_mid(self._vocab))
        return None if C.LLAMA_TOKEN_NULL in tokens else tokens

    # -- chat --

    def _chat_template(self) -> bytes | None:
        embedded = C.llama_model_chat_template(self._ptr, None)
        if embedded:
            return embedded
        return _BUILTIN_TEMPLATE_BY_ARCH.get(self.architecture)

    def render_chat(self, messages: list[tuple[str, str]]) -> str:
        """Messages as (role, content) pairs to a prompt ending where the assistant speaks.

        llama.cpp only recognises the template among its built-in formats; the template text from
        the model file is never executed. An unrecognised template falls back to ChatML.
        """
        rendered = _apply_template(self._template, messages)
        if rendered is None:
            log.warning("%s: chat template not recognised, using ChatML", self.path.name)
            rendered = _apply_template(None, messages)
        return rendered


def _apply_template(template: bytes | None, messages: list[tuple[str, str]]) -> str | None:
    encoded = [(role.encode(), content.replace("\0", "").encode()) for role, content in messages]
    chat = (C.llama_chat_message * len(encoded))(
        *(C.llama_chat_message(role, content) for role, content in encoded))
    capacity = 256 + 2 * sum(len(role) + len(content) for role, content in encoded)
    for _ in range(2):
        buf = ctypes.create_string_buffer(capacity)
        n = C.llama_chat_apply_template(template, chat, len(encoded), True, buf, capacity)
        if n < 0:
            return None
        if n <= capacity:
            return buf.raw[:n].decode("utf-8", "replace")
        capacity = n
    return None


class LoraAdapter:
    """A LoRA adapter file loaded for one model; contexts of that model can apply it."""

    def __init__(self, model: Model, path: Path):
        self.path = Path(path)
        self._ptr = C.llama_adapter_lora_init(model._ptr, str(self.path).encode())
        if not self._ptr:
            raise LlamaError(f"{self.path.name} could not be loaded as a LoRA adapter for "
                             f"{model.path.name}")

    def close(self) -> None:
        """Free it; only once no context uses it, and before its model is freed."""
        if self._ptr:
            C.llama_adapter_lora_free(self._ptr)
            self._ptr = None


# -- context --------------------------------------------------------------------------------------

def micro_batches(tokens_by_seq: dict[int, int]) -> list[int]:
    """The sizes of the micro-batches, each a pass over the weights, that llama.cpp computes a
    batch of these tokens per sequence in (in the order the sequences first appear), with a KV
    buffer per sequence (llama_batch_allocr::split_equal): it takes each sequence whose id is
    one more than the last one taken, and as many tokens of each as the one with fewest has."""
    left = {seq: n for seq, n in tokens_by_seq.items() if n}
    sizes = []
    while left:
        taken = []
        for seq in left:
            if not taken or seq == taken[-1] + 1:
                taken.append(seq)
        each = min(left[seq] for seq in taken)
        sizes.append(each * len(taken))
        for seq in taken:
            left[seq] -= each
            if not left[seq]:
                del left[seq]
    return sizes


class Context:
    """A llama.cpp context: KV memory for n_seq sequences plus the compute graph's buffers.

    Chat contexts keep a KV buffer per sequence (kv_unified off), though it costs speed: llama.cpp
    then splits a batch into micro-batches of equal token counts over consecutive sequence ids,
    each a whole pass over the weights, so a step where one slot reads a prompt chunk or checks a
    draft while others generate is computed twice. With one unified buffer it would be one pass
    (benchmarks/kv_layout.py, SmolLM2 on 2 cores: 4 sequences with a 3-token draft on one, 46-51
    -> 33-38 ms; docs/benchmarks.md has the rest). But which CPU attention kernel runs, and how
    it groups the cells it sums, then depends on where other requests' tokens sit in the shared
    buffer: an answer would change with the load beside it, and drafted answers would no longer
    be exactly plain decoding's (tests/test_engine.py, tests/test_speculative.py fail).
    """

    def __init__(self, model: Model, *, n_ctx: int, n_batch: int, n_seq: int, n_threads: int,
                 embeddings: bool = False, pooling: int = POOLING_UNSPECIFIED,
                 kv_unified: bool = False):
        params = C.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.embeddings = embeddings
        params.pooling_type = pooling
        params.kv_unified = kv_unified
        self.kv_unified = kv_unified
        self.model = model
        self._ptr = C.llama_init_from_model(model._ptr, params)
        if not self._ptr:
            raise LlamaError(f"could not create a context of {n_ctx} tokens for {model.path.name}")
        self.n_ctx = C.llama_n_ctx(self._ptr)
        self.n_seq = n_seq
        self._memory = C.llama_get_memory(self._ptr)

    @property
    def pooling(self) -> int:
        return C.llama_pooling_type(self._ptr)

    def decode(self, batch: "Batch") -> None:
        status = C.llama_decode(self._ptr, batch._batch)
        if status != 0:
            raise LlamaError(f"llama_decode failed with status {status}")

    def one_pass(self, batch: "Batch") -> bool:
        """Whether llama.cpp computes `batch` in one pass over the weights."""
        return self.kv_unified or len(micro_batches(batch.tokens_by_seq)) <= 1

    def use_adapters(self, adapters: list[tuple[LoraAdapter, float]]) -> None:
        """Apply these adapters, at these scales, to every decode from now on (none: the base
        model alone). Adapters belong to the whole context, not to a sequence."""
        n = len(adapters)
        pointers = (C.llama_adapter_lora_p_ctypes * n)(*(a._ptr for a, _ in adapters))
        scales = (ctypes.c_float * n)(*(scale for _, scale in adapters))
        status = C.llama_set_adapters_lora(self._ptr, pointers if n else None, n,
                                           scales if n else None)
        if status != 0:
            raise LlamaError(f"llama_set_adapters_lora failed with status {status}")

    def forget(self, seq: int, start: int = 0) -> bool:
        """Drop a sequence's cached tokens from position `start` on. False if the memory cannot
        drop a partial sequence (then forget it whole)."""
        if not self._memory:
            return True
        return bool(C.llama_memory_seq_rm(self._memory, seq, start, -1))

    def sequence_state(self, seq: int) -> bytes:
        """A copy of what the KV memory holds for one sequence (llama_state_seq_get_data)."""
        size = C.llama_state_seq_get_size(self._ptr, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = C.llama_state_seq_get_data(self._ptr, buffer, size, seq)
        if written != size:
            raise LlamaError(f"llama_state_seq_get_data wrote {written} of {size} bytes")
        return bytes(buffer)

    def restore_sequence(self, seq: int, state: bytes) -> bool:
        """Replace a sequence's KV memory by a state sequence_state returned (of any sequence
        of a context of this model); False if it does not fit, and then the sequence is empty."""
        self.forget(seq, -1)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if C.llama_state_seq_set_data(self._ptr, buffer, len(state), seq) == len(state):
            return True
        self.forget(seq, -1)
        return False

    def clear(self) -> None:
        if self._memory:
            C.llama_memory_clear(self._memory, True)

    def logits(self, row: int) -> np.ndarray:
        ptr = C.llama_get_logits_ith(self._ptr, row)
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))

    def sequence_embedding(self, seq: int) -> np.ndarray:
        ptr = C.llama_get_embeddings_seq(self._ptr, seq)
        if not ptr:
            raise LlamaError("the context produced no pooled embedding")
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_embd,)).copy()

    def close(self) -> None:
        if self._ptr:
            C.llama_free(self._ptr)
            self._ptr = None


class Batch:
    """A reusable llama_batch of up to `capacity` tokens, one sequence id per token."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._batch = C.llama_batch_init(capacity, 0, 1)
        self._batch.n_tokens = 0
        self.tokens_by_seq: dict[int, int] = {}  # in the order the sequences first appear

    def __len__(self) -> int:
        return self._batch.n_tokens

    def clear(self) -> None:
        self._batch.n_tokens = 0
        self.tokens_by_seq.clear()

    def add(self, token: int, pos: int, seq: int, want_logits: bool) -> int:
        """Append a token; returns its row, which is where its logits are read after decoding."""
        b, row = self._batch, self._batch.n_tokens
        b.token[row] = token
        b.pos[row] = pos
        b.n_seq_id[row] = 1
        b.seq_id[row][0] = seq
        b.logits[row] = want_logits
        b.n_tokens = row + 1
        self.tokens_by_seq[seq] = self.tokens_by_seq.get(seq, 0) + 1
        return row

    def close(self) -> None:
        if self._batch is not None:
            C.llama_batch_free(self._batch)
            self._batch = None


class Candidates:
    """Every token of the vocabulary with its logit from one batch row, as llama.cpp's samplers
    take them (llama_token_data_array); filled with numpy, reused for each token."""

    _ENTRY = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])

    def __init__(self, n_vocab: int):
        assert self._ENTRY.itemsize == ctypes.sizeof(C.llama_token_data)
        self._ids = np.arange(n_vocab, dtype="<i4")
        self._entries = np.zeros(n_vocab, dtype=self._ENTRY)
        self._array = C.llama_token_data_array(
            self._entries.ctypes.data_as(ctypes.POINTER(C.llama_token_data)), n_vocab, -1, False)

    def load(self, ctx: "Context", row: int) -> "Candidates":
        self._entries["id"] = self._ids  # samplers sort and cut the array in place
        self._entries["logit"] = ctx.logits(row)
        self._entries["p"] = 0.0
        self._array.size, self._array.selected, self._array.sorted = len(self._ids), -1, False
        return self

    @property
    def selected(self) -> int:
        return int(self._entries["id"][self._array.selected])


class Grammar:
    """A GBNF grammar as a llama.cpp sampler: it can judge one token, or narrow all of them."""

    def __init__(self, model: Model, gbnf: str):
        self._ptr = C.llama_sampler_init_grammar(model._vocab, gbnf.encode(), b"root")
        if not self._ptr:
            raise LlamaError("the grammar could not be parsed")
        self._one = C.llama_token_data(0, 0.0, 0.0)
        self._one_array = C.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)

    def allows(self, token: int) -> bool:
        self._one.id, self._one.logit, self._one.p = token, 0.0, 0.0
        self._one_array.size, self._one_array.selected = 1, -1
        C.llama_sampler_apply(self._ptr, ctypes.byref(self._one_array))
        return self._one.logit != float("-inf")

    def narrow(self, candidates: Candidates) -> None:
        C.llama_sampler_apply(self._ptr, ctypes.byref(candidates._array))

    def accept(self, token: int) -> None:
        C.llama_sampler_accept(self._ptr, token)

    def close(self) -> None:
        if self._ptr:
            C.llama_sampler_free(self._ptr)
            self._ptr = None


class SamplerChain:
    """A llama.cpp sampler chain; stages run in the order they are added."""

    def __init__(self):
        self._ptr = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())

    def _add(self, sampler) -> "SamplerChain":
        C.llama_sampler_chain_add(self._ptr, sampler)
        return self

    def logit_bias(self, n_vocab: int, biases: tuple[tuple[int, float], ...]) -> "SamplerChain":
        entries = (C.llama_logit_bias * len(biases))(
            *(C.llama_logit_bias(token, bias) for token, bias in biases))
        return self._add(C.llama_sampler_init_logit_bias(n_vocab, len(biases), entries))

    def penalties(self, n_vocab: int, last_n: int, repeat: float, frequency: float,
                  presence: float) -> "SamplerChain":
        return self._add(C.llama_sampler_init_penalties(n_vocab, last_n, repeat, frequency,
                                                        presence))

    def top_k(self, k: int) -> "SamplerChain":
        return self._add(C.llama_sampler_init_top_k(k))

    def top_p(self, p: float) -> "SamplerChain":
        return self._add(C.llama_sampler_init_top_p(p, 1))

    def min_p(self, p: float) -> "SamplerChain":
        return self._add(C.llama_sampler_init_min_p(p, 1))

    def temperature(self, t: float) -> "SamplerChain":
        return self._add(C.llama_sampler_init_temp(t))

    def distribution(self, seed: int) -> "SamplerChain":
        return self._add(C.llama_sampler_init_dist(seed))

    def greedy(self) -> "SamplerChain":
        return self._add(C.llama_sampler_init_greedy())

    def sample(self, ctx: Context, row: int) -> int:
        """Pick a token from the logits of batch row `row` and record it in the chain's history."""
        return C.llama_sampler_sample(self._ptr, ctx._ptr, row)

    def pick(self, candidates: Candidates) -> int:
        """Run the chain over `candidates` and return its pick, without recording it."""
        C.llama_sampler_apply(self._ptr, ctypes.byref(candidates._array))
        return candidates.selected

    def accept(self, token: int) -> None:
        C.llama_sampler_accept(self._ptr, token)

    def close(self) -> None:
        if self._ptr:
            C.llama_sampler_free(self._ptr)
            self._ptr = None
