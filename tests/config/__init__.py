"""Tests of `starcite.config`: defaults, the TOML file, environment overrides and validation (run: pytest tests/config)."""
