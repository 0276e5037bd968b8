"""Test helper: read the container files of the repository as data.

Owns: loading the compose files (YAML), Compose-style variable interpolation
(``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``) and a small
Dockerfile parser (line continuations, comments, stages, ``ARG`` defaults in
``FROM``). Must not: run Docker or reach the network; everything here is
static, read from the working tree.
"""

import dataclasses
import json
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.cluster.yml", "docker-compose.integration.yml"]
COMPOSE_SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_INTERPOLATION_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load_compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def compose_schema() -> dict:
    return json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))


def interpolations(text: str):
    """Every ``${...}`` in ``text`` as ``(name, op, arg)`` (op is None for a plain ``${NAME}``)."""
    for match in _INTERPOLATION_RE.finditer(text):
        yield match.group("name"), match.group("op"), match.group("arg")


def interpolate(value: str, env: dict) -> str:
    """Compose's substitution of ``value`` from ``env``; a missing ``:?`` variable raises KeyError."""

    def substitute(match):
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        if op in (":?", "?") and (current is None or (op == ":?" and current == "")):
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and (current is None or (op == ":-" and current == "")):
            return arg
        return current or ""

    return _INTERPOLATION_RE.sub(substitute, value.replace("$$", "\x00")).replace("\x00", "$")


def service_environment(service: dict) -> dict:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def starcite_services(compose: dict) -> dict:
    """The services that run Starcite: built from this repository's Dockerfile."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


# -- Dockerfile ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Instruction:
    keyword: str  # upper case, e.g. "FROM"
    args: str  # the rest of the (joined) line
    line: int  # first line of the instruction


@dataclasses.dataclass
class Stage:
    image: str  # with ARG defaults substituted
    name: str
    instructions: list


def dockerfile_instructions(path=ROOT / "Dockerfile") -> list:
    """Instructions with continuation lines joined and comments dropped."""
    instructions, pending, first = [], "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        first = first or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), first))
        first = 0
    return instructions


def dockerfile_stages(instructions) -> list:
    """The build stages in order; ``ARG`` before the first ``FROM`` gives the defaults of ``${...}``."""
    args, stages = {}, []
    for instruction in instructions:
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.args.partition("=")
            args[name.strip()] = default.strip()
        elif instruction.keyword == "FROM":
            words = instruction.args.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(image, name, []))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def exec_form(args: str):
    """``["a", "b"]`` -> ``["a", "b"]``; shell form -> None."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) else None
