"""Inputs that once gave a wrong answer or a wrong reason: keypoints that do not fit their image,
symbolic link loops, old-format PyTorch files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_tools import assert_refused, run, snapshot, with_meta

from vp3d_engine.lifters.temporal import TemporalModel

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("size", [[1, 1], [64, 36]])
def test_keypoints_far_outside_the_image_they_claim(case: Path, size: list[int]) -> None:
    with_meta(case / "clip.npz", case / "tiny.npz", image_size=size)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "tiny.npz", "--bvh", "--quiet", cwd=case)
    assert_refused(result, "tiny.npz", f"{size[0]}x{size[1]}-pixel image")
    assert not (case / "clip.bvh").exists()


def test_keypoints_slightly_outside_the_image_are_fine(case: Path) -> None:
    """A person partly out of frame is normal: joints a little outside the image still convert."""
    with np.load(case / "clip.npz") as npz:
        xy = npz["keypoints_2d"].copy()
    xy[:, 15:, 1] += 0.25 * 480  # ankles below the bottom edge
    with_meta(case / "clip.npz", case / "cut.npz", keypoints_2d=xy)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "cut.npz", "--quiet", cwd=case)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("role", ["input", "keypoints", "checkpoint"])
def test_a_symlink_loop_is_called_a_symlink_loop(case: Path, role: str) -> None:
    os.symlink("b.npz", case / "a.npz")
    os.symlink("a.npz", case / "b.npz")
    before = snapshot(case)
    args = {"input": ["a.npz", "--bvh"], "keypoints": ["clip.mp4", "--keypoints", "a.npz"],
            "checkpoint": ["clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", "a.npz"]}[role]
    result = run("vp3d-convert", *args, "--quiet", cwd=case)
    assert_refused(result, "a.npz", "symbolic link loop")
    assert snapshot(case) == before


def test_an_old_format_torch_file_loads_when_trusted(case: Path) -> None:
    """A pre-zip ``torch.save`` file holding a non-tensor object: refused with the exact command,
    which then converts it."""
    torch.manual_seed(0)
    sd = TemporalModel(17, 2, 17, [3, 3], channels=16).state_dict()
    torch.save({"model_pos": sd, "args": argparse.Namespace(epochs=60)}, case / "old.bin",
               _use_new_zipfile_serialization=False)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", "old.bin",
                 "--quiet", cwd=case)
    line = assert_refused(result, "old.bin", "old, pre-zip", "argparse.Namespace", "--trust-pickle")
    assert "re-download" not in line and not (case / "out").exists()
    result = run("vp3d", "weights", "convert", "old.bin", "--out", "old_ckpt", cwd=case)
    assert_refused(result, "--trust-pickle")
    result = run("vp3d", "weights", "convert", "old.bin", "--out", "old_ckpt", "--trust-pickle", cwd=case)
    assert result.returncode == 0, result.stderr
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", "old_ckpt",
                 "--quiet", cwd=case)
    assert result.returncode == 0 and (case / "out" / "clip.npz").is_file(), result.stderr
