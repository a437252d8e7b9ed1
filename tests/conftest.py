"""Shared fixtures for the vp3d test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from vp3d_engine.detectors.types import FrameDetections


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (videos, mocap); skips the test when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def dance_detections(shared_data: Path) -> FrameDetections:
    """MediaPipe's detections on a whole real clip (13 s of a dancer with a ball, 338 frames), in
    one process."""
    from vp3d_engine.detection import detect_video
    from vp3d_engine.pipeline import PipelineOptions
    from vp3d_engine.video import DecodeReport, probe_video

    video = shared_data / "videos" / "dance_ball_480p.mp4"
    dets, _ = detect_video(video, PipelineOptions(workers=1), probe_video(video), DecodeReport())
    return dets
