"""vp3d never destroys a user's files: no output replaces an input, a folder holds the old set of
results or the new one (never a mix), and interrupted or killed runs leave nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_tools import BIN, assert_refused, coco_results, run, snapshot, temporaries

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize(("keypoints", "flags"), [("clip.json", ["--json"]), ("clip.npz", []),
                                                  ("clip.npz", ["--npz", "--bvh"]), ("CLIP.json", ["--json"])])
def test_an_output_never_replaces_the_keypoints_input(case: Path, keypoints: str, flags: list[str]) -> None:
    if keypoints.endswith(".json"):
        coco_results(case / "clip.npz", case / keypoints)
    (case / "clip.mp4").write_bytes(b"never decoded: the run is refused first")
    before = snapshot(case)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", keypoints, *flags, "--quiet", cwd=case)
    assert_refused(result, "would overwrite the input", keypoints)
    assert snapshot(case) == before


def test_an_output_never_replaces_the_checkpoint(case: Path) -> None:
    """``--checkpoint clip.npz`` is nonsense, but it is an input: refused before it is overwritten."""
    shutil.copy(case / "clip.npz", case / "keypoints.npz")
    (case / "sub").mkdir()
    before = snapshot(case)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "keypoints.npz", "--checkpoint", "sub/../clip.npz",
                 "--quiet", cwd=case)
    assert_refused(result, "would overwrite the input")
    assert snapshot(case) == before


def test_dot_dot_does_not_hide_two_inputs_writing_one_result(case: Path) -> None:
    (case / "in" / "a").mkdir(parents=True)
    (case / "in" / "b").mkdir()
    for name in ("clip.mp4", "clip.mov"):
        (case / "in" / "a" / name).write_bytes(b"never decoded")
    before = snapshot(case)
    result = run("vp3d-convert", "in/a/clip.mp4", "in/b/../a/clip.mov", "--quiet", cwd=case)
    assert_refused(result, "would write the same", "in/a/clip.mp4")
    assert snapshot(case) == before


def _old_set(case: Path, out: Path) -> dict[str, str]:
    """A complete earlier result set in ``out``: clip.npz, .json, .bvh."""
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", out, "--npz", "--json", "--bvh",
                 "--quiet", cwd=case)
    assert result.returncode == 0, result.stderr
    return snapshot(out)


def test_a_failure_in_a_late_format_keeps_the_whole_old_set(case: Path) -> None:
    """The GLB writer fails after the NPZ, JSON and BVH were written: none of them replaces the old."""
    out = case / "out"
    old = _old_set(case, out)
    code = ("import sys, converters.gltf_writer as g\n"
            "def fail(*a, **k):\n    raise OSError(28, 'No space left on device')\n"
            "g.write_gltf = fail\n"
            "from vp3d_engine.convert_cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", code, "clip.mp4", "--keypoints", "clip.npz", "--out", "out",
                             "--npz", "--json", "--bvh", "--glb", "--rig", "mixamo", "--quiet"], cwd=case,
                            capture_output=True, text=True, timeout=300)
    assert_refused(result, "No space left on device", "nothing of it was written")
    assert snapshot(out) == old and temporaries(case) == []


def test_a_folder_in_the_way_keeps_the_whole_old_set(case: Path) -> None:
    out = case / "out"
    _old_set(case, out)
    (out / "clip.glb").mkdir()
    old = snapshot(out)
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", out, "--npz", "--json", "--bvh",
                 "--glb", "--rig", "ue", "--quiet", cwd=case)
    assert_refused(result, "clip.glb", "folder")
    assert snapshot(out) == old and temporaries(case) == []


def _start_fbx_run(case: Path, out: Path) -> tuple[subprocess.Popen[str], Path]:
    """A conversion that writes NPZ, BVH and FBX into ``out``, stopped for the test while Blender
    exports: returns once Blender's temporary folder exists."""
    tmp = case / "tmp"
    tmp.mkdir(exist_ok=True)
    proc = subprocess.Popen([str(BIN / "vp3d-convert"), "clip.mp4", "--keypoints", "clip.npz", "--out", str(out),
                             "--npz", "--bvh", "--fbx", "--quiet"], cwd=case, env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith("vp3d-tmp-") and "-fbx-" in p.name for p in tmp.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the FBX export never started"
        time.sleep(0.005)
    return proc, tmp


@pytest.mark.blender
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_cleans_up_and_keeps_the_old_set(case: Path, signum: int, code: int) -> None:
    out = case / "out"
    old = _old_set(case, out)
    proc, tmp = _start_fbx_run(case, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
    assert snapshot(out) == old
    assert temporaries(case) == [] and list(tmp.iterdir()) == []


@pytest.mark.blender
def test_the_next_run_removes_what_a_killed_run_left_and_nothing_else(case: Path) -> None:
    out = case / "out"
    out.mkdir()
    proc, tmp = _start_fbx_run(case, out)
    proc.kill()
    proc.communicate(timeout=60)
    left = temporaries(case)
    assert left, "SIGKILL left nothing: the test did not catch the run while it wrote"
    # Things that are not stale vp3d temporaries: a live process's, the user's own hidden files.
    live = f".clip.bvh.vp3d-tmp-{os.getpid()}-0123abcd.bvh"
    keep = [out / live, out / ".clip.bvh.swp", out / "notes.txt", tmp / "vp3d-notes", tmp / f"vp3d-tmp-{os.getpid()}-x"]
    for path in keep:
        path.write_text("keep me")
    result = run("vp3d-convert", "clip.mp4", "--keypoints", "clip.npz", "--out", out, "--bvh", "--quiet", cwd=case)
    assert result.returncode == 0, result.stderr
    assert all(path.read_text() == "keep me" for path in keep)
    assert temporaries(case) == sorted(str(p.relative_to(case)) for p in keep if "vp3d-tmp" in p.name)
    assert sorted(p.name for p in out.iterdir()) == sorted([live, ".clip.bvh.swp", "clip.bvh", "notes.txt"])
    shutil.rmtree(tmp)


@pytest.mark.parametrize(("inputs", "flags", "victim"), [
    (["clip.mp4", "clip_preview.mp4"], ["--render"], "clip_preview.mp4"),
    (["clip.mp4", "clip.motion.npz"], ["--motion"], "clip.motion.npz"),
])
def test_new_formats_never_replace_an_input_either(case: Path, inputs: list[str], flags: list[str],
                                                   victim: str) -> None:
    for name in inputs:
        (case / name).write_bytes(b"never read: the run is refused first")
    before = snapshot(case)
    result = run("vp3d-convert", *inputs, *flags, "--quiet", cwd=case)
    assert_refused(result, "would overwrite the input", victim)
    assert snapshot(case) == before
