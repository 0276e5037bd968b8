"""Minimal asyncio wire clients, written for low per-operation CPU so the load
generator is not the bottleneck: each is an `asyncio.Protocol` that parses
straight out of a byte buffer (no stream coroutines per line)."""
