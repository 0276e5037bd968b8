"""Tests of the `Config` object and of what is generated from `SETTINGS`: docs and shipped files.

Owns: `Config.replace` and unknown attributes, the settings table (every
variable and key, and its copy in docs/configuration.md), and the shipped ``conf/*.toml``
(every key parses; ``conf/starcite.toml`` loads and is `documented_toml()`).
Must not: depend on the machine's environment variables, or write the
files it checks (regenerate them by hand).
"""

import tomllib

import pytest

from starcite.config import settings as cfg
from starcite.config import settings_docs
from starcite.config.settings import SETTINGS, Config, load_config
from tests.config.helpers import CONF_DIR, ENV_CASES, ROOT


# -- Config object and docs ------------------------------------------------------------------


def test_config_replace_and_unknown_attribute():
    config = load_config(None, {})
    changed = config.replace(port=4242)
    assert (changed.port, config.port) == (4242, 4000)
    assert isinstance(changed, Config)
    with pytest.raises(AttributeError):
        config.no_such_setting  # noqa: B018


def test_settings_table_lists_every_env_var_and_key():
    table = settings_docs.settings_table()
    for name, env in ENV_CASES:
        assert f"`{env}`" in table and f"`{SETTINGS[name][0]}`" in table


# -- shipped config files ----------------------------------------------------------------------


def conf_files():
    return sorted(CONF_DIR.glob("*.toml")) or [pytest.param(None, marks=pytest.mark.skip("no conf/*.toml yet"))]


@pytest.mark.parametrize("path", conf_files(), ids=lambda p: getattr(p, "name", "none"))
def test_every_key_of_shipped_config_parses(path):
    tree = tomllib.loads(path.read_text(encoding="utf-8"))
    parsers = {key: parser for key, _envs, parser, *_rest in SETTINGS.values()}
    for dotted in cfg._walk(tree):
        assert dotted in parsers, f"{path.name}: unknown key {dotted}"
        parsers[dotted](cfg._lookup(tree, dotted))


@pytest.mark.skipif(not (CONF_DIR / "starcite.toml").exists(), reason="conf/starcite.toml not written yet")
def test_default_config_file_loads_with_empty_env():
    load_config(str(CONF_DIR / "starcite.toml"), {})


def test_configuration_doc_table_matches_the_code():
    """docs/configuration.md's table is generated from SETTINGS; regenerate it when a setting changes."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert settings_docs.settings_table() in doc


def test_shipped_config_file_is_generated_from_the_settings():
    """conf/starcite.toml documents every setting; regenerate it with `starcite.config.settings_docs.documented_toml()`."""
    assert (CONF_DIR / "starcite.toml").read_text(encoding="utf-8") == settings_docs.documented_toml()
