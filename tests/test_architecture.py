"""The house keeps its shape: layers import only downwards, no import cycles, the core never imports a plugin,
and the style rules that ruff cannot check.

Layers, bottom up (DESIGN.md, "The house"); a module may import its own package and any lower layer, never a
higher one nor another package of its own layer:

0. ``_version``, ``errors``
1. leaf helpers: ``fileio``, ``configuration``, ``specs``, ``hookspecs``, ``geometry``, ``tables``, ``interchange``,
   ``devices``, ``provenance``, ``templates``
2. the plugin host ``plugins`` and the Hub transport ``hub``
3. capabilities: ``subspaces``, ``metrics``, ``data``, ``backbones``
4. ``adapters`` (attach to backbones, read subspace bundles)
5. ``publishing``, ``testing``, ``builtin``
6. ``pipelines`` (orchestration)
7. ``cli``
8. ``__main__``
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "subspace_hub"

LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "fileio": 1,
    "configuration": 1,
    "specs": 1,
    "hookspecs": 1,
    "geometry": 1,
    "tables": 1,
    "interchange": 1,
    "provenance": 1,
    "templates": 1,
    "devices": 1,
    "plugins": 2,
    "hub": 2,
    "subspaces": 3,
    "metrics": 3,
    "data": 3,
    "backbones": 3,
    "adapters": 4,
    "publishing": 5,
    "testing": 5,
    "builtin": 5,
    "pipelines": 6,
    "cli": 7,
    "__main__": 8,
}
"""Top-level component (module or package of ``subspace_hub``) -> layer."""

ROOT_FACE_LAYER = 4
"""``subspace_hub/__init__.py`` re-exports adapters, backbones, plugins and specs: importing it is importing layer 4."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_imports(tree: ast.AST) -> list[tuple[ast.stmt, bool]]:
    """(import statement, at module level) for every import that runs (``if TYPE_CHECKING:`` blocks skipped)."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub, top)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, top))
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, True)
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``subspace_hub`` modules that module ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node, _ in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            targets.add(candidate if candidate in known else base)
    return {t for t in targets if t == "subspace_hub" or t.startswith("subspace_hub.")}


def component(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else ""


def layer(module: str) -> int:
    return ROOT_FACE_LAYER if module == "subspace_hub" else LAYERS[component(module)]


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported_modules(name, path, known) for name, path in found.items()}


def test_every_component_has_a_layer():
    unknown = sorted({component(m) for m in modules() if m != "subspace_hub"} - set(LAYERS))
    assert not unknown, f"add these to LAYERS (and DESIGN.md): {unknown}"


def test_imports_only_go_down():
    wrong = []
    for module, targets in import_graph().items():
        if module == "subspace_hub":
            continue
        for target in targets:
            same_component = component(target) == component(module) and target != "subspace_hub"
            if same_component:
                continue
            if layer(target) >= layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if target == "subspace_hub" or target not in graph:
                continue  # the root face re-exports; its own imports are checked as a module of layer 4
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_core_never_imports_a_plugin():
    plugin_modules = {p.name for p in (ROOT / "plugins").glob("*/subspace_hub_*") if p.is_dir()}
    offenders = [
        f"{module} imports {alias}"
        for module, path in modules().items()
        for node, _ in _runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
        for alias in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        if alias.split(".")[0] in plugin_modules
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_standard_library_imports_sit_at_the_top(path):
    """Imports inside functions are for heavy or optional packages (torch, datasets, peft, ...), never for the
    standard library, which costs nothing to import at the top of the module."""
    stdlib = set(sys.stdlib_module_names)
    inside = [
        f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}"
        for node, top in _runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
        if not top
        and any(
            name.split(".")[0] in stdlib
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
            if not (isinstance(node, ast.ImportFrom) and node.level)
        )
    ]
    assert not inside, "\n".join(inside)
