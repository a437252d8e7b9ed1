"""Joint sets used across vp3d.

- ``H36M17``: the 17 Human3.6M joints VideoPose3D predicts in 3D, in its order. Joint 9 is the
  "neck/nose" point (between chin and nose), joint 10 the top of the head.
- ``COCO17``: the 17 COCO keypoints 2D detectors produce, in COCO order.

Each set carries its kinematic parents (root first, ``-1`` for the root) where one exists, and
its left/right pairs, which flip augmentation uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["COCO17", "H36M17", "JointSet", "joint_set"]


@dataclass(frozen=True)
class JointSet:
    """An ordered set of named joints.

    ``parents[i]`` is the index of joint ``i``'s parent or -1 (only meaningful for skeletons);
    ``left`` and ``right`` list the indices that swap under a left/right mirror.
    """

    name: str
    names: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def flip_permutation(self) -> np.ndarray:
        """Index array that reorders joints so left and right swap (apply after mirroring x)."""
        perm = np.arange(self.size)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm


H36M17 = JointSet(
    name="h36m17",
    names=(
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
        "left_ankle", "spine", "thorax", "neck_nose", "head_top", "left_shoulder",
        "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
)

COCO17 = JointSet(
    name="coco17",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    parents=(-1,) * 17,
    left=(1, 3, 5, 7, 9, 11, 13, 15),
    right=(2, 4, 6, 8, 10, 12, 14, 16),
)

_SETS = {s.name: s for s in (H36M17, COCO17)}


def joint_set(name: str) -> JointSet:
    """Look a joint set up by name (``h36m17`` or ``coco17``)."""
    try:
        return _SETS[name]
    except KeyError:
        from converters.errors import ConfigurationError

        raise ConfigurationError(
            f"unknown joint format {name!r}; known: {', '.join(sorted(_SETS))}"
        ) from None
