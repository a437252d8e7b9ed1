"""The one library function the CLI, the service and the add-on call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.motion_file import load_motion_file
from vp3d_engine.convert import STAGES, ConvertOptions, Models, convert, load_models
from vp3d_engine.pipeline import PipelineOptions


@pytest.mark.shared_data
def test_a_video_becomes_a_motion_file_and_models_load_once(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    options = ConvertOptions(pipeline=PipelineOptions(end=2.0, workers=1), rig="mixamo", formats=["npz", "motion"])
    models = load_models(options)
    seen: list[tuple[str, float]] = []
    first = convert(video, options, tmp_path / "ball", models=models, progress=lambda s, f: seen.append((s, f)))
    assert [p.name for p in first.files] == ["ball.npz", "ball.motion.npz"] and first.kind == "video"
    stages = [s for s, _ in seen]
    assert stages[0] == "detect" and stages[-1] == "write" and set(stages) <= set(STAGES)
    assert list(dict.fromkeys(stages)) == ["detect", "track", "lift", "world", "write"]  # each stage reported
    fractions = [f for s, f in seen if s == "detect"]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    motion = load_motion_file(tmp_path / "ball.motion.npz")
    assert motion.motion.rig.preset == "mixamo" and motion.world_joints is not None
    assert motion.motion.num_frames == first.pose.num_frames
    assert motion.foot_contacts is not None and motion.foot_contacts.any()  # the dancer stands on the floor
    with np.load(tmp_path / "ball.npz") as npz:
        assert npz["foot_contacts"].shape == (first.pose.num_frames, 2)
    # The floor is set under the solved rig (bone lengths normalised), on the frames a foot is down;
    # locked feet sit on it (Mixamo's hips turn with its first spine bone: within millimetres).
    from converters.motion import forward_kinematics
    from converters.rigs import ankle_joints
    from converters.world import ANKLE_HEIGHT_M

    ankles = [motion.motion.rig.index(n) for n in ankle_joints("mixamo")]
    heights = forward_kinematics(motion.motion)[0][:, ankles, 1]
    assert np.median(heights[motion.foot_contacts]) == pytest.approx(ANKLE_HEIGHT_M, abs=0.003)
    assert heights.min() > ANKLE_HEIGHT_M - 0.005 and motion.motion.meta["feet"] == "lock"
    assert abs(motion.motion.meta["floor_shift_m"]) > 0.005  # solving had moved the feet
    # The camera as the world sees it: a handheld or tripod camera, roughly level.
    assert 0.3 < motion.motion.meta["camera_height_m"] < 3.0
    assert -45 < motion.motion.meta["camera_pitch_deg"] < 30
    lifter = models.lifter
    # The same models again, and a 3D source (the Motion file) that needs no models at all.
    again = convert(video, options, tmp_path / "again", models=models)
    assert models.lifter is lifter
    np.testing.assert_allclose(again.pose.joints, first.pose.joints)
    # The detector too was kept (started afresh for the new video: the same result as a new one).
    assert models.detectors.created == 1
    fresh = convert(video, options, tmp_path / "fresh")
    np.testing.assert_allclose(fresh.pose.joints, first.pose.joints, atol=1e-6)
    models.close()
    redo = convert(tmp_path / "ball.motion.npz", ConvertOptions(rig="ue", formats=["bvh"]), tmp_path / "ue",
                   models=Models())
    assert redo.kind == "motion" and redo.result is None and [p.name for p in redo.files] == ["ue.bvh"]


@pytest.mark.shared_data
def test_the_cli_prints_its_own_lines_only(shared_data: Path, tmp_path: Path) -> None:
    """MediaPipe's native start-up notes (TFLite, absl) stay out of the terminal, in the main process
    and in the detection workers (a 13 s clip is detected in parallel)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "vp3d_engine.convert_cli", str(shared_data / "videos" /
                           "dance_ball_480p.mp4"), "--out", str(tmp_path), "--quiet"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert done.stdout.count("\n") == 1 and "dance_ball_480p.npz" in done.stdout
    # A batch in one process, the detector kept between the clips: not a line from MediaPipe either
    # (its graphs load their models on threads of their own, after the detector is made).
    videos = [str(shared_data / "videos" / v) for v in ("taiji_green_336p.mp4", "child_dance_480p.mp4")]
    done = subprocess.run([sys.executable, "-m", "vp3d_engine.convert_cli", *videos, "--out", str(tmp_path / "batch"),
                           "--end", "2", "--workers", "1", "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "2 converted, 0 failed" in done.stdout
