"""What the engine can refuse, in its own terms; the server maps each to an HTTP error."""


class EngineError(Exception):
    """Base of everything the engine refuses."""


class ModelLoadFailed(EngineError):
    """The file exists but llama.cpp could not load it (corrupt, truncated, unsupported)."""


class InsufficientMemory(EngineError):
    """Loading the model would take more memory than is available."""


class ModelsBusy(EngineError):
    """No loaded model can be unloaded now: each is answering requests."""


class WrongModelKind(EngineError):
    """An embedding-only model asked to generate text."""


class PromptTooLong(EngineError):
    def __init__(self, n_tokens: int, limit: int, what: str = "prompt"):
        super().__init__(f"This {what} is {n_tokens} tokens long; the model's context holds "
                         f"{limit} tokens, answer included")
        self.n_tokens = n_tokens
        self.limit = limit


class EmptyPrompt(EngineError):
    def __init__(self):
        super().__init__("The prompt is empty: there is nothing to continue from")


class QueueFull(EngineError):
    def __init__(self, retry_after: int):
        super().__init__("The server is busy: every slot is taken and the wait queue is full")
        self.retry_after = retry_after


class TooManyChoices(EngineError):
    def __init__(self, asked: int, capacity: int):
        super().__init__(f"This asks for {asked} generations at once; the model can hold "
                         f"{capacity} (its slots and wait queue together)")


class EngineClosed(EngineError):
    def __init__(self):
        super().__init__("The model was unloaded or the server is shutting down")


class DecodeFailed(EngineError):
    """llama.cpp failed while evaluating a batch."""


class RequestFailed(EngineError):
    """Something unexpected went wrong while preparing or generating one request; the others in
    the batch go on."""

    def __init__(self):
        super().__init__("The engine hit an internal error on this request; other requests are "
                         "not affected")


class SchedulerFailed(EngineError):
    """The model's scheduler loop stopped on an internal error; the model gets a new one on its
    next request."""

    def __init__(self, model_id: str):
        super().__init__(f"The scheduler of {model_id} stopped on an internal error; it restarts "
                         "with the next request")


class InvalidGrammar(EngineError):
    """A grammar (from a JSON schema or a tool list) that llama.cpp cannot use."""


class FillInTheMiddleUnsupported(EngineError):
    def __init__(self, model_id: str):
        super().__init__(f"{model_id} has no fill-in-the-middle tokens, so 'suffix' cannot be used")


class AdapterNotFound(EngineError):
    def __init__(self, key: str):
        super().__init__(f"LoRA adapter not found: {key} (see GET /v1/lora)")


class AdapterMismatch(EngineError):
    """A LoRA adapter that does not fit the model asked for: another base model, or not a LoRA
    file llama.cpp can load."""

    def __init__(self, adapter_id: str, model_id: str, reason: str):
        super().__init__(f"The LoRA adapter {adapter_id} cannot be used with {model_id}: {reason}")


class RpcUnavailable(EngineError):
    """RPC workers were named, but this llama.cpp was built without its RPC backend."""

    def __init__(self):
        super().__init__("rpc_servers (--rpc) needs llama-cpp-python built with "
                         "CMAKE_ARGS=-DGGML_RPC=ON, and this one was built without it; "
                         "scripts/setup.sh builds it so")


class RpcWorkerUnreachable(EngineError):
    """An RPC worker (rpc_servers, --rpc) that cannot be reached, or does not answer as an
    rpc-server of this llama.cpp version would."""

    def __init__(self, endpoint: str, reason: str):
        super().__init__(f"The RPC worker {endpoint} cannot be used: {reason}")
        self.endpoint = endpoint
