"""The package's one direction of data: environment -> objects -> runners -> commands.

Every `import` in dke (module level or inside a function) may only point at its own stage
or an earlier one; the shared modules (diagnostics, exitcodes, contracts) import no stage.
A lazy import is still an arrow, so the check reads the source, not sys.modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dke"
# a stage may import from its own rank or lower ones
RANK = {"shared": 0, "environment": 1, "objects": 2, "runners": 3, "commands": 4, "cli": 4}
SHARED = {"diagnostics", "exitcodes", "contracts", "__init__", "__version__"}


def stage_of(module: str) -> str:
    """dke.environment.load -> environment; dke.diagnostics -> shared; dke.cli -> cli."""
    parts = module.split(".")
    if len(parts) == 1:
        return "shared"
    head = parts[1]
    if head == "__main__":  # `python -m dke`: the command line's own entry point
        return "cli"
    if head in SHARED:
        return "shared"
    return head


def dke_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dke":
                found += [(node.lineno, f"dke.{a.name}") for a in node.names]
            elif node.module.startswith("dke."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dke.")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(("dke", *path.relative_to(PACKAGE).with_suffix("").parts))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_only_at_the_same_or_an_earlier_stage(path):
    own = stage_of(module_name(path))
    assert own in RANK, f"{path}: a module outside the known stages ({own})"
    back = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} ({stage_of(target)})"
        for line, target in dke_imports(path)
        if RANK.get(stage_of(target), 99) > RANK[own]
    ]
    assert not back, "arrows back up the pipeline:\n" + "\n".join(back)


def test_the_core_never_imports_click():
    core = [p for p in MODULES if stage_of(module_name(p)) not in ("commands", "cli")]
    users = [
        str(p.relative_to(PACKAGE.parent))
        for p in core
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any(
            (getattr(node, "module", None) or a.name).split(".")[0] == "click"
            for a in (node.names if isinstance(node, ast.Import) else [node])
        )
    ]
    assert not users, users


def test_the_check_sees_a_lazy_import_back_up(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from dke.runners.kubeclient import connect\n")
    assert dke_imports(source) == [(2, "dke.runners.kubeclient")]
    assert RANK[stage_of("dke.runners.kubeclient")] > RANK[stage_of("dke.environment.load")]
