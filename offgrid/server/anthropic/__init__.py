"""Anthropic's Messages wire format: requests.py reads its bodies into the engine's chat
request, responses.py writes the engine's events back as messages, their event stream, and
Anthropic's error shape."""
