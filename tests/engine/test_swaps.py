"""Whole-body left/right label swaps of the detector, put right (vp3d_engine.swaps), on real video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.joints import COCO17, H36M17
from converters.types import Keypoints2D
from vp3d_engine.checkpoints import load_checkpoint
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.lifting import lift_keypoints
from vp3d_engine.multiview import fix_swaps, pick_convention, triangulate
from vp3d_engine.pipeline import PipelineOptions, run_pipeline
from vp3d_engine.swaps import _mirror, fix_label_swaps, flips, label_jumps
from vp3d_engine.tracking import track_person

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def dance(dance_detections: FrameDetections) -> Keypoints2D:
    return track_person(dance_detections, dance_detections.image_size, dance_detections.fps).keypoints


def _lift(kp: Keypoints2D) -> np.ndarray:
    return lift_keypoints(kp, load_checkpoint("default")).joints


def test_a_real_turn_is_not_taken_for_a_swap(dance: Keypoints2D) -> None:
    """The dancer spins from his back to his front: the lifted body snaps round at one frame, but
    the 2D points move on continuously, so no label is changed."""
    joints = _lift(dance)
    assert flips(joints, dance.fps)  # the lifter's own snap through the side view
    assert not label_jumps(dance.xy).any()
    assert fix_label_swaps(dance, joints, _lift) is None


def test_a_mirrored_stretch_is_found_and_put_back(dance: Keypoints2D) -> None:
    frames = np.zeros(dance.num_frames, dtype=bool)
    frames[60:130] = True  # he faces the camera here: left and right are far apart
    mirrored = _mirror(dance, frames)
    fixed = fix_label_swaps(mirrored, _lift(mirrored), _lift)
    assert fixed is not None
    kp, joints, relabelled = fixed
    assert (relabelled == frames).mean() > 0.97
    assert np.abs(kp.xy - dance.xy).max(axis=(1, 2))[relabelled == frames].max() == 0.0
    assert not flips(joints, dance.fps) or len(flips(joints, dance.fps)) < len(flips(_lift(mirrored), dance.fps))


def test_the_man_on_cam02_gets_his_labels_back(shared_data: Path) -> None:
    """The case that motivated it: on the 4-camera recording MediaPipe mirrors the man on cam02 for
    a long stretch (the other views say so). The relabelled frames are those the views agree are
    mirrored, and his limbs point the right way again."""
    folder = shared_data / "multiview" / "pose2sim-multiperson"
    runs = {cam: run_pipeline(folder / f"{cam}.mp4", PipelineOptions(person=1, workers=1, label_swaps="keep"))
            for cam in ("cam01", "cam02", "cam04")}
    xy = {c: r.keypoints.xy for c, r in runs.items()}
    scores = {c: r.keypoints.score * r.keypoints.valid for c, r in runs.items()}
    cameras, _ = pick_convention(folder / "Calib.qca.txt", xy, scores)
    agreed, agreed_scores, _ = fix_swaps(xy, scores, cameras)
    truth = (np.abs(agreed["cam02"] - xy["cam02"]).max(axis=-1) > 1e-6).any(axis=-1)
    reference, _, _ = triangulate(agreed, agreed_scores, cameras)
    assert truth.sum() > 20
    kept = runs["cam02"]
    fixed = run_pipeline(folder / "cam02.mp4", PipelineOptions(person=1, workers=1))
    relabelled = (np.abs(fixed.keypoints.xy - kept.keypoints.xy).max(axis=-1) > 1e-6).any(axis=-1)
    assert fixed.pose.meta["label_swaps_fixed"] == relabelled.sum()
    both = (relabelled & truth).sum()
    assert both / relabelled.sum() > 0.7 and both / truth.sum() > 0.6, (relabelled.sum(), truth.sum(), both)

    def limb_error(joints: np.ndarray) -> float:
        """Mean angle (degrees) between the 8 limbs' directions and the reference's, each frame's
        prediction turned onto the reference first (no scale)."""
        names = [f"{s}_{j}" for s in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]
        pred, ref = joints[:, [H36M17.index(n) for n in names]], reference[:, [COCO17.index(n) for n in names]]
        ok = np.isfinite(ref).all(axis=(1, 2))
        p = pred[ok] - pred[ok].mean(axis=1, keepdims=True)
        r = ref[ok] - ref[ok].mean(axis=1, keepdims=True)
        u, _, vt = np.linalg.svd(np.swapaxes(p, 1, 2) @ r)
        u[:, :, -1] *= np.sign(np.linalg.det(u @ vt))[:, None]
        p = p @ (u @ vt)
        limbs = [(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10), (10, 11)]
        a = np.stack([p[:, j] - p[:, i] for i, j in limbs], axis=1)
        b = np.stack([r[:, j] - r[:, i] for i, j in limbs], axis=1)
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())

    before, after = limb_error(kept.pose.joints), limb_error(fixed.pose.joints)
    assert after < before - 4.0, (before, after)
