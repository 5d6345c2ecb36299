"""llama.cpp server's tokenizer endpoints: text to a model's tokens and back."""

from __future__ import annotations

from .. import params
from ..errors import BadRequest
from ..http import Request, Response
from .openai import loaded_model


def tokenize(app, request: Request) -> Response:
    body = request.json()
    model = loaded_model(app, params.string(body, "model")).model
    content = body.get("content")
    if not isinstance(content, str):
        raise BadRequest("Invalid value for 'content': expected a string", code="invalid_value",
                         param="content")
    tokens = model.tokenize(content, add_special=params.boolean(body, "add_special", True),
                            parse_special=params.boolean(body, "parse_special", True))
    if params.boolean(body, "with_pieces", False):
        return Response({"tokens": [{"id": t, "piece": model.detokenize([t])} for t in tokens]})
    return Response({"tokens": tokens})


def detokenize(app, request: Request) -> Response:
    body = request.json()
    model = loaded_model(app, params.string(body, "model")).model
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < model.n_vocab
            for t in tokens):
        raise BadRequest(f"Invalid value for 'tokens': expected an array of token ids from 0 to "
                         f"{model.n_vocab - 1}", code="invalid_value", param="tokens")
    return Response({"content": model.detokenize(tokens)})
