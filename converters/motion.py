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
           "quaternions_to_matrices", "shepperd_quaternions"]


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
    sign-continuous over time; see :func:`continuous_quaternions`)."""
    flat = m.reshape(-1, 9)
    return shepperd_quaternions(*(flat[:, i] for i in range(9))).reshape((*m.shape[:-2], 4))


def shepperd_quaternions(m00: np.ndarray, m01: np.ndarray, m02: np.ndarray, m10: np.ndarray, m11: np.ndarray,
                         m12: np.ndarray, m20: np.ndarray, m21: np.ndarray, m22: np.ndarray) -> np.ndarray:
    """Quaternions ``(N,4)`` wxyz, ``w >= 0``, from the nine matrix entries given as ``(N,)``
    arrays (callers with component-major data pass contiguous rows). Shepperd's method: the
    largest of the four components is found from the diagonal and the others from off-diagonal
    sums, which stays exact for rotations by 180 degrees. The common case (``w`` largest) is
    computed for all matrices at once, the other three only where they are needed."""
    trace = m00 + m11 + m22
    s = np.sqrt(np.maximum(1 + trace, 1e-12)) * 2  # = 4w
    q = np.stack([s / 4, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s], axis=-1)
    other = np.flatnonzero((m00 > trace) | (m11 > trace) | (m22 > trace))
    if other.size:
        mo = np.stack([m00, m01, m02, m10, m11, m12, m20, m21, m22], axis=-1)[other].reshape(-1, 3, 3)
        k = np.argmax(np.stack([mo[:, 0, 0], mo[:, 1, 1], mo[:, 2, 2]], axis=-1), axis=-1)
        i, j, l = k, (k + 1) % 3, (k + 2) % 3  # noqa: E741
        r = np.arange(other.size)
        s = np.sqrt(np.maximum(1 + mo[r, i, i] - mo[r, j, j] - mo[r, l, l], 1e-12)) * 2  # = 4 * q_i
        qo = np.empty((other.size, 4))
        qo[:, 0] = (mo[r, l, j] - mo[r, j, l]) / s
        qo[r, 1 + i] = s / 4
        qo[r, 1 + j] = (mo[r, j, i] + mo[r, i, j]) / s
        qo[r, 1 + l] = (mo[r, l, i] + mo[r, i, l]) / s
        qo[qo[:, 0] < 0] *= -1
        q[other] = qo / np.linalg.norm(qo, axis=-1, keepdims=True)
    return q


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
