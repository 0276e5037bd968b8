"""Unit and property tests of `starcite.core.rules`, the pure session rules (SPEC §2; run: pytest tests/rules)."""
