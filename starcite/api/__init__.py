"""The edge: Falcon resources, auth, WebSocket tails, the gunicorn worker.

Owns: turning HTTP and WebSocket traffic into `Node` calls and rendering
results and errors. Must not: hold session state or decide session rules.
"""
