"""Ollama's wire format: requests.py reads its request bodies into typed requests, responses.py
writes the engine's events back as its JSON and NDJSON, and the model cards its clients list."""
