"""Helpers shared by the config tests: paths, size units, TOML text, the expected error.

Owns: the repository's root and `conf/` directory, the KiB/MiB/GiB
units, `toml_text` (a TOML document from dotted keys), `config_error` (the
message of a refused load) and `ENV_CASES` (every setting with each of its
environment variables). Must not: hold fixtures (those are in conftest.py),
or read the process environment.
"""

import json
import pathlib

import pytest

from starcite.config.settings import SETTINGS, ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
KiB, MiB, GiB = 1024, 1024**2, 1024**3


def toml_text(values: dict) -> str:
    """``{"http.port": 1}`` -> TOML with one table per dotted prefix (JSON literals are valid TOML here)."""
    tables = {}
    for dotted, value in values.items():
        table, _, leaf = dotted.rpartition(".")
        tables.setdefault(table, []).append(f"{leaf} = {json.dumps(value)}")
    return "\n".join(f"[{table}]\n" + "\n".join(lines) + "\n" if table else "\n".join(lines) + "\n"
                     for table, lines in tables.items())



def config_error(load, toml=None, **env) -> str:
    with pytest.raises(ConfigError) as info:
        load(toml, **env)
    return str(info.value)



ENV_CASES = [(name, env) for name, (_key, envs, *_rest) in SETTINGS.items() for env in envs]
