"""Writing a :class:`~converters.motion.Motion` as BVH.

Y up, the subject facing +Z, centimetres by default (``units="m"`` for metres). The root has six
channels (position, then rotation), every other joint three rotation channels, in one Euler order
(default ``ZXY``: ``R = Rz @ Rx @ Ry``, the order most BVH tools expect). Angles are unwrapped
frame to frame so no channel jumps by 360 degrees. Leaf joints end in an End Site taken from
``rig.end_sites`` or, failing that, a short tip continuing the bone. The file is written to a
temporary name and renamed into place.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from converters.errors import ConversionError
from converters.fileio import atomic_write
from converters.motion import Motion

__all__ = ["motion_to_bvh_text", "write_bvh"]

_UNITS = {"cm": 100.0, "m": 1.0}
_TIP_M = 0.08


def _wrapped_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the three angles of ``|a - b|`` up to whole turns (each term in [0, pi])."""
    d = np.remainder(a - b + np.pi, 2 * np.pi) - np.pi
    return np.abs(d).sum(-1)


def _quaternions_to_euler(q: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Tait-Bryan angles ``(..., 3)`` (radians) of unit quaternions ``(..., 4)`` wxyz:
    ``R = R_i(a) @ R_j(b) @ R_k(c)`` for axes ``order = ijk``, ``b`` in [-pi/2, pi/2]. With ``R``
    the rotation matrix, ``R[i,k] = s sin(b)``, ``tan(a) = -s R[j,k] / R[k,k]``, ``tan(c) = -s R[i,j]
    / R[i,i]``, ``s`` the sign of the axis permutation. At gimbal lock (``cos b = 0``) only ``a + s c``
    is defined: ``c = 0`` there, as scipy does. Only the five matrix entries needed are computed."""
    i, j, k = ("XYZ".index(axis) for axis in order)
    s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, v = q[..., 0], (q[..., 1], q[..., 2], q[..., 3])

    def entry(r: int, c: int) -> np.ndarray:
        if r == c:
            return 1.0 - 2.0 * (v[(r + 1) % 3] ** 2 + v[(r + 2) % 3] ** 2)
        sign = 1.0 if (c - r) % 3 == 2 else -1.0  # R[r,c] = 2 (v_r v_c +- w v_other)
        return 2.0 * (v[r] * v[c] + sign * w * v[3 - r - c])

    sin_b = s * entry(i, k)
    r_ii, r_ij = entry(i, i), entry(i, j)
    cos_b = np.hypot(r_ii, r_ij)
    out = np.empty(q.shape[:-1] + (3,))
    out[..., 1] = np.arctan2(sin_b, cos_b)
    out[..., 0] = np.arctan2(-s * entry(j, k), entry(k, k))
    out[..., 2] = np.arctan2(-s * r_ij, r_ii)
    locked = cos_b < 1e-9
    if locked.any():  # R = R_i(a) R_j(+-90) with c = 0: a from the j column of the matrix
        out[locked, 2] = 0.0
        out[locked, 0] = np.arctan2(s * entry(k, j)[locked], entry(j, j)[locked])
    return out


def _euler_channels(motion: Motion, order: str) -> np.ndarray:
    """Continuous intrinsic Euler angles ``(T,J,3)`` in degrees, in ``order``.

    Every rotation has two Euler triples, ``(a, b, c)`` and ``(a + 180, 180 - b, c + 180)``; near
    gimbal lock the decomposition hops between them. Frame by frame, the triple closest to the
    previous frame's is kept, then shifted by whole turns to the nearest equivalent value.

    Vectorised over time: the two triples are mirror images of each other (up to whole turns, the
    distance from ``first[k]`` to ``second[k-1]`` equals the one from ``second[k]`` to
    ``first[k-1]``), so whether frame ``k`` switches triple relative to frame ``k - 1`` does not
    depend on which triple frame ``k - 1`` kept; the kept triple is the running parity of the
    switches, and the whole turns are ``np.unwrap``.
    """
    j = motion.rotations.shape[1]
    first = _quaternions_to_euler(motion.rotations, order.upper())
    second = first + np.array([np.pi, 0.0, np.pi])
    second[..., 1] = np.pi - first[..., 1]
    switch = _wrapped_distance(second[1:], first[:-1]) < _wrapped_distance(first[1:], first[:-1])
    use_second = np.concatenate([np.zeros((1, j), dtype=bool), np.cumsum(switch, axis=0) % 2 == 1])
    chosen = np.where(use_second[..., None], second, first)
    return np.degrees(np.unwrap(chosen, axis=0))


def _tip(motion: Motion, k: int) -> np.ndarray:
    rig = motion.rig
    if rig.names[k] in rig.end_sites:
        return np.asarray(rig.end_sites[rig.names[k]], dtype=np.float64)
    bone = rig.rest_offsets[k]
    length = np.linalg.norm(bone)
    return bone / length * _TIP_M if length > 1e-9 else np.array([0.0, _TIP_M, 0.0])


def motion_to_bvh_text(motion: Motion, units: str = "cm", order: str = "ZXY") -> str:
    if units not in _UNITS:
        raise ConversionError(f"BVH units must be one of {', '.join(_UNITS)}, not {units!r}")
    if sorted(order.upper()) != ["X", "Y", "Z"]:
        raise ConversionError(f"Euler order must be a permutation of XYZ, not {order!r}")
    scale = _UNITS[units]
    rig = motion.rig
    rot_channels = " ".join(f"{a}rotation" for a in order.upper())
    out = io.StringIO()
    out.write("HIERARCHY\n")

    def vec(v: np.ndarray) -> str:
        return " ".join(f"{x * scale:.6f}" for x in v)

    def write_joint(k: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if rig.parents[k] < 0 else "JOINT"
        out.write(f"{pad}{kind} {rig.names[k]}\n{pad}{{\n")
        offset = np.zeros(3) if rig.parents[k] < 0 else rig.rest_offsets[k]
        out.write(f"{pad}\tOFFSET {vec(offset)}\n")
        if rig.parents[k] < 0:
            out.write(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}\n")
        else:
            out.write(f"{pad}\tCHANNELS 3 {rot_channels}\n")
        children = rig.children(k)
        for c in children:
            write_joint(c, depth + 1)
        if not children:
            out.write(f"{pad}\tEnd Site\n{pad}\t{{\n{pad}\t\tOFFSET {vec(_tip(motion, k))}\n{pad}\t}}\n")
        out.write(f"{pad}}}\n")

    for name in rig.names:
        if not name or any(ch.isspace() for ch in name):
            raise ConversionError(f"joint name {name!r} is empty or contains whitespace; BVH cannot store it")
    write_joint(0, 0)
    # Channel values in the order the hierarchy lists joints (depth first).
    order_of_joints: list[int] = []

    def walk(k: int) -> None:
        order_of_joints.append(k)
        for c in rig.children(k):
            walk(c)

    walk(0)
    angles = _euler_channels(motion, order)[:, order_of_joints]
    values = np.concatenate([motion.root_translation * scale, angles.reshape(motion.num_frames, -1)], axis=1)
    out.write(f"MOTION\nFrames: {motion.num_frames}\nFrame Time: {1.0 / motion.fps:.8f}\n")
    np.savetxt(out, values, fmt="%.6f")
    return out.getvalue()


def write_bvh(motion: Motion, path: str | Path, units: str = "cm", order: str = "ZXY") -> Path:
    """Write ``motion`` to ``path`` as BVH (atomically)."""
    text = motion_to_bvh_text(motion, units, order)
    return atomic_write(path, lambda f: f.write(text), binary=False)
