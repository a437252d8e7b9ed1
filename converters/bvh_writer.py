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
from scipy.spatial.transform import Rotation

from converters.errors import ConversionError
from converters.fileio import atomic_write
from converters.motion import Motion

__all__ = ["motion_to_bvh_text", "write_bvh"]

_UNITS = {"cm": 100.0, "m": 1.0}
_TIP_M = 0.08


def _euler_channels(motion: Motion, order: str) -> np.ndarray:
    """Continuous intrinsic Euler angles ``(T,J,3)`` in degrees, in ``order``.

    Every rotation has two Euler triples, ``(a, b, c)`` and ``(a + 180, 180 - b, c + 180)``; near
    gimbal lock the decomposition hops between them. Frame by frame, the triple closest to the
    previous frame's is kept, then shifted by whole turns to the nearest equivalent value.
    """
    t, j = motion.rotations.shape[:2]
    rot = Rotation.from_quat(motion.rotations.reshape(-1, 4), scalar_first=True)
    first = rot.as_euler(order.upper(), degrees=False).reshape(t, j, 3)
    second = first + np.array([np.pi, 0.0, np.pi])
    second[..., 1] = np.pi - first[..., 1]
    out = np.empty_like(first)
    out[0] = first[0]
    turn = 2 * np.pi
    for k in range(1, t):
        prev = out[k - 1]
        a = first[k] + turn * np.round((prev - first[k]) / turn)
        b = second[k] + turn * np.round((prev - second[k]) / turn)
        closer_b = np.abs(b - prev).sum(-1) < np.abs(a - prev).sum(-1)
        out[k] = np.where(closer_b[:, None], b, a)
    return np.degrees(out)


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
