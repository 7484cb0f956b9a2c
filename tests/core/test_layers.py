"""The package's structure holds: layers that import only downwards, no cycle, each framework in its adapter.

Read from the source with ``ast``, imports inside functions included (a deferred import
hides a cycle; it does not remove it), those under ``if TYPE_CHECKING:`` left out (they
never run).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import byok_tasks

PACKAGE = Path(byok_tasks.__file__).parent

# Lowest first. A module imports only modules of lower layers; the top two are the
# adapters and the tools built on them, which nothing of the core imports.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "_exceptions _words _extras names redaction running",
        "providers",
        "keyring",
        "context",
        "failure header",
        "settings evidence storm",
        "keys classification",
        "report",
        "retry startup concurrency health",
        "propagation",
        "celery rq dramatiq sentry asgi langchain otel prometheus triage",
        "wsgi cli testing",
    )
)
ADAPTERS = LAYERS[-2] | LAYERS[-1]

# Third-party packages, and the modules that alone may import them.
FRAMEWORKS = {
    "celery": {"celery", "otel"},  # otel tags Celery's task spans
    "kombu": {"celery"},
    "rq": {"rq"},
    "dramatiq": {"dramatiq"},
    "sentry_sdk": {"sentry", "testing"},
    "opentelemetry": {"otel"},
    "prometheus_client": {"prometheus"},
    "langchain_core": {"langchain"},
    "starlette": {"asgi"},
    "redis": {"keyring", "health", "rq", "testing"},  # a store client: the key store, key health, RQ
    "cryptography": {"keyring"},
    "fakeredis": {"testing"},
    "brotli": {"testing"},
    "pytest": {"testing"},
    "rich": {"triage"},
    "demo": {"cli"},  # `byok-tasks demo`, from a checkout
}


def unit_of(module: str) -> str:
    """The layer unit of ``byok_tasks.a.b``: ``a`` (a package, such as providers or testing, is one unit)."""
    return module.split(".")[1] if module.count(".") else "__init__"


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _runs(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (grandchild for other in child.orelse for grandchild in [other, *_walk(other)])
            continue
        yield child
        yield from _runs(child)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    yield from _runs(node)


def imports_of(module: str, path: Path) -> Iterator[str]:
    """Every module ``module`` imports when it runs, absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _runs(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if _is_module(candidate) else base


def _is_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] != "byok_tasks":
        return False
    path = PACKAGE.parent.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in modules():
        edges[module] = {name for name in imports_of(module, path) if name.split(".")[0] == "byok_tasks"}
    return edges


def layer_of(unit: str) -> int:
    [index] = [index for index, layer in enumerate(LAYERS) if unit in layer]
    return index


def test_every_module_has_a_layer() -> None:
    units = {unit_of(module) for module, _ in modules()} - {"__init__"}
    assert units <= set().union(*LAYERS), f"modules without a layer in LAYERS: {sorted(units - set().union(*LAYERS))}"


def test_the_core_imports_only_downwards() -> None:
    upward = []
    for module, imported in internal_edges().items():
        unit = unit_of(module)
        if unit == "__init__":
            continue  # the package's front door re-exports the core
        for name in imported:
            target = unit_of(name)
            if target == "__init__":
                upward.append(f"{module} imports the package's __init__")
            elif target != unit and not layer_of(target) < layer_of(unit):
                upward.append(f"{module} (layer {layer_of(unit)}) imports {name} (layer {layer_of(target)})")
    assert upward == []


def test_there_is_no_import_cycle() -> None:
    edges = internal_edges()
    cycles = [cycle for cycle in _strongly_connected(edges) if len(cycle) > 1]
    assert cycles == []


def test_the_package_front_door_imports_no_adapter() -> None:
    adapters = {name for name in internal_edges()["byok_tasks"] if unit_of(name) in ADAPTERS}
    assert adapters == set()


def test_each_framework_is_imported_only_by_its_adapter() -> None:
    strays = []
    for module, path in modules():
        for name in imports_of(module, path):
            top = name.split(".")[0]
            allowed = FRAMEWORKS.get(top)
            if allowed is not None and unit_of(module) not in allowed:
                strays.append(f"{module} imports {name}")
            elif top not in FRAMEWORKS and top != "byok_tasks" and top not in sys.stdlib_module_names:
                strays.append(f"{module} imports {name}, which FRAMEWORKS does not place")
    assert strays == []


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's algorithm: each component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
