"""Detection split over worker processes gives the single-process result, seams included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vp3d_engine.detection import detect_video
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.parallel_detect import split_parts
from vp3d_engine.pipeline import PipelineOptions
from vp3d_engine.video import DecodeReport, probe_video


def test_parts_cover_the_range_once_and_start_warm() -> None:
    parts = split_parts(2.0, 62.0, 3, 1.0, last_end=None)
    assert [(p.start, p.end, p.warm_start) for p in parts] == [(2.0, 22.0, 2.0), (22.0, 42.0, 21.0),
                                                              (42.0, None, 41.0)]


@pytest.mark.shared_data
def test_two_workers_match_one_process_within_the_detectors_own_jitter(shared_data: Path,
                                                                       dance_detections: FrameDetections) -> None:
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    report = DecodeReport()
    seen: list[float] = []
    dets, _ = detect_video(video, PipelineOptions(workers=2), probe_video(video), report, seen.append)
    single = dance_detections
    assert single.timestamps is not None and dets.timestamps is not None
    np.testing.assert_array_equal(dets.timestamps, single.timestamps)  # every frame once, in order
    assert report.yielded == len(single.people) and report.damaged_packets == 0
    assert all(len(p) == 1 for p in dets.people) and all(len(p) == 1 for p in single.people)
    a = np.stack([p[0, :, :2] for p in dets.people])
    b = np.stack([p[0, :, :2] for p in single.people])
    seam = int(np.searchsorted(single.timestamps, single.timestamps[-1] / 2 - 1e-9))
    assert 0 < seam < len(b) - 10
    np.testing.assert_array_equal(a[:seam], b[:seam])  # the first part is the single run exactly
    # After the seam MediaPipe's tracker starts over (warmed up on the second before): its
    # keypoints differ from the single run by less than the detector's own frame-to-frame jitter.
    diff = np.linalg.norm(a[seam:] - b[seam:], axis=-1)
    jitter = np.linalg.norm(b[1:-1] - 0.5 * (b[:-2] + b[2:]), axis=-1)
    assert np.median(diff[:15]) < np.median(jitter) and np.percentile(diff, 90) < np.percentile(jitter, 90)
    assert len(seen) > 10 and max(seen) == pytest.approx(single.timestamps[-1], abs=0.05)  # one progress
