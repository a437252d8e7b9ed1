"""Tiny files that claim huge sizes are refused before anything is allocated. Each runs under an
address-space limit, so a regression fails with a MemoryError instead of swapping the machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_tools import MEMORY_LIMIT, assert_refused, run, snapshot, with_meta

from vp3d_engine.lifters.temporal import TemporalModel

pytestmark = pytest.mark.shared_data


def _openpose_frame(path: Path, xy: np.ndarray) -> None:
    body25 = np.zeros((25, 3))
    coco_to_body25 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    body25[coco_to_body25, :2] = xy
    body25[coco_to_body25, 2] = 0.9
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}))


def test_openpose_folder_with_frame_numbers_a_trillion_apart(case: Path) -> None:
    with np.load(case / "clip.npz") as npz:
        xy = npz["keypoints_2d"]
    folder = case / "clip_openpose"
    folder.mkdir()
    _openpose_frame(folder / "clip_000000000000_keypoints.json", xy[0])
    _openpose_frame(folder / "clip_999999999999_keypoints.json", xy[1])
    before = snapshot(case)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", folder, "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "999999999999", "only 2 files")
    assert snapshot(case) == before


@pytest.mark.parametrize("fps", [1e6, 1e12, 0.0, -30.0, "30"])
@pytest.mark.parametrize("how", ["reexport", "keypoints"])
def test_result_with_an_absurd_frame_rate(case: Path, fps: object, how: str) -> None:
    with_meta(case / "clip.npz", case / "bad.npz", fps=fps)
    before = snapshot(case)
    args = ["bad.npz", "--bvh"] if how == "reexport" else ["clip.mp4", "--keypoints", "bad.npz", "--out", "out"]
    result = run("vp3d-convert", *args, "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "bad.npz", "frame rate")
    assert snapshot(case) == before


def test_result_whose_timestamps_span_a_thousand_years(case: Path) -> None:
    with np.load(case / "clip.npz") as npz:
        times = npz["timestamps"].copy()
    times[-1] = 3e10
    with_meta(case / "clip.npz", case / "bad.npz", timestamps=times)
    result = run("vp3d-convert", "bad.npz", "--glb", "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "bad.npz", "timestamps")
    assert not (case / "bad.glb").exists()


def _original_bin(path: Path, channels: int) -> Path:
    """An original-style ``.bin`` whose first layer claims ``channels`` (a zero-stride tensor: a
    few kilobytes on disk)."""
    sd = TemporalModel(17, 2, 17, [3, 3], channels=16).state_dict()
    sd["expand_conv.weight"] = torch.zeros(1, 1, 1).expand(channels, 34, 3)
    torch.save({"model_pos": sd}, path)
    assert path.stat().st_size < 100_000
    return path


def test_original_bin_claiming_a_hundred_thousand_channels(case: Path) -> None:
    _original_bin(case / "huge.bin", 100_000)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", "huge.bin",
                 "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "huge.bin", "channels 100000")
    assert not (case / "out").exists()


@pytest.mark.parametrize(("change", "needle"), [
    ({"channels": 1_000_000}, "channels 1000000"),
    ({"channels": 16, "filter_widths": [15, 15, 15, 3]}, "receptive field"),
    ({"channels": 4096, "filter_widths": [3, 3, 3, 3, 3, 3, 3]}, "parameters"),
    ({"filter_widths": [0, 3]}, "odd"),
    ({"filter_widths": [4, 3]}, "odd"),
    ({"channels": -5}, "channels -5"),
    ({"channels": "wide"}, "channels 'wide'"),
])
def test_checkpoint_config_asking_for_an_impossible_model(case: Path, change: dict[str, object], needle: str) -> None:
    folder = case / "ckpt"
    shutil.copytree(Path(__file__).resolve().parents[2] / "checkpoints" / "default", folder)
    config = json.loads((folder / "config.json").read_text())
    config["architecture"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", folder,
                 "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "config.json", needle)
    assert not (case / "out").exists()
