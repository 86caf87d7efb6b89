"""The depth package has no import circle: its shared module is a leaf, detection sits on top."""

import ast
from pathlib import Path

import pytest

pytest.importorskip("timm")

DEPTH = Path(__file__).resolve().parent.parent / "stereo_ops" / "depth"


def _local_imports(path: Path) -> set[str]:
    """Sibling modules imported anywhere in the file (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_no_import_cycles_in_the_depth_package():
    graph = {p.stem: _local_imports(p) for p in DEPTH.glob("*.py") if p.stem != "__init__"}
    assert graph["common"] == set(), "common.py must stay a leaf"
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join(trail + [name])
        state[name] = "open"
        for dep in graph.get(name, ()):
            visit(dep, trail + [name])
        state[name] = "done"

    for module in graph:
        visit(module, [])
