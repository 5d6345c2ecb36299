"""OpenAI's Responses wire format: requests.py reads its bodies (input items, instructions,
tools, text.format) into the engine's chat request, responses.py writes the engine's events
back as a response object or its stream of events."""
