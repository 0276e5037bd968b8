"""Tests of `starcite.config.settings`: defaults, the TOML file, environment overrides and validation (run: pytest tests/config)."""
