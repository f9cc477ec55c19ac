"""The shape of the code (issue 10): small modules, no import cycle, and imports that flow one way
— bindings → use cases → adapters → engine → records."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600

# Each module's layer: a module may import modules of its own layer and of lower layers, except
# that the adapters (workbook, storage, documents) do not import one another.
ADAPTERS = 2
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (4, ("function_app", "invoicing.__main__", "invoicing.cli", "invoicing.functions",
         "invoicing.outcomes", "invoicing.views")),
    (3, ("invoicing.services", "invoicing.preview")),
    (2, ("invoicing.workbook", "invoicing.storage", "invoicing.documents")),
    (1, ("invoicing.engine", "invoicing.shares", "invoicing.catchup", "invoicing.schedule",
         "invoicing.money", "invoicing.tax", "invoicing.parties", "invoicing.runlog",
         "invoicing.details", "invoicing.gcpause")),
    (0, ("invoicing.model", "invoicing.errors", "invoicing.settings", "invoicing.requests")),
]


def modules() -> dict[str, Path]:
    found = {"function_app": ROOT / "function_app.py"}
    for path in (ROOT / "invoicing").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(name: str) -> tuple[int, str]:
    for rank, prefixes in LAYERS:
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return rank, prefix
    raise AssertionError(f"{name} has no layer: add it to LAYERS")


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules ``name`` imports, anywhere in it (lazy imports too), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*kept, base] if base else kept)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target not in (name, "invoicing"):
                out.add(target)
                break
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_imports_flow_down_the_layers():
    wrong = []
    for name, targets in graph().items():
        if name == "invoicing":
            continue  # the package's own __init__: a docstring
        rank, package = layer_of(name)
        for target in targets:
            target_rank, target_package = layer_of(target)
            across = target_rank == rank == ADAPTERS and target_package != package
            if target_rank > rank or across:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_no_import_cycle():
    edges = graph()
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == []


def test_function_app_only_registers_blueprints():
    tree = ast.parse((ROOT / "function_app.py").read_text(encoding="utf-8"))
    statements = [type(n).__name__ for n in tree.body]
    assert set(statements) <= {"Expr", "Import", "ImportFrom", "Assign"}
    calls = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Expr)][1:]  # after the doc
    assert all(c.startswith("app.register_functions(") or c.startswith("Settings.") for c in calls)
