"""``vp3d train --recipe``: every stage's values pass the command line's own bounds, and the recipe
file is a small regular file, all checked before the first stage trains (issue 27, finding 13).
Nothing here trains: each case must fail before any stage folder or checkpoint exists."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vp3d_engine.cli import main

BIN = Path(sys.executable).parent
STAGE = {"name": "first", "epochs": 1, "batch_size": 64, "samples_per_epoch": 64, "seed": 1}


def _train(tmp_path: Path, recipe: str | Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``vp3d train --recipe`` on an empty data folder: the error line (exit 2) and nothing written."""
    (tmp_path / "takes").mkdir(exist_ok=True)
    code = main(["train", "--data", str(tmp_path / "takes"), "--out", str(tmp_path / "ck"), "--recipe", str(recipe),
                 "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert not (tmp_path / "ck").exists() and not (tmp_path / "ck-stages").exists()
    return err[0]


def _recipe(tmp_path: Path, options: dict[str, Any], *stages: dict[str, Any]) -> Path:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"options": {"lifter": "test", **options}, "stages": list(stages)}))
    return path


@pytest.mark.parametrize(("options", "stage", "needle"), [
    ({}, {"batch_size": 10**15}, "batch_size (--batch-size): must be from 1 to"),
    ({}, {"chunk": 10**12}, "chunk (--chunk): must be from 1 to 10000"),
    ({}, {"lr": 1e300}, "lr (--lr): must be from 1e-12 to 10, not 1e+300"),
    ({}, {"samples_per_epoch": 0}, "samples_per_epoch must be at least 1"),
    ({}, {"filter_widths": [3, 99]}, None),  # a shared option: refused in options, below
    ({"val_views": 10**9}, {}, "val_views (--val-views): must be from 1 to 64"),
    ({"filter_widths": [3, 99]}, {}, "filter_widths (--filter-widths): must be from 1 to 15, not 99"),
    ({"channels": 10**6}, {}, "channels (--channels): must be from 1 to 4096"),
    ({"fps": 1e6}, {}, "fps (--fps): must be from 1 to 1000"),
    ({"lifter": "nope"}, {}, "lifter (--lifter): 'nope' is not one of"),
    ({}, {"name": "a" * 300}, "must be unique letters, digits, - or _ (at most 64 characters"),
    ({}, {"name": "tab\tname"}, "must be unique letters"),
], ids=["batch_size 1e15", "chunk 1e12", "lr 1e300", "samples 0", "filter_widths in a stage", "val_views 1e9",
        "filter_widths 99", "channels 1e6", "fps 1e6", "unknown lifter", "300-character name", "tab in name"])
def test_a_value_the_command_line_refuses_is_refused_in_any_stage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: dict[str, Any], stage: dict[str, Any],
        needle: str | None) -> None:
    if needle is None:
        line = _train(tmp_path, _recipe(tmp_path, options, {**STAGE, **stage}), capsys)
        assert "'filter_widths' (shared by all stages" in line, line
        return
    # In the first stage, and in a later one behind a good first stage (found before the first trains).
    for stages in ([{**STAGE, **stage}], [STAGE, {**STAGE, "name": "second", **stage}]):
        line = _train(tmp_path, _recipe(tmp_path, options, *stages), capsys)
        assert needle in line, line
        if stage and len(stages) == 2:
            assert "stage 2" in line, line


def _vp3d_train(tmp_path: Path, recipe: str | Path) -> subprocess.CompletedProcess[str]:
    """The real command, in a process of its own with 2 GiB of address space and a time limit (the
    old code read ``/dev/zero`` until memory ran out and waited on a named pipe forever)."""
    (tmp_path / "takes").mkdir(exist_ok=True)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run([str(BIN / "vp3d"), "train", "--data", "takes", "--out", "ck", "--recipe", str(recipe)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, preexec_fn=limit)


@pytest.mark.parametrize("kind", ["named pipe", "/dev/zero", "folder", "link to /dev/zero", "2 MB file"])
def test_a_recipe_that_is_no_small_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    target: str | Path = tmp_path / "recipe.json"
    if kind == "named pipe":
        os.mkfifo(target)
    elif kind == "/dev/zero":
        target = "/dev/zero"
    elif kind == "folder":
        Path(target).mkdir()
    elif kind == "link to /dev/zero":
        Path(target).symlink_to("/dev/zero")
    else:
        Path(target).write_text(json.dumps({"description": "x" * (2 << 20), "stages": [STAGE]}))
    result = _vp3d_train(tmp_path, target)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"vp3d train: error: --recipe {target}: "), lines
    wanted = {"named pipe": "not a regular file", "/dev/zero": "not a regular file", "folder": "is a folder",
              "link to /dev/zero": "not a regular file", "2 MB file": "is no recipe"}[kind]
    assert wanted in lines[0], lines
    assert not (tmp_path / "ck").exists() and not (tmp_path / "ck-stages").exists()
