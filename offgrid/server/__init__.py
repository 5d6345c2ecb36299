"""The HTTP server: a hand-written ThreadingHTTPServer speaking REST and Server-Sent Events."""
