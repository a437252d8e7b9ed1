"""Hand-made H36M-17 poses for solver tests (world, Y up, metres, facing +Z)."""

from __future__ import annotations

import numpy as np

from converters.joints import H36M17

_T_POSE = {"pelvis": (0, 1, 0), "right_hip": (-0.1, 0.98, 0), "right_knee": (-0.1, 0.55, 0.02),
           "right_ankle": (-0.1, 0.1, 0), "left_hip": (0.1, 0.98, 0), "left_knee": (0.1, 0.55, 0.02),
           "left_ankle": (0.1, 0.1, 0), "spine": (0, 1.23, 0), "thorax": (0, 1.48, 0), "neck_nose": (0, 1.6, 0.05),
           "head_top": (0, 1.72, 0), "left_shoulder": (0.17, 1.47, 0), "left_elbow": (0.45, 1.47, 0),
           "left_wrist": (0.7, 1.47, 0), "right_shoulder": (-0.17, 1.47, 0), "right_elbow": (-0.45, 1.47, 0),
           "right_wrist": (-0.7, 1.47, 0)}
_ARMS_DOWN = {"left_elbow": (0.2, 1.2, 0), "left_wrist": (0.22, 0.95, 0.05), "right_elbow": (-0.2, 1.2, 0),
              "right_wrist": (-0.22, 0.95, 0.05)}


def t_pose(arms_down: bool = False) -> np.ndarray:
    """A plausible standing figure ``(17,3)``: arms level along +-X, or hanging at the sides."""
    pos = {**_T_POSE, **(_ARMS_DOWN if arms_down else {})}
    return np.array([pos[n] for n in H36M17.names], dtype=np.float64)
