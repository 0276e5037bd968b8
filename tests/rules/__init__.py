"""Unit and property tests of `starcite.rules`, the pure session rules (SPEC §2; run: pytest tests/rules)."""
