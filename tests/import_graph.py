"""The package's import graph, read from the source, and what breaks its layering.

Layers, lowest first (conventions, "dependency direction"): a module may import from its own
group and from lower layers only, at module level; nothing may import ``pixelrnn`` itself or
the CLI. Imports inside functions or classes are reported wherever they name a ``pixelrnn``
module: they hide a dependency (and usually a circle) from this check.
"""

from __future__ import annotations

import ast
from pathlib import Path

# group → layer; a module belongs to the longest group that prefixes its name
LAYERS: dict[str, int] = {
    "pixelrnn.version": 0,
    "pixelrnn.config_io": 0,
    "pixelrnn.units": 0,
    "pixelrnn.files": 0,
    "pixelrnn.device": 0,
    "pixelrnn.allocator": 0,
    "pixelrnn.native": 0,
    "pixelrnn.data": 1,
    "pixelrnn.images": 1,
    "pixelrnn.nn": 2,
    "pixelrnn.distributions": 2,
    "pixelrnn.models": 3,
    "pixelrnn.sampling": 4,
    "pixelrnn.compression": 5,
    "pixelrnn.demo": 5,
    "pixelrnn.training": 5,
    "pixelrnn.cli": 6,
    "pixelrnn.__main__": 7,
    "pixelrnn": 7,  # the package's public face imports from every layer below the CLI
}


def module_name(path: Path, root: Path) -> str:
    """``root/pkg/a/b.py`` → ``pkg.a.b``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def group_of(module: str, layers: dict[str, int]) -> str:
    """The longest group name in ``layers`` that is ``module`` or a package above it."""
    matches = [g for g in layers if module == g or module.startswith(g + ".")]
    if not matches:
        raise KeyError(f"{module} belongs to no layer: add it to LAYERS")
    return max(matches, key=len)


def _target(node: ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The modules a ``from … import …`` statement loads (a name that is a submodule counts as
    that submodule)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules]
    return found or [source]


def import_edges(root: Path, package: str) -> list[tuple[str, str, int, bool]]:
    """Every import of a ``package`` module: (importer, imported, line, at module level)."""
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    edges = []
    for f in files:
        module = module_name(f, root)
        tree = ast.parse(f.read_text(), str(f))
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _target(node, module, f.name == "__init__.py", modules)
            else:
                continue
            for target in targets:
                if target == package or target.startswith(package + "."):
                    edges.append((module, target, node.lineno, id(node) in top_level))
    return edges


def import_problems(root: Path, package: str, layers: dict[str, int]) -> list[str]:
    """Every function-level import, upward or sideways import, and import circle."""
    problems = []
    graph: dict[str, set[str]] = {}
    for importer, imported, line, top in import_edges(root, package):
        where = f"{importer}:{line}"
        if not top:
            problems.append(f"{where}: imports {imported} inside a function or class")
            continue
        graph.setdefault(importer, set()).add(imported)
        source, target = group_of(importer, layers), group_of(imported, layers)
        if source == target:
            continue
        if layers[target] >= layers[source]:
            problems.append(
                f"{where}: {source} (layer {layers[source]}) imports {imported} "
                f"({target}, layer {layers[target]})"
            )
    problems += [f"import circle: {' -> '.join(c)}" for c in _circles(graph)]
    return problems


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of two or more modules (Tarjan), or a
    module that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles
