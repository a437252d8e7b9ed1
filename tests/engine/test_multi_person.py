"""The multi-person detector (``blazepose-multi``: MediaPipe's shipped pose detector and landmark
model, run with tflite-runtime, every person from their own crop) on real footage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vp3d_engine.detection import detect_video
from vp3d_engine.pipeline import PipelineOptions
from vp3d_engine.tracking import track_person
from vp3d_engine.video import DecodeReport, iter_frames, probe_video

pytestmark = pytest.mark.shared_data
MULTI = "blazepose-multi"


def _torso_saturation(frames: list[np.ndarray], xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from tests.engine.test_tracking import _torso_saturation as saturation

    return saturation(frames, xy, valid)


def _people(video: Path, count: int, **options: object) -> tuple[list[np.ndarray], list[float], np.ndarray]:
    """Each of the first ``count`` people tracked: keypoints, share of frames present, and the torso's
    colour saturation per frame (skin is saturated, a grey shirt is not)."""
    info = probe_video(video)
    dets, _ = detect_video(video, PipelineOptions(detector=MULTI, workers=1, **options), info,  # type: ignore[arg-type]
                           DecodeReport())
    assert dets.identities is not None  # the detector follows people and says who is who
    frames = [f.image for f in iter_frames(video)]
    tracks = [track_person(dets, (info.width, info.height), info.fps, person=p) for p in range(count)]
    saturation = np.stack([_torso_saturation(frames, t.keypoints.xy, t.keypoints.valid) for t in tracks])
    return [t.keypoints.xy for t in tracks], [t.frames_present for t in tracks], saturation


@pytest.mark.slow
@pytest.mark.parametrize("camera", ["cam01", "cam02", "cam03", "cam04"])
def test_both_people_in_every_frame_never_swapped(shared_data: Path, camera: str) -> None:
    """Two people in view (a shirtless man, a woman in a grey shirt, a bystander behind): found in
    every frame, each in a track of their own from the first frame to the last, told apart by the
    colour of the torso. (MediaPipe's one-person solution needs a painted-out second pass for the
    second person, and on cam03, where the man walks in front of the woman, merges the two; there
    the landmark model, given his crop, mixes in her body until she is painted out of it.)"""
    _, present, saturation = _people(shared_data / "multiview" / "pose2sim-multiperson" / f"{camera}.mp4", 2)
    assert min(present) >= 0.95, present
    skin = np.nanmin(saturation, axis=1) > 0.2
    grey = np.nanmax(saturation, axis=1) < 0.16
    assert sorted([bool(skin[0]), bool(skin[1])]) == [False, True] and grey[~skin].all(), saturation
    assert np.isfinite(saturation).mean() >= 0.9


def test_a_person_alone_gets_mediapipes_own_landmarks(shared_data: Path) -> None:
    """The same models, run by vp3d: a person alone in view gets the landmarks MediaPipe's own
    solution gives (within its frame-to-frame filtering: a median of 5 px on a 290 px dancer)."""
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    info = probe_video(video)
    tracked = {}
    for detector in ("mediapipe", MULTI):
        dets, _ = detect_video(video, PipelineOptions(detector=detector, workers=1, end=3.0), info, DecodeReport())
        tracked[detector] = track_person(dets, (info.width, info.height), info.fps).keypoints
    ours, theirs = tracked[MULTI], tracked["mediapipe"]
    both = ours.valid & theirs.valid
    gap = np.linalg.norm(ours.xy - theirs.xy, axis=-1)[both]
    assert both.mean() > 0.9 and np.median(gap) < 8.0 and np.percentile(gap, 90) < 20.0, np.percentile(gap, [50, 90])


@pytest.mark.slow
def test_parts_detected_in_parallel_join_into_one_person(shared_data: Path) -> None:
    """An 11 s clip split across two detection processes: each numbers its people from 0, and the
    person is one track across the seam, on the same places as in one process."""
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    info = probe_video(video)
    results = []
    for workers in (1, 2):
        dets, _ = detect_video(video, PipelineOptions(detector=MULTI, workers=workers), info, DecodeReport())
        assert dets.identities is not None and len(dets.people) == 338
        results.append(track_person(dets, (info.width, info.height), info.fps))
    one, two = results
    assert two.frames_present > 0.99
    gap = np.linalg.norm(one.keypoints.xy - two.keypoints.xy, axis=-1)
    assert np.median(gap) < 3.0, np.percentile(gap, [50, 90, 99])


def test_vp3d_convert_takes_the_detector_by_name(shared_data: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vp3d_engine.convert_cli", str(shared_data / "videos" /
                           "dance_ball_480p.mp4"), "--detector", MULTI, "--end", "1.5", "--out", str(tmp_path),
                           "--motion", "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dance_ball_480p.motion.npz").is_file()


def test_without_tflite_runtime_it_is_one_line(shared_data: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['tflite_runtime'] = None; from vp3d_engine.convert_cli import main; "
            f"sys.exit(main([{str(shared_data / 'videos' / 'dance_ball_480p.mp4')!r}, '--detector', {MULTI!r}, "
            f"'--end', '1', '--out', {str(tmp_path)!r}, '--quiet', '--workers', '1']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "tflite-runtime" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
