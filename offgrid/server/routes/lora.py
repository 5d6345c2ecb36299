"""The LoRA adapters over HTTP: what is in the models folder's `loras/`, and which loaded
models hold each one."""

from __future__ import annotations

from ..http import Request, Response


def list_adapters(app, request: Request) -> Response:
    loaded = app.registry.loaded()
    adapters = []
    for lora in app.registry.loras.files():
        holders = sorted(model_id for model_id, model in loaded.items()
                         if lora.id in model.adapters)
        adapters.append({**lora.as_dict(), "loaded": bool(holders), "loaded_for": holders})
    return Response({"object": "list", "adapters": adapters})
