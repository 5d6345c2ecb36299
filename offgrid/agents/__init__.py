"""Agents: a model that works a task through in steps, calling tools (built-in ones and those of
MCP servers) and reading their results, until it answers."""
