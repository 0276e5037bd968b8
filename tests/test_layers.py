"""The house's floors: no module of `starcite` imports a room above its own, and no two modules import each other.

Owns: the map of rooms to floors (docs/architecture.md draws the same map)
and two checks read from the source with `ast` (imports inside functions
count too): every import goes to the module's own room or a lower floor, and
the module-level import graph has no cycle. Must not: import the modules it
reads (a check of text, not of behaviour).
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "starcite"

# Bottom up. A room may import its own modules and any room on a lower floor; rooms that share
# a floor do not import each other.
FLOORS = [
    ("core", "config", "telemetry", "_fanout"),  # pure rules; settings; logs, metrics, redaction
    ("adapters",),                               # the archive back ends
    ("peers",),                                  # the peer transport
    ("actors",),                                 # Raft groups, the archiver, the observer
    ("cluster",),                                # placement, routing, drain, the ops channel
    ("node",),                                   # the node, as parts
    ("api.auth",),
    ("api.http",),
    ("api.tails",),
    ("api.app",),
    ("api.server",),
    ("cli",),
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "starcite"
    if parts[0] == "api" and len(parts) > 1:
        return "api." + parts[1]
    return parts[0]


def imports_of(path: pathlib.Path, modules: set) -> set:
    """The `starcite` modules ``path`` imports (``from pkg import submodule`` names the submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("starcite"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("starcite"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found


def import_graph() -> dict:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    return {module: imports_of(path, set(paths)) - {module} for module, path in paths.items()}


def test_every_room_has_a_floor():
    rooms = {room_of(module) for module in import_graph()} - {"starcite", "api"}
    assert rooms <= set(FLOOR), f"rooms without a floor: {sorted(rooms - set(FLOOR))}"


def test_no_import_runs_up_or_sideways():
    wrong = []
    for module, targets in import_graph().items():
        room = room_of(module)
        if room not in FLOOR:
            continue  # a package's own __init__
        for target in targets:
            other = room_of(target)
            if other == room or other not in FLOOR:
                continue
            if FLOOR[other] >= FLOOR[room]:
                wrong.append(f"{module} ({room}) imports {target} ({other})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_two_modules_import_each_other_through_any_path():
    graph = import_graph()
    state, cycles = {}, []

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)
