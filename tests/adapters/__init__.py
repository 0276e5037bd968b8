"""Tests of the archive adapters and the archive read cache (run: pytest tests/adapters)."""
