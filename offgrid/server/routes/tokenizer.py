"""llama.cpp server's tokenizer endpoints: text to a model's tokens and back."""

from __future__ import annotations

from ..http import Request, Response
from ..openai.requests import DetokenizeRequest, TokenizeRequest


def tokenize(app, request: Request) -> Response:
    asked = TokenizeRequest.parse(request.json())
    model = app.registry.get(asked.model).model
    tokens = model.tokenize(asked.content, add_special=asked.add_special,
                            parse_special=asked.parse_special)
    if asked.with_pieces:
        return Response({"tokens": [{"id": t, "piece": model.detokenize([t])} for t in tokens]})
    return Response({"tokens": tokens})


def detokenize(app, request: Request) -> Response:
    asked = DetokenizeRequest.parse(request.json())
    model = app.registry.get(asked.model).model
    asked.check_against(model)
    return Response({"content": model.detokenize(list(asked.tokens))})
