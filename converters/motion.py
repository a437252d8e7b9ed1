"""Rigs and motions: joint rotations on a skeleton with a T-pose rest (numpy only).

Conventions (stated once): quaternions are ``(w, x, y, z)``; rotation matrices act on column
vectors; world space is right-handed, Y up, metres, the subject facing +Z in the rest pose (so
its left is +X). A joint's world rotation is its parent's world rotation times its local rotation;
a child sits at ``parent position + parent world rotation @ rest offset``. The root's position
is ``root_translation`` (its rest offset is not added).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Motion", "Rig", "continuous_quaternions", "forward_kinematics", "matrices_to_quaternions",
           "quaternions_to_matrices"]


def quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    """``(..., 4)`` wxyz (normalised here) to ``(..., 3, 3)``."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


def matrices_to_quaternions(m: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to ``(..., 4)`` wxyz with ``w >= 0`` (not yet
    sign-continuous over time; see :func:`continuous_quaternions`). Shepperd's method: the
    largest of the four components is found from the diagonal and the others from off-diagonal
    sums, which stays exact for rotations by 180 degrees. The common case (``w`` largest) is
    computed for all matrices at once, the other three only where they are needed."""
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    trace = m00 + m11 + m22
    q = np.empty((m.shape[0], 4))
    s = np.sqrt(np.maximum(1 + trace, 1e-12)) * 2  # = 4w
    q[:, 0] = s / 4
    q[:, 1] = (m[:, 2, 1] - m[:, 1, 2]) / s
    q[:, 2] = (m[:, 0, 2] - m[:, 2, 0]) / s
    q[:, 3] = (m[:, 1, 0] - m[:, 0, 1]) / s
    diag = np.stack([m00, m11, m22], axis=-1)
    other = np.flatnonzero(diag.max(axis=-1) > trace)
    if other.size:
        mo = m[other]
        k = np.argmax(diag[other], axis=-1)
        i, j, l = k, (k + 1) % 3, (k + 2) % 3  # noqa: E741
        r = np.arange(other.size)
        s = np.sqrt(np.maximum(1 + mo[r, i, i] - mo[r, j, j] - mo[r, l, l], 1e-12)) * 2  # = 4 * q_i
        qo = np.empty((other.size, 4))
        qo[:, 0] = (mo[r, l, j] - mo[r, j, l]) / s
        qo[r, 1 + i] = s / 4
        qo[r, 1 + j] = (mo[r, j, i] + mo[r, i, j]) / s
        qo[r, 1 + l] = (mo[r, l, i] + mo[r, i, l]) / s
        q[other] = qo
    q = np.where(q[:, :1] < 0, -q, q)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q.reshape((*shape, 4))


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so consecutive quaternions stay in one hemisphere (``q`` and
    ``-q`` are the same rotation; interpolators and Euler unwrapping need the continuous one)."""
    if q.shape[0] < 2:
        return q.copy()
    # Flipping q[t-1] flips the sign test at t too, so the flips needed are a running product.
    step = np.where((q[1:] * q[:-1]).sum(axis=-1) < 0, -1.0, 1.0)
    sign = np.concatenate([np.ones((1, *step.shape[1:])), np.cumprod(step, axis=0)])
    return q * sign[..., None]


@dataclass(frozen=True)
class Rig:
    """A skeleton: ``names (J)``, ``parents (J,)`` with the root first and ``parents[j] < j``,
    ``rest_offsets (J,3)`` metres in the T-pose (the root's entry is its rest position),
    ``preset`` the naming scheme, ``end_sites`` optional ``{joint: offset}`` tips for leaf bones."""

    names: tuple[str, ...]
    parents: np.ndarray
    rest_offsets: np.ndarray
    preset: str
    end_sites: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        j = len(self.names)
        if self.parents.shape != (j,) or self.rest_offsets.shape != (j, 3):
            raise ValueError(f"rig arrays must have {j} rows")
        if self.parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(self.parents[1:], start=1)):
            raise ValueError("parents must list the root first and every parent before its children")

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, j: int) -> list[int]:
        return [c for c, p in enumerate(self.parents) if p == j]


@dataclass(frozen=True)
class Motion:
    """Local joint rotations ``(T,J,4)`` wxyz and root translation ``(T,3)`` metres on ``rig``,
    at ``fps``; ``meta`` records the options that produced it (source, filters, model)."""

    rig: Rig
    rotations: np.ndarray
    root_translation: np.ndarray
    fps: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.rotations.shape[0]
        if self.rotations.shape != (t, len(self.rig.names), 4) or self.root_translation.shape != (t, 3):
            raise ValueError("rotations must be (T,J,4) and root_translation (T,3) for the rig")
        if self.fps <= 0:
            raise ValueError("fps must be positive")

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])


def forward_kinematics(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions ``(T,J,3)`` and world rotation matrices ``(T,J,3,3)``."""
    rig = motion.rig
    local = quaternions_to_matrices(motion.rotations)
    t, j = local.shape[:2]
    pos = np.zeros((t, j, 3))
    rot = np.zeros((t, j, 3, 3))
    for k in range(j):
        p = rig.parents[k]
        if p < 0:
            pos[:, k] = motion.root_translation
            rot[:, k] = local[:, k]
        else:
            pos[:, k] = pos[:, p] + np.einsum("tab,b->ta", rot[:, p], rig.rest_offsets[k])
            rot[:, k] = rot[:, p] @ local[:, k]
    return pos, rot
