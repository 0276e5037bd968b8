"""The settings as documented: the reference table and the shipped config file, from `SETTINGS`.

Owns: `settings_table()` (the table in docs/configuration.md) and `documented_toml()` (the text
of conf/starcite.toml), each value spelled as TOML spells it; `tests/config/test_docs.py` keeps
both files in step with the code. Must not: parse or validate configuration
(`starcite.config.settings` does).
"""

from starcite.config.settings import SETTINGS


def settings_table() -> str:
    """Markdown table of every setting (docs/configuration.md is this, kept in step by a test)."""
    rows = ["| env | config key | default | purpose |", "| --- | --- | --- | --- |"]
    for name, (key, envs, _parser, default, help_) in SETTINGS.items():
        shown = "none" if default is None else f"`{_toml_value(default)}`"  # as the config file spells it
        rows.append(f"| `{'` / `'.join(envs)}` | `{key}` | {shown} | {help_} |")
    return "\n".join(rows)


def documented_toml() -> str:
    """The text of `conf/starcite.toml`: every setting under its table, with its help, env var and default."""
    lines = ["# Starcite node configuration. Every key is optional; the values shown are the defaults.",
             "# Environment variables (named on each key) override this file.",
             "# Start a node with it:  starcite serve --config conf/starcite.toml"]
    tables = {}
    for name, (key, envs, _parser, default, help_) in SETTINGS.items():
        table, leaf = key.rsplit(".", 1)
        tables.setdefault(table, []).append((leaf, envs, default, help_))
    for table, entries in tables.items():
        lines += ["", f"[{table}]"]
        for leaf, envs, default, help_ in entries:
            lines.append(f"# {help_}. Env: {', '.join(envs)}")
            if default is None:
                lines.append(f"# {leaf} = ...")
            else:
                lines.append(f"{leaf} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value >= 1024**2:
        for unit, size in (("GB", 1024**3), ("MB", 1024**2)):
            if value % size == 0:
                return f'"{value // size}{unit}"'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
