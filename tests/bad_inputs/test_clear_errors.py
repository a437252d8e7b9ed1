"""Every bad file or flag ends in one line that says what is wrong, never a traceback; a bad input
in a batch never stops the others."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from bvh_text import ROOT6, ROT3, JointSpec, render_bvh
from cli_tools import assert_refused, coco_results, error_lines, run, snapshot, with_meta

pytestmark = pytest.mark.shared_data

REPO = Path(__file__).resolve().parents[2]


def _bvh(path: Path, frames: int = 2, frame_time: float = 1 / 30) -> Path:
    joints: list[JointSpec] = [("Hips", None, (0, 90, 0), ROOT6, None), ("Spine", "Hips", (0, 20, 0), ROT3, (0, 30, 0))]
    path.write_text(render_bvh(joints, np.zeros((frames, 9)), frame_time=frame_time))
    return path


@pytest.mark.parametrize("where", ["file", "under a file", "unwritable"])
def test_a_bad_out_is_refused_before_any_work(case: Path, shared_data: Path, where: str) -> None:
    (case / "results").write_text("a file, not a folder")
    out = {"file": case / "results", "under a file": case / "results" / "sub", "unwritable": Path("/proc/vp3d")}[where]
    before = snapshot(case)
    start = time.monotonic()
    result = run("vp3d-convert", shared_data / "videos" / "taiji_indoor_720p.mp4", "--out", out, "--bvh", cwd=case)
    line = assert_refused(result, str(out))  # one line: MediaPipe never started (it would have logged)
    assert ("is a file" if where == "file" else "file" if where == "under a file" else "cannot be written") in line
    assert time.monotonic() - start < 15 and snapshot(case) == before


@pytest.mark.parametrize(("frames", "frame_time", "needle"), [
    (2, 1e-320, "frame time"), (2, 0.0, "frame time"), (2, 2000.0, "frame time"), (0, 0.0333, "no frames")])
def test_a_bvh_with_a_broken_frame_count_or_time(case: Path, frames: int, frame_time: float, needle: str) -> None:
    _bvh(case / "take.bvh", frames, frame_time)
    result = run("vp3d-convert", "take.bvh", "--bvh", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "take.bvh", needle)
    assert not (case / "out").exists()


def test_coco_json_whose_images_is_a_number(case: Path) -> None:
    anns = json.loads(coco_results(case / "clip.npz", case / "clip.json").read_text())
    (case / "clip.json").write_text(json.dumps({"annotations": anns, "images": 7}))
    result = run("vp3d-convert", "video.mp4", "--keypoints", "clip.json", "--quiet", cwd=case)
    assert_refused(result, "clip.json", "'images' is a int")
    assert not (case / "video.npz").exists()


@pytest.mark.parametrize(("change", "needle"), [
    ({"meta": [1, 2, 3]}, "json list"),
    ({"meta": {"format_name": "vp3d-result"}}, "frame rate"),
    ({"timestamps": np.array([0.0, np.nan, 0.1])}, "timestamps"),
    ({"timestamps": "backwards"}, "do not go forward"),
    ({"timestamps": np.zeros((3, 2))}, "timestamps"),
    ({"joints_3d_root_relative": np.zeros((5, 17, 3))}, "joints_3d_root_relative"),
])
def test_a_result_npz_with_broken_meta_or_timestamps(case: Path, change: dict[str, object], needle: str) -> None:
    if isinstance(change.get("timestamps"), str):
        with np.load(case / "clip.npz") as npz:
            change = {"timestamps": npz["timestamps"][::-1].copy()}
    with_meta(case / "clip.npz", case / "bad.npz", **change)
    for args in (["bad.npz", "--bvh"], ["clip.mp4", "--keypoints", "bad.npz", "--out", "out"]):
        if "joints_3d" in needle and "--keypoints" in args:
            continue  # the 2D part of that file is fine
        result = run("vp3d-convert", *args, "--quiet", cwd=case)
        assert_refused(result, "bad.npz", needle)
        assert not (case / "bad.bvh").exists() and not (case / "out").exists()


@pytest.mark.parametrize("damage", ["nan", "shape", "seen as numbers", "no seen"])
def test_a_result_npz_with_a_broken_mediapipe_3d_is_refused_as_keypoints(case: Path, damage: str) -> None:
    # The result keeps MediaPipe's own 3D so that a re-lift blends it in again; a damaged copy is
    # named in one line, with nothing written.
    with np.load(case / "clip.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert arrays["detector_3d"].shape == (len(arrays["timestamps"]), 17, 3)
    if damage == "nan":
        arrays["detector_3d"][3, 5] = np.nan
    elif damage == "shape":
        arrays["detector_3d"] = arrays["detector_3d"][:, :12]
    elif damage == "seen as numbers":
        arrays["detector_3d_seen"] = arrays["detector_3d_seen"].astype(np.float32)
    else:
        del arrays["detector_3d_seen"]
    np.savez_compressed(case / "bad.npz", **arrays)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "bad.npz", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "bad.npz", "detector_3d")
    assert not (case / "out").exists()


@pytest.mark.parametrize("scale", [np.nan, 1e6, -1.0])
def test_a_result_npz_with_scores_out_of_range_is_refused_as_keypoints(case: Path, scale: float) -> None:
    # Scores are confidences; a result whose detector placed hidden joints passes them on as they are.
    with np.load(case / "clip.npz") as npz:
        scores = npz["scores"] * scale
    with_meta(case / "clip.npz", case / "bad.npz", scores=scores)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "bad.npz", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "bad.npz", "scores must be numbers from 0 to 1")
    assert not (case / "out").exists()


def _checkpoint(case: Path, name: str, edit: object) -> Path:
    folder = case / name
    shutil.copytree(REPO / "checkpoints" / "default", folder)
    config = json.loads((folder / "config.json").read_text())
    new = edit(config) if callable(edit) else edit
    (folder / "config.json").write_text(json.dumps(config if new is None else new))
    return folder


BROKEN_CONFIGS = {
    "a list": ([1, 2], "JSON list"),
    "lifter is a number": (lambda c: c.update(lifter=5), "lifter 5"),
    "input is a string": (lambda c: c.update(input="coco17"), "input must be an object"),
    "unknown joints": (lambda c: c["input"].update(joints="body25"), "unknown joint format"),
    "fps 0": (lambda c: c.update(fps=0), "frame rate 0"),
    "dropout 2": (lambda c: c["architecture"].update(dropout=2), "dropout"),
    "even widths": (lambda c: c["trajectory"].update(filter_widths=[2, 2, 2, 2]), "odd"),
    "causal is a string": (lambda c: c["architecture"].update(causal="no"), "causal"),
}


@pytest.mark.parametrize("name", list(BROKEN_CONFIGS))
def test_a_broken_checkpoint_config(case: Path, name: str) -> None:
    edit, needle = BROKEN_CONFIGS[name]
    folder = _checkpoint(case, "ckpt", edit)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", folder,
                 "--quiet", cwd=case)
    assert_refused(result, "config.json", needle)
    assert not (case / "out").exists()


def test_vp3d_list_shows_the_good_checkpoints_and_flags_the_broken(case: Path) -> None:
    root = case / "more"
    root.mkdir()
    _checkpoint(root, "good", None)
    _checkpoint(root, "listy", [1, 2])
    _checkpoint(root, "zero_fps", lambda c: c.update(fps=0))
    result = run("vp3d", "list", cwd=case, env={"VP3D_CHECKPOINTS": str(root)})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["good", "videopose3d,"] for line in lines), lines
    assert any(line.split()[:2] == ["default", "videopose3d,"] for line in lines), lines
    assert any(line.split()[:2] == ["listy", "BROKEN:"] for line in lines), lines
    assert any(line.split()[:2] == ["zero_fps", "BROKEN:"] and "frame rate" in line for line in lines), lines
    assert error_lines(result) == ["vp3d list: 2 checkpoint folder(s) cannot be used (see BROKEN above); fix or "
                                   "remove them"]


@pytest.mark.parametrize("command", ["train", "weights convert"])
def test_vp3d_out_naming_a_file_is_refused_first(case: Path, shared_data: Path, command: str) -> None:
    (case / "model").write_text("my notes")
    start = time.monotonic()
    if command == "train":
        result = run("vp3d", "train", "--data", shared_data / "mocap" / "cmu", "--out", "model", "--quiet", cwd=case)
    else:
        result = run("vp3d", "weights", "convert", "anything.bin", "--out", "model", cwd=case)
    assert_refused(result, "model", "is a file")
    assert (case / "model").read_text() == "my notes" and time.monotonic() - start < 20


def test_one_bad_input_never_stops_a_batch(case: Path) -> None:
    shutil.copy(case / "clip.npz", case / "walk.npz")
    with_meta(case / "clip.npz", case / "fast.npz", fps=1e9)
    _bvh(case / "empty.bvh", frames=0)
    os.symlink("loop.npz", case / "loop.npz")
    result = run("vp3d-convert", "clip.npz", "fast.npz", "empty.bvh", "missing.npz", "loop.npz", "walk.npz", "--bvh",
                 "--out", "out", "--quiet", cwd=case)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result)
    assert len(errors) == 4, errors
    assert all(line.startswith("vp3d-convert: error: ") for line in errors)
    for name, needle in (("fast.npz", "frame rate"), ("empty.bvh", "no frames"), ("missing.npz", "no such file"),
                         ("loop.npz", "symbolic link loop")):
        assert any(name in line and needle in line for line in errors), (name, errors)
    assert result.stdout.splitlines()[-1] == "2 converted, 4 failed"
    assert sorted(p.name for p in (case / "out").iterdir()) == ["clip.bvh", "walk.bvh"]
