"""Run the Node glTF tools in ``tools/gltf`` from tests: the Khronos glTF Validator and three.js's GLTFLoader.

Both need ``node`` (18+) and ``bash scripts/setup_node_tools.sh`` once. A machine without node skips
the calling test; a machine with node but without the install fails it, since the check would
otherwise vanish silently from CI.

    report = validate_gltf(path)
    assert report["issues"]["numErrors"] == 0, issue_lines(report)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools" / "gltf"
SETUP_HINT = "run bash scripts/setup_node_tools.sh"
SEVERITIES = ("error", "warning", "info", "hint")  # the validator's severity numbers 0..3


class NodeToolsMissing(RuntimeError):
    """node is installed but ``tools/gltf/node_modules`` is not (or is incomplete)."""


class NodeToolFailed(RuntimeError):
    """A tool could not read the file at all (bad arguments, unrecognised format, GLTFLoader error)."""


def validate_gltf(path: str | Path) -> dict[str, Any]:
    """The Khronos glTF Validator's report on a ``.gltf`` (external or embedded buffers) or ``.glb``.

    Keys as the validator writes them: ``issues`` (``numErrors``, ``numWarnings``, ``numInfos``,
    ``numHints``, ``messages`` with ``code``, ``message``, ``severity`` 0..3 and ``pointer``),
    ``info`` (counts of nodes, animations...), ``validatorVersion``. A report with errors is
    returned, not raised; the caller asserts on it.
    """
    completed = _run_node("validate.mjs", str(path))
    if completed.returncode not in (0, 1):
        raise NodeToolFailed(f"validate.mjs could not validate {path}: {completed.stderr.strip()}")
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def issue_lines(report: dict[str, Any], worst: int = 3) -> str:
    """One line per message of severity ``worst`` or more serious (0 = errors only), for assertion text."""
    return "\n".join(
        f"{SEVERITIES[m['severity']]} {m['code']} at {m.get('pointer', '-')}: {m['message']}"
        for m in report["issues"]["messages"]
        if m["severity"] <= worst
    )


def three_load(path: str | Path, times: Sequence[float] | None = None, clip: str | None = None) -> dict[str, Any]:
    """What three.js's GLTFLoader makes of a file, with the clip ``clip`` (default: the first) sampled at ``times``.

    Returns ``three_revision``; ``nodes`` (every object in the scene, in traversal order:
    ``name``, ``type``, ``parent``); ``animations`` (``name``, ``duration`` in s, ``tracks`` with
    ``name`` such as ``"Hips.quaternion"``, ``times_length``, ``values_length``, ``value_size``,
    ``interpolation``); ``rest`` and one entry of ``samples`` per time, each with
    ``world_positions`` ``{name: [x, y, z]}`` in the file's units and ``world_quaternions``
    ``{name: [x, y, z, w]}``. Names are three.js's (sanitised: "." ":" "/" "[" "]" dropped, spaces
    to "_"). A time past the clip's end gives its last keyframe, not a wrap to 0.
    """
    args = [str(path)]
    if times is not None and len(times) > 0:
        args.append("--times=" + ",".join(repr(float(t)) for t in times))  # "=": a leading "-1.0" is no flag
    if clip is not None:
        args.append("--clip=" + clip)
    completed = _run_node("load_three.mjs", *args)
    if completed.returncode != 0:
        raise NodeToolFailed(f"three.js GLTFLoader could not load {path}: {completed.stderr.strip()}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _run_node(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (needed for the glTF Validator and three.js checks)")
    for package in ("gltf-validator", "three"):
        if not (TOOLS_DIR / "node_modules" / package / "package.json").is_file():
            raise NodeToolsMissing(f"{package} is not installed in {TOOLS_DIR / 'node_modules'}: {SETUP_HINT}")
    return subprocess.run(
        [node, str(TOOLS_DIR / script), *args], capture_output=True, text=True, timeout=120, check=False
    )
