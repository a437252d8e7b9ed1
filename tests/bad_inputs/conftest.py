"""Inputs the bad-input tests build their cases from: one real clip converted once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_tools import run

CLIP_SECONDS = "2"


@pytest.fixture(scope="session")
def real_result(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``vp3d-convert`` result (2 s of a dance video through MediaPipe and the default lifter)."""
    folder = tmp_path_factory.mktemp("real")
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    result = run("vp3d-convert", video, "--end", CLIP_SECONDS, "--out", folder, "--quiet", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "dance_ball_480p.npz"


@pytest.fixture
def case(tmp_path: Path, real_result: Path) -> Path:
    """A fresh folder holding ``clip.npz``, a copy of the real result."""
    shutil.copy(real_result, tmp_path / "clip.npz")
    return tmp_path
