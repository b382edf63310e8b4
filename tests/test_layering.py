"""The house rules of DESIGN.md, checked by reading the imports: layers point one way, no private names cross a
module boundary, and the package imports lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPPER_LAYERS = ("p2g3d.integrations", "p2g3d.jobs", "p2g3d.training", "p2g3d.cli", "p2g3d.app")


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "integrations":
        parts = ["p2g3d", "integrations", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(absolute module, imported names, line)`` of every import in ``path`` (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def core_modules() -> list[Path]:
    upper = ("jobs", "training", "app")
    return [
        p
        for p in sorted((ROOT / "p2g3d").rglob("*.py"))
        if p.name != "cli.py" and not any(part in upper for part in p.relative_to(ROOT / "p2g3d").parts)
    ]


def all_modules() -> list[Path]:
    return sorted((ROOT / "p2g3d").rglob("*.py")) + sorted((ROOT / "integrations").rglob("*.py"))


def test_the_module_lists_are_not_empty():
    assert len(core_modules()) >= 20 and len(all_modules()) > len(core_modules())


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_upper_layers(path):
    bad = [
        f"line {line}: {module}"
        for module, names, line in imports(path)
        if module.startswith(UPPER_LAYERS)
        or module.split(".")[0] == "integrations"
        or (module == "p2g3d" and set(names) & {"integrations", "jobs", "training", "cli"})
    ]
    assert not bad, f"{path.relative_to(ROOT)} imports an upper layer: {bad}"


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_a_module_boundary(path):
    bad = [
        f"line {line}: {name} from {module}"
        for module, names, line in imports(path)
        if module.startswith("p2g3d")
        for name in names
        if name.startswith("_") and name != "__version__"
    ]
    assert not bad, f"{path.relative_to(ROOT)} imports private names: {bad}"


def test_imports_are_lazy_and_leave_diffusers_alone():
    code = (
        "import sys, p2g3d, p2g3d.cameras, p2g3d.io, p2g3d.masks, p2g3d.framing, p2g3d.sampling\n"
        "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), sorted(sys.modules)\n"
        "from p2g3d import AmodalCompleter, Pix2GestaltPipeline\n"
        "import diffusers\n"
        "assert not hasattr(diffusers, 'Pix2GestaltPipeline') and not hasattr(diffusers, 'Zero123Pipeline')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def _defined_names(module: str) -> set[str] | None:
    """Top-level names a core module defines or imports (None if it is not a file of the package)."""
    parts = module.split(".")
    if parts[:2] == ["p2g3d", "integrations"]:
        return None
    base = ROOT.joinpath(*parts)
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        return None
    names = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    if path.name == "__init__.py":  # a package's submodules and its lazy exports count too
        names |= {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}
        exports = next(
            (n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_EXPORTS"), None
        )
        if exports is not None:
            names |= {key.value for key in exports.value.keys}
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "integrations").rglob("*.py")), ids=lambda p: p.name)
def test_integrations_import_only_public_core_names(path):
    """An adapter imports from the core only public names of public core modules: never jobs, training, the CLI,
    a private module, a private name, or a name the module does not define."""
    bad = []
    for module, names, line in imports(path):
        if not module.startswith("p2g3d") or module.startswith("p2g3d.integrations"):
            continue
        if module.startswith(UPPER_LAYERS) or any(part.startswith("_") for part in module.split(".")):
            bad.append(f"line {line}: {module} is not a public core module")
            continue
        defined = _defined_names(module)
        for name in names:
            if name.startswith("_") or (defined is not None and name not in defined):
                bad.append(f"line {line}: {name} is not a public name of {module}")
    assert not bad, f"{path.name}: {bad}"


def _import_graph(lazy: bool) -> dict[str, set[str]]:
    """Edges module -> package modules it imports (at import time only, unless ``lazy``: imports in functions and
    TYPE_CHECKING blocks count too). ``from package import submodule`` is an edge to the submodule."""
    modules = {module_name(path): path for path in all_modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if lazy else _import_time_nodes(tree)
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, node.module] if node.module else base)
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:
                        edges.add(f"{target}.{alias.name}")
                    elif target in modules:
                        edges.add(target)
        graph[name] = edges - {name}
    return graph


def _import_time_nodes(tree: ast.Module):
    """The import statements that run when the module is imported (top level, outside TYPE_CHECKING blocks)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from (n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))
        elif isinstance(node, ast.Try):
            yield from (n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("lazy", [False, True], ids=["import time", "with imports in functions"])
def test_no_import_cycles_inside_the_package(lazy):
    """No module imports itself through others, neither when imported nor through the imports its functions make
    (a package's ``__init__`` importing its own submodules is not a cycle)."""
    graph = _import_graph(lazy)
    for name in graph:  # a package may import its submodules; a submodule importing its package's __init__ may not
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".") and name + ".__init__" != m)}
    assert _cycles(graph) == []
