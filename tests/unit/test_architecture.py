"""The layers, as the README draws them: dependencies point inward only, and no cycle.

    the developer kit (bank/kit/)  ->  the application:
        handlers/ (Lambda)  ->  services/  ->  domain/
                       \\-> adapters/ ------^

The application never imports the kit: a Lambda artifact holds the application only.
The services know one module of the adapters, ``bank.adapters.errors``: the names of
what the database answers, which the retry loop acts on.

Read from the source (every ``import``, lazy ones inside functions included), not from
what happens to be loaded.
"""

import ast
from pathlib import Path

import pytest

BANK = Path(__file__).resolve().parents[2] / "bank"
LAYERS = ("domain", "services", "adapters", "handlers", "kit")
# What each layer may import from the others.
ALLOWED = {
    "domain": set(),
    "services": {"domain"},
    "adapters": {"domain"},
    "handlers": {"domain", "services", "adapters"},
    "kit": {"domain", "services", "adapters", "handlers"},
}
#: Single modules a layer may import beyond ALLOWED.
ALSO_ALLOWED = {"services": {"bank.adapters.errors"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(BANK.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("bank.")}


MODULES = {module_name(p): p for p in BANK.rglob("*.py")}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependencies_point_inward(module):
    own = layer(module)
    if own is None:
        return
    for imported in imports_of(MODULES[module]):
        other = layer(imported)
        if other is None or other == own or other in ALLOWED[own]:
            continue
        allowed = ALSO_ALLOWED.get(own, set())
        assert imported in allowed or imported.rpartition(".")[0] in allowed, \
            f"{module} ({own}) imports {imported} ({other})"


def test_no_import_cycle():
    graph = {
        name: {i for i in imports_of(path) if i in MODULES and i != name}
        for name, path in MODULES.items()
    }
    visiting, done = set(), set()

    def visit(node, trail):
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join(trail + [node])
        visiting.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        visiting.discard(node)
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_the_check_can_fail():
    """A module importing outward is caught (the rule above is not vacuous)."""
    assert "bank.adapters.database" in imports_of(MODULES["bank.handlers.ch07"])
    assert "adapters" not in ALLOWED["services"]
    assert "bank.kit.local" in imports_of(MODULES["bank.kit.cli.main"])
    assert all("kit" not in ALLOWED[layer] for layer in LAYERS if layer != "kit")


def test_the_application_is_the_four_packages_and_the_kit_is_apart():
    application = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert application == {"domain", "services", "adapters", "handlers", "kit"}
