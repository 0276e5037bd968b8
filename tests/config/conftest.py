"""Fixtures of the config tests: loading a temporary TOML file with an explicit environment.

Owns: the `load` fixture (a ``starcite.toml`` under the test's tmp_path and an
``environ`` dict, never the process environment). Must not: depend on the
machine's environment variables; helpers live in `tests.config.helpers`.
"""

import pytest

from starcite.config.settings import load_config
from tests.config.helpers import toml_text


@pytest.fixture
def load(tmp_path):
    """``load(toml=None, **env)``: write ``toml`` (str, or dict for `toml_text`) and load it with ``env``."""

    def _load(toml=None, **env):
        path = None
        if toml is not None:
            path = tmp_path / "starcite.toml"
            path.write_text(toml if isinstance(toml, str) else toml_text(toml), encoding="utf-8")
        return load_config(str(path) if path else None, env)

    return _load
