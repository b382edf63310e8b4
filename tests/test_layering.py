"""The house rules of DESIGN.md, checked by reading the imports: layers point one way, no private names cross a
module boundary, and the package imports lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPPER_LAYERS = ("p2g3d.integrations", "p2g3d.jobs", "p2g3d.training", "p2g3d.cli")


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
    upper = ("jobs", "training")
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


@pytest.mark.parametrize("path", sorted((ROOT / "integrations").rglob("*.py")), ids=lambda p: p.name)
def test_integrations_import_only_public_core_names(path):
    bad = [
        f"line {line}: {module}"
        for module, _, line in imports(path)
        if module.startswith(("p2g3d.jobs", "p2g3d.training", "p2g3d.cli"))
    ]
    assert not bad, f"{path.name} imports jobs, training or the CLI: {bad}"


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
