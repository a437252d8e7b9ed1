"""Regressions for the findings of the review fixed in aad44c6: each test builds the reviewer's input
afresh and runs the real command. Checkpoint folders keep what they hold and refuse foreign ones,
inputs (takes, checkpoints found by name) are never outputs, stale temporaries with absurd names are
swept, tiny files claiming huge sizes are refused before allocating, careless input ends in one line,
and results that were silently wrong are corrected or refused."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_tools import MEMORY_LIMIT, assert_refused, error_lines, run, snapshot, temporaries, with_meta
from numpy.lib import format as npy_format

from vp3d_engine.lifters.temporal import TemporalModel

pytestmark = pytest.mark.shared_data

REPO = Path(__file__).resolve().parents[2]
#: Enough to make ``vp3d train`` finish in seconds (on the old code too, where a refused run trained).
FAST_TRAIN = ["--epochs", "1", "--samples-per-epoch", "256", "--batch-size", "256", "--channels", "16",
              "--filter-widths", "3", "3", "--trajectory-channels", "0", "--device", "cpu", "--quiet"]


def _default_checkpoint(dst: Path, **output: object) -> Path:
    """A copy of the shipped default checkpoint (its ``output`` section changed by ``output``)."""
    shutil.copytree(REPO / "checkpoints" / "default", dst)
    if output:
        config = json.loads((dst / "config.json").read_text())
        config["output"].update(output)
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def _takes(shared_data: Path, dst: Path, *names: str) -> Path:
    """A folder of writable copies of CMU takes."""
    dst.mkdir()
    for name in names:
        shutil.copyfile(shared_data / "mocap" / "cmu" / name, dst / name)
    return dst


def _small_bin(path: Path) -> Path:
    """An original-style VideoPose3D ``.bin`` with a small, ordinary model."""
    torch.save({"model_pos": TemporalModel(17, 2, 17, [3, 3], channels=16).state_dict()}, path)
    return path


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _raw_npy(header: dict[str, Any], payload: bytes) -> bytes:
    """A ``.npy`` member whose header says what ``header`` says, whatever ``payload`` holds."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, header)
    buf.write(payload)
    return buf.getvalue()


def _first_frames(result: Path, dst: Path, frames: int) -> Path:
    """A copy of a result cut to its first ``frames`` frames."""
    with np.load(result, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    count = len(arrays["timestamps"])
    np.savez_compressed(dst, **{k: v[:frames] if v.ndim and len(v) == count else v for k, v in arrays.items()})
    return dst


def _usage_error(result: Any, *needles: str) -> None:
    """An argparse refusal: exit 2, a usage block, the message on the last line, no traceback."""
    lines = error_lines(result)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("usage:") and "error: argument" in lines[-1], lines
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


# 1. Checkpoint folders.

@pytest.mark.parametrize("command", ["train", "weights convert"])
def test_a_checkpoint_out_holding_other_files_is_refused_first(case: Path, shared_data: Path, command: str) -> None:
    folder = case / "mine"
    (folder / "photos").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    _small_bin(case / "small.bin")
    before = snapshot(case)
    if command == "train":
        result = run("vp3d", "train", "--data", shared_data / "mocap" / "cmu", "--out", "mine", *FAST_TRAIN, cwd=case)
    else:
        result = run("vp3d", "weights", "convert", "small.bin", "--out", "mine", cwd=case)
    assert_refused(result, "mine", "notes.txt", "a folder of its own")
    assert snapshot(case) == before


def test_saving_into_a_checkpoint_keeps_its_subfolders(tmp_path: Path) -> None:
    _small_bin(tmp_path / "small.bin")
    assert run("vp3d", "weights", "convert", "small.bin", "--out", "ck", cwd=tmp_path).returncode == 0
    (tmp_path / "ck" / "notes").mkdir()
    (tmp_path / "ck" / "notes" / "keep.txt").write_text("keep me")
    result = run("vp3d", "weights", "convert", "small.bin", "--out", "ck", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "ck" / "notes" / "keep.txt").read_text() == "keep me"
    assert (tmp_path / "ck" / "config.json").is_file() and (tmp_path / "ck" / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "small.bin", "tmp"] and temporaries(tmp_path) == []


# 2-4. Inputs are never outputs; a name means the installed checkpoint.

@pytest.mark.parametrize("target", ["data/02_01.bvh", "ck/config.json"])
def test_evaluate_json_never_lands_on_an_input(tmp_path: Path, shared_data: Path, target: str) -> None:
    _takes(shared_data, tmp_path / "data", "02_01.bvh")
    _default_checkpoint(tmp_path / "ck")
    before = snapshot(tmp_path)
    result = run("vp3d", "evaluate", "--data", "data", "--checkpoint", "ck", "--split", "all", "--views", "1",
                 "--json", target, cwd=tmp_path, timeout=120)
    assert_refused(result, target, "would overwrite the input")
    assert snapshot(tmp_path) == before


def test_a_checkpoint_given_by_name_is_never_overwritten(case: Path) -> None:
    _default_checkpoint(case / "installed" / "mine")
    before = snapshot(case)
    result = run("vp3d-convert", "config.mp4", "--keypoints", "clip.npz", "--checkpoint", "mine", "--json",
                 "--out", "installed/mine", "--quiet", cwd=case, env={"VP3D_CHECKPOINTS": str(case / "installed")})
    assert_refused(result, "config.json", "would overwrite the input")
    assert snapshot(case) == before


def test_a_file_named_default_does_not_replace_the_shipped_checkpoint(case: Path) -> None:
    (case / "default").write_text("my notes, not a checkpoint")
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--quiet", cwd=case)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    with np.load(case / "out" / "clip.npz") as npz:
        assert json.loads(str(npz["meta"]))["checkpoint"] == str(REPO / "checkpoints" / "default")
    assert (case / "default").read_text() == "my notes, not a checkpoint"


# 5-6. Stale temporaries and broken links.

def test_stale_temporaries_with_impossible_pids_are_swept(case: Path) -> None:
    (case / "tmp" / "vp3d-tmp-3000000000-x").mkdir(parents=True)
    (case / "out").mkdir()
    (case / "out" / ".clip.bvh.vp3d-tmp-99999999999-0123abcd.bvh").write_text("left by a process long gone")
    result = run("vp3d-convert", "clip.npz", "--bvh", "--out", "out", "--quiet", cwd=case)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert sorted(p.name for p in (case / "out").iterdir()) == ["clip.bvh"]
    assert temporaries(case) == []


def test_out_a_broken_symlink(case: Path) -> None:
    os.symlink(case / "gone", case / "results")
    before = snapshot(case)
    result = run("vp3d-convert", "clip.npz", "--bvh", "--out", "results", "--quiet", cwd=case)
    assert_refused(result, "results", "broken symbolic link")
    assert snapshot(case) == before and not (case / "gone").exists()


# 7. Tiny files claiming huge sizes (under an address-space limit).

@pytest.mark.parametrize(("channels", "frames", "needle"), [
    (False, 10_000_000, "no joint has channels"),
    (False, 100_000_000, "more than vp3d reads"),
    (True, 20_000_000, "more than vp3d reads"),
])
def test_a_bvh_claiming_frames_it_does_not_hold(case: Path, shared_data: Path, channels: bool, frames: int,
                                               needle: str) -> None:
    text = (shared_data / "mocap" / "cmu" / "02_01.bvh").read_text()
    head, motion = text[: text.index("MOTION")], text[text.index("MOTION"):].splitlines()
    if not channels:
        head, rows = re.sub(r"CHANNELS \d+[^\n]*", "CHANNELS 0", head), []
    else:
        rows = motion[3:5]
    (case / "take.bvh").write_text(head + "\n".join(["MOTION", f"Frames: {frames}", motion[2], *rows]) + "\n")
    result = run("vp3d-convert", "take.bvh", "--bvh", "--out", "out", "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "take.bvh", needle)
    assert not (case / "out").exists()


class _HugeBytearray:
    def __reduce__(self) -> tuple[type, tuple[int]]:
        return bytearray, (8 * 10**9,)


def test_a_detectron_npz_pickling_a_huge_bytearray(case: Path) -> None:
    """A 500-byte file whose object array asks the unpickler for 8 GB."""
    with zipfile.ZipFile(case / "boxes.npz", "w") as zf:
        zf.writestr("keypoints.npy", _raw_npy({"descr": "|O", "fortran_order": False, "shape": ()},
                                              pickle.dumps(_HugeBytearray(), protocol=4)))
        zf.writestr("boxes.npy", _npy(np.zeros(3)))
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "boxes.npz", "--out", "out", "--quiet", cwd=case,
                 memory_limit=MEMORY_LIMIT)
    assert_refused(result, "boxes.npz", "refusing to unpickle", "bytearray")
    assert not (case / "out").exists()


@pytest.mark.parametrize("kind", ["one array", "result", "result as keypoints"])
def test_an_npz_header_claiming_a_huge_shape(case: Path, kind: str) -> None:
    """numpy allocates what an array header claims before reading: 80 GB from a 64-byte member."""
    with np.load(case / "clip.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    with zipfile.ZipFile(case / "huge.npz", "w") as zf:
        if kind == "one array":
            zf.writestr("joints.npy", _raw_npy({"descr": "<f8", "fortran_order": False, "shape": (10**9, 17, 3)},
                                               b"\0" * 64))
        else:
            for key, value in arrays.items():
                if key != "timestamps":
                    zf.writestr(f"{key}.npy", _npy(value))
            zf.writestr("timestamps.npy", _raw_npy({"descr": "<f8", "fortran_order": False, "shape": (10**10,)},
                                                   b"\0" * 64))
    args = ["clip.mp4", "--keypoints", "huge.npz", "--out", "out"] if kind.endswith("keypoints") else \
        ["huge.npz", "--bvh", "--out", "out"]
    result = run("vp3d-convert", *args, "--quiet", cwd=case, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "huge.npz", "claims shape")
    assert not (case / "out").exists()


# 8. Careless input: one line, exit 2.

@pytest.mark.parametrize("frames", [0, 1])
def test_a_result_with_fewer_than_two_frames(case: Path, frames: int) -> None:
    _first_frames(case / "clip.npz", case / "short.npz", frames)
    result = run("vp3d-convert", "short.npz", "--bvh", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "short.npz", f"holds {frames} frame")
    assert not (case / "out").exists()


def test_coco_json_nested_too_deeply(case: Path) -> None:
    (case / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "deep.json", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "deep.json", "nested too deeply")
    assert not (case / "out").exists()


@pytest.mark.parametrize("config", ["[" * 100_000 + "]" * 100_000,
                                    '{"format": "vp3d-lifter", "format_version": ' + "9" * 5000 + "}"],
                         ids=["nested", "5000 digits"])
def test_a_checkpoint_config_nested_deeply_or_with_a_huge_number(case: Path, config: str) -> None:
    folder = _default_checkpoint(case / "installed" / "odd")
    (folder / "config.json").write_text(config)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", folder,
                 "--quiet", cwd=case)
    assert_refused(result, "config.json", "not valid JSON")
    assert not (case / "out").exists()
    listed = run("vp3d", "list", cwd=case, env={"VP3D_CHECKPOINTS": str(case / "installed")})
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert any(line.split()[:2] == ["odd", "BROKEN:"] for line in listed.stdout.splitlines()), listed.stdout


def test_a_keypoints_npz_whose_meta_is_a_list(case: Path) -> None:
    """vp3d's own 2D file (as ``Keypoints2D.save`` writes it) with a JSON list for its meta."""
    with np.load(case / "clip.npz") as npz:
        np.savez(case / "kp.npz", xy=npz["keypoints_2d"], score=npz["scores"], valid=npz["valid"],
                 timestamps=npz["timestamps"], meta=np.array(json.dumps([1, 2])))
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "kp.npz", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "kp.npz", "JSON list")
    assert not (case / "out").exists()


@pytest.mark.parametrize(("flag", "value"), [("--start", "nan"), ("--start", "inf"), ("--end", "nan"),
                                             ("--start", "1e300")])
def test_a_start_or_end_that_is_no_time(tmp_path: Path, shared_data: Path, flag: str, value: str) -> None:
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    result = run("vp3d-convert", video, "--out", "out", flag, value, "--quiet", cwd=tmp_path, timeout=60)
    _usage_error(result, flag, "seconds")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "half"])
def test_a_share_of_mediapipe_3d_that_is_no_share(tmp_path: Path, shared_data: Path, value: str) -> None:
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    result = run("vp3d-convert", video, "--out", "out", "--mediapipe-3d", value, "--quiet", cwd=tmp_path, timeout=60)
    _usage_error(result, "--mediapipe-3d", "must be a number" if value == "half" else "from 0 to 1")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [("evaluate", "--views", "0"), ("evaluate", "--seed", "-1"),
                                  ("train", "--batch-size", "0"), ("train", "--lr", "nan"), ("train", "--epochs", "0"),
                                  ("train", "--body-shape-share", "1.5"),
                                  ("train", "--average-epochs", "-1"), ("train", "--frame-span", "-1")],
                         ids=" ".join)
def test_out_of_range_train_and_evaluate_flags(case: Path, shared_data: Path, args: tuple[str, str, str]) -> None:
    command, flag, value = args
    _takes(shared_data, case / "data", "02_01.bvh", "05_06.bvh")
    before = snapshot(case)
    common = ["--checkpoint", "default", "--split", "all"] if command == "evaluate" else \
        ["--out", "ck", *FAST_TRAIN, "--val-fraction", "0.3"]
    result = run("vp3d", command, "--data", "data", *common, flag, value, cwd=case, timeout=60)
    _usage_error(result, flag)
    assert snapshot(case) == before


@pytest.mark.parametrize("state", ["damaged", "other architecture"])
def test_resuming_from_a_training_state_that_cannot_be_resumed(case: Path, shared_data: Path, state: str) -> None:
    (case / "ck").mkdir()
    if state == "damaged":
        (case / "ck" / "training_state.pt").write_bytes(b"not a torch file")
    else:  # the state of a run with --channels 32
        torch.save({"pose": TemporalModel(17, 2, 17, [3, 3], channels=32).state_dict()},
                   case / "ck" / "training_state.pt")
    before = snapshot(case)
    result = run("vp3d", "train", "--data", shared_data / "mocap" / "cmu", "--out", "ck", *FAST_TRAIN, cwd=case,
                 timeout=120)
    assert_refused(result, "training_state.pt", "--restart")
    assert snapshot(case) == before


# 10. Results that were silently wrong.

def test_coco_string_image_ids_are_read_in_numeric_order(case: Path) -> None:
    with np.load(case / "clip.npz") as npz:
        xy, score, fps = npz["keypoints_2d"], npz["scores"], json.loads(str(npz["meta"]))["fps"]
    anns = [{"image_id": str(t), "category_id": 1, "score": 1.0,
             "keypoints": np.concatenate([xy[t], score[t][:, None]], axis=1).ravel().round(3).tolist()}
            for t in range(len(xy))]
    assert len(anns) > 11  # "10" sorts before "2" as text
    (case / "clip.json").write_text(json.dumps(anns))
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.json", "--image-size", "853x480", "--fps", str(fps),
                 "--out", "out", "--quiet", cwd=case)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    with np.load(case / "out" / "clip.npz") as npz:
        np.testing.assert_allclose(npz["keypoints_2d"], xy, atol=0.01)


def test_a_few_far_off_keypoints_do_not_throw_the_lift(case: Path) -> None:
    """4% of the keypoints at 1e30 px (a detector glitch, under the 5% that marks a wrong image size)."""
    with np.load(case / "clip.npz") as npz:
        xy = npz["keypoints_2d"].copy()
    flat = xy.reshape(-1, 2)
    flat[::25] = 1e30
    with_meta(case / "clip.npz", case / "glitch.npz", keypoints_2d=xy)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "glitch.npz", "--out", "out", "--quiet", cwd=case)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    with np.load(case / "out" / "clip.npz") as npz:
        joints = npz["joints_3d"]
    assert np.isfinite(joints).all() and np.abs(joints).max() < 10, np.abs(joints).max()


def test_a_result_whose_timestamps_repeat(case: Path) -> None:
    with np.load(case / "clip.npz") as npz:
        times = np.zeros_like(npz["timestamps"])
    with_meta(case / "clip.npz", case / "frozen.npz", timestamps=times)
    result = run("vp3d-convert", "frozen.npz", "--bvh", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, "frozen.npz", "do not go forward")
    assert not (case / "out").exists()


@pytest.mark.parametrize("kind", ["result", "plain array"])
def test_joints_with_no_extent(case: Path, kind: str) -> None:
    with np.load(case / "clip.npz") as npz:
        zeros = np.zeros_like(npz["joints_3d_root_relative"])
    if kind == "result":
        name, needle = "flat.npz", "no extent"
        with_meta(case / "clip.npz", case / name, joints_3d_root_relative=zeros)
    else:
        name, needle = "flat.npy", "no length"
        np.save(case / name, zeros)
    result = run("vp3d-convert", name, "--bvh", "--out", "out", "--quiet", cwd=case)
    assert_refused(result, name, needle)
    assert not (case / "out").exists()


def test_a_checkpoint_that_outputs_coco_joints(case: Path) -> None:
    folder = _default_checkpoint(case / "ckpt", joints="coco17")
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", "out", "--checkpoint", folder,
                 "--quiet", cwd=case)
    assert_refused(result, "config.json", "output joints 'coco17'")
    assert not (case / "out").exists()


# 11. Pipes.

def test_a_fifo_in_a_batch(case: Path) -> None:
    """Reading a FIFO would wait forever for a writer: refused, and the batch goes on."""
    os.mkfifo(case / "fifo.mp4")
    result = run("vp3d-convert", "clip.npz", "fifo.mp4", "--bvh", "--out", "out", "--quiet", cwd=case, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result)
    assert len(errors) == 1 and "fifo.mp4" in errors[0] and "not a regular file" in errors[0], errors
    assert result.stdout.splitlines()[-1] == "1 converted, 1 failed"
    assert sorted(p.name for p in (case / "out").iterdir()) == ["clip.bvh"]


def test_an_interruption_as_a_temporary_folder_is_made_leaves_nothing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C landing just after the folder exists and before its clean-up is registered (a race a
    loaded machine hit) still leaves no folder behind."""
    from converters.fileio import temp_dir

    made = os.mkdir

    def mkdir_then_interrupt(path: str, mode: int = 0o777) -> None:
        made(path, mode)
        raise KeyboardInterrupt  # as the signal handler raises it, at the worst moment

    monkeypatch.setattr(os, "mkdir", mkdir_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with temp_dir("fbx", parent=tmp_path):
            pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    with temp_dir("fbx", parent=tmp_path) as folder:  # and a folder made in peace is there until the end
        assert Path(folder).is_dir() and Path(folder).name.startswith(f"vp3d-tmp-{os.getpid()}-fbx-")
        (Path(folder) / "motion.bvh").write_text("x")
    assert list(tmp_path.iterdir()) == []
