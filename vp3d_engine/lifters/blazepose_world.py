"""``blazepose-world``: MediaPipe's own 3D world landmarks as a :class:`Pose3D`, for comparison
with the temporal lifter on the same video.

BlazePose world landmarks are metres with the origin between the hips and the image's axes
(x right, y down, z away from the camera), so they read as a root-relative camera-space pose.
Mapping of its 33 landmarks to H36M-17 (approximations marked *): pelvis = mid-hips, hips, knees,
ankles, shoulders, elbows, wrists as named; thorax* = mid-shoulders; spine* = halfway from pelvis
to thorax; neck/nose* = mean of nose and mouth corners; head top* = 11 cm above the mid-ears
along the thorax-to-ears direction. Frames without landmarks are interpolated from their
neighbours (confidence 0 there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from converters.errors import ConversionError
from converters.joints import H36M17
from converters.types import Pose3D

__all__ = ["blazepose_world_pose"]

_DIRECT = {"right_hip": 24, "right_knee": 26, "right_ankle": 28, "left_hip": 23, "left_knee": 25,
           "left_ankle": 27, "left_shoulder": 11, "left_elbow": 13, "left_wrist": 15, "right_shoulder": 12,
           "right_elbow": 14, "right_wrist": 16}


def _to_h36m(lm: np.ndarray) -> np.ndarray:
    """(33,3) BlazePose world landmarks to (17,3) H36M joints."""
    p = {name: lm[i] for name, i in _DIRECT.items()}
    p["pelvis"] = 0.5 * (lm[23] + lm[24])
    p["thorax"] = 0.5 * (lm[11] + lm[12])
    p["spine"] = 0.5 * (p["pelvis"] + p["thorax"])
    p["neck_nose"] = (lm[0] + lm[9] + lm[10]) / 3
    ears = 0.5 * (lm[7] + lm[8])
    up = ears - p["thorax"]
    p["head_top"] = ears + 0.11 * up / max(float(np.linalg.norm(up)), 1e-6)
    return np.stack([p[n] for n in H36M17.names])


def blazepose_world_pose(world: Sequence[np.ndarray | None], timestamps: np.ndarray, fps: float) -> Pose3D:
    """``world[t]`` is ``(33,4)`` (x, y, z, visibility) or None when BlazePose found nobody."""
    t = len(world)
    if t != len(timestamps):
        raise ConversionError(f"{t} frames of world landmarks for {len(timestamps)} timestamps")
    seen = np.array([w is not None for w in world])
    if not seen.any():
        raise ConversionError("BlazePose returned no 3D landmarks in any frame")
    joints = np.zeros((t, 17, 3))
    confidence = np.zeros(t)
    for i, w in enumerate(world):
        if w is not None:
            joints[i] = _to_h36m(w[:, :3])
            confidence[i] = float(np.clip(w[:, 3], 0, 1).mean())
    if not seen.all():
        flat = joints.reshape(t, -1)
        for c in range(flat.shape[1]):
            flat[~seen, c] = np.interp(timestamps[~seen], timestamps[seen], flat[seen, c])
        joints = flat.reshape(t, 17, 3)
    joints = joints - joints[:, :1]
    return Pose3D(joints=joints, frame="camera", fps=fps, timestamps=np.asarray(timestamps, dtype=np.float64),
                  confidence=confidence, trajectory=None,
                  meta={"lifter": "blazepose-world", "root_relative": True})
