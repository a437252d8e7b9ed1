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
_TURN = 2.0 * np.pi
_TIP_M = 0.08


def _wrap(x: np.ndarray) -> np.ndarray:
    """Angles brought into [-pi, pi] by whole turns."""
    return x - _TURN * np.round(x / _TURN)


def _quaternions_to_euler(q: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intrinsic Tait-Bryan angles (radians) of quaternions ``(..., 4)`` wxyz, as three arrays
    ``a, b, c`` of shape ``(...)``: ``R = R_i(a) @ R_j(b) @ R_k(c)`` for axes ``order = ijk``, ``b`` in
    [-pi/2, pi/2]. With ``R`` the rotation matrix, ``R[i,k] = s sin(b)``, ``tan(a) = -s R[j,k] / R[k,k]``,
    ``tan(c) = -s R[i,j] / R[i,i]``, ``s`` the sign of the axis permutation. At gimbal lock (``cos b =
    0``) only ``a + s c`` is defined: ``c = 0`` there, as scipy does. Only the five matrix entries
    needed are computed, on contiguous component arrays (several times faster than strided ones)."""
    i, j, k = ("XYZ".index(axis) for axis in order)
    s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    comp = np.moveaxis(q, -1, 0).copy()  # (4, ...), each component contiguous
    w, v = comp[0], (comp[1], comp[2], comp[3])
    # The matrix of a quaternion of any length n2 = |q|^2, times n2: every angle below is a ratio of
    # two entries (atan2), so the scale cancels and the quaternions need no normalising.
    n2 = w * w + v[0] * v[0] + v[1] * v[1] + v[2] * v[2]

    def entry(r: int, c: int) -> np.ndarray:
        if r == c:
            return n2 - 2.0 * (v[(r + 1) % 3] ** 2 + v[(r + 2) % 3] ** 2)
        sign = 1.0 if (c - r) % 3 == 2 else -1.0  # R[r,c] = 2 (v_r v_c +- w v_other)
        return 2.0 * (v[r] * v[c] + sign * w * v[3 - r - c])

    r_ii, r_ij = entry(i, i), entry(i, j)
    cos_b = np.sqrt(r_ii * r_ii + r_ij * r_ij)
    b = np.arctan2(s * entry(i, k), cos_b)
    a = np.arctan2(-s * entry(j, k), entry(k, k))
    c = np.arctan2(-s * r_ij, r_ii)
    locked = cos_b < 1e-9 * n2
    if locked.any():  # R = R_i(a) R_j(+-90) with c = 0: a from the j column of the matrix
        c[locked] = 0.0
        a[locked] = np.arctan2(s * entry(k, j)[locked], entry(j, j)[locked])
    return a, b, c


def _unwrapped(x: np.ndarray) -> np.ndarray:
    """``x (..., T)`` with each value shifted by whole turns to the one nearest its predecessor."""
    steps = np.round(np.diff(x, axis=-1) / _TURN)
    if steps.any():
        x = x.copy()
        x[..., 1:] -= _TURN * np.cumsum(steps, axis=-1)
    return x


def _euler_channels(motion: Motion, order: str) -> np.ndarray:
    """Continuous intrinsic Euler angles ``(T,J,3)`` in degrees, in ``order``.

    Every rotation has two Euler triples, ``(a, b, c)`` and ``(a + 180, 180 - b, c + 180)``; near
    gimbal lock the decomposition hops between them. Frame by frame, the triple closest to the
    previous frame's is kept, then shifted by whole turns to the nearest equivalent value.

    Vectorised over time: the two triples are mirror images of each other (up to whole turns, the
    distance from ``first[k]`` to ``second[k-1]`` equals the one from ``second[k]`` to
    ``first[k-1]``), so whether frame ``k`` switches triple relative to frame ``k - 1`` does not
    depend on which triple frame ``k - 1`` kept; the kept triple is the running parity of the
    switches, and the whole turns are a cumulative sum of rounded steps. Computed joint-major
    (``(J, T)`` arrays), where the running sums over time are contiguous.
    """
    a, b, c = _quaternions_to_euler(np.swapaxes(motion.rotations, 0, 1), order.upper())
    # Distances (sums of whole-turn-wrapped differences) from frame k-1's first triple to frame k's
    # first triple, d1 = |wa| + |db| + |wc|, and to its second one, d2 = (pi - |wa|) + m + (pi - |wc|)
    # with m the wrapped pi - b_k - b_{k-1}; frame k switches triple where d2 < d1.
    wa, wc = np.abs(_wrap(np.diff(a, axis=-1))), np.abs(_wrap(np.diff(c, axis=-1)))
    x = np.pi - b[:, 1:] - b[:, :-1]  # in [0, 2 pi]
    switch = _TURN + np.minimum(x, _TURN - x) < 2.0 * (wa + wc) + np.abs(np.diff(b, axis=-1))
    if switch.any():
        use_second = np.zeros(a.shape, dtype=bool)
        use_second[:, 1:] = np.cumsum(switch, axis=-1) % 2 == 1
        a = np.where(use_second, a + np.pi, a)
        b = np.where(use_second, np.pi - b, b)
        c = np.where(use_second, c + np.pi, c)
    out = np.empty((a.shape[1], a.shape[0], 3))
    for k, angle in enumerate((a, b, c)):
        out[:, :, k] = _unwrapped(angle).T
    out *= 180.0 / np.pi
    return out


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
