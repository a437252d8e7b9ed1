"""Import boundaries from ARCHITECTURE.md: converters never import torch or bpy, the engine never
imports bpy, and `vp3d --help` does not import torch (so it stays fast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


BLENDER_ADAPTER = "converters/blender_adapter.py"  # FBX export: the one module allowed bpy, lazily


def test_converters_import_neither_torch_nor_bpy_nor_the_engine() -> None:
    forbidden = {"torch", "bpy", "bpy_extras", "mathutils", "vp3d_engine", "blender_addon"}
    bad = {f: n & forbidden - ({"bpy", "bpy_extras"} if f == BLENDER_ADAPTER else set())
           for f, n in _imports("converters").items()}
    assert not {f: n for f, n in bad.items() if n}
    # ... and only inside functions, so importing converters never loads Blender.
    tree = ast.parse((ROOT / BLENDER_ADAPTER).read_text())
    top = {a.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top & {"bpy", "bpy_extras", "mathutils"}


def test_engine_never_imports_blender() -> None:
    bad = {f: n & {"bpy", "mathutils", "blender_addon"} for f, n in _imports("vp3d_engine").items()}
    assert not {f: n for f, n in bad.items() if n}


def test_cli_help_does_not_import_torch() -> None:
    code = ("import sys; from vp3d_engine.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_vp3d_help_runs_as_a_command() -> None:
    out = subprocess.run([sys.executable, "-m", "vp3d_engine.cli", "--help"], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    for word in ("train", "evaluate", "weights", "list"):
        assert word in out.stdout


#: The one circle left: a checkpoint path ending in .bin is loaded by original_weights, which builds on
#: checkpoints (breaking it needs a loader registry for checkpoint formats).
KNOWN_CYCLE = {"vp3d_engine.checkpoints", "vp3d_engine.original_weights"}


def test_imports_form_no_cycle() -> None:
    """Arrows point one way between the modules of vp3d_engine and converters, counting imports
    inside functions too (hiding an import in a function hides a circle, it does not remove it)."""
    graph: dict[str, set[str]] = {}
    for package in ("vp3d_engine", "converters"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            graph[name] = {node.module for node in ast.walk(ast.parse(path.read_text()))
                           if isinstance(node, ast.ImportFrom) and node.module
                           and node.module.split(".")[0] in ("vp3d_engine", "converters")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                circle = [*(trail[trail.index(dep):] if dep in trail else []), node, dep]
                assert set(circle) <= KNOWN_CYCLE, " -> ".join(circle)
            elif dep not in state:
                visit(dep, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_blender_addon_imports_only_blender_numpy_and_its_own_modules() -> None:
    """The add-on runs in Blender's Python: no torch, scipy, vp3d_engine, nor converters (it gets
    the numpy-only ones vendored by build_addon.py, imported relatively)."""
    allowed = set(sys.stdlib_module_names) | {"bpy", "bpy_extras", "mathutils", "numpy"}
    bad = {f: n - allowed for f, n in _imports("blender_addon").items()}
    assert not {f: n for f, n in bad.items() if n}
