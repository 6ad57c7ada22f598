"""The import order of ../shared/DESIGN.md holds: entry points (gateway.v1, gateway.dashboard,
gateway.api and the project's wiring) -> gateway.serving -> tenancy (the rest of gateway) ->
billing, media, conversations, caching -> usage -> providers. No module imports a layer above its own,
the management API never imports the dashboard, and no import cycle exists among module-level
imports. Read from the source with ast, so it cannot drift from the code."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = {"v1", "dashboard", "api", "handlers", "urls", "asgi", "views", "admin", "admin_site", "management", "apps",
         "settings", "probes", "exposition"}
APPS = {"billing": 3, "media": 3, "conversations": 3, "caching": 3, "usage": 4, "providers": 5}


def layer_of(module: str) -> int | None:
    top, _, rest = module.partition(".")
    if top == "gateway":
        second = rest.split(".")[0]
        return 0 if second in ENTRY or not rest else 1 if second == "serving" else 2
    return APPS.get(top)


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] not in {"gateway", *APPS} or "migrations" in parts:
            continue
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def imports_of(path: Path, *, module_level: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_imports_against_the_flow():
    against = []
    for module, path in modules().items():
        own = layer_of(module)
        for name in imports_of(path, module_level=False):
            other = layer_of(name)
            if own is not None and other is not None and other < own:
                against.append(f"{module} imports {name}")
            if module.startswith("gateway.api") and name.startswith("gateway.dashboard"):
                against.append(f"{module} imports {name} (the management API uses tenancy, never pages)")
    assert not against, "\n".join(sorted(against))


def test_no_import_cycle():
    found = modules()
    graph = {module: {name for name in imports_of(path, module_level=True) if name in found and name != module}
             for module, path in found.items()}
    cycles, seen = [], set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in trail and (start, nxt) not in seen:
                    seen.add((start, nxt))
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, "\n".join(sorted(set(cycles))[:20])
