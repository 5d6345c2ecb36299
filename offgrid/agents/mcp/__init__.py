"""The MCP client: OffGrid speaks the Model Context Protocol (2025-11-25, and the versions a
server negotiates down to) to the MCP servers an admin adds, and offers their tools to agents
as `server__tool`.

    session.py   JSON-RPC 2.0 over a transport: ids, replies, timeouts, initialize, tools
    stdio.py     a server run as a child process, one JSON message per line
    http.py      a server reached over streamable HTTP (JSON or SSE replies, sessions)
    manager.py   the stored servers: connected in the background, restarted after a crash,
                 their statuses, and their tools as OffGrid tools
    errors.py    what can go wrong talking to a server

Standard library only: it ships in the .pyz.
"""
