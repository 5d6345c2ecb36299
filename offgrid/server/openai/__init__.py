"""OpenAI's wire format: requests.py reads its request bodies into typed requests, responses.py
writes the engine's events back as its JSON and Server-Sent Events."""
