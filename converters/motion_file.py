"""The Motion file (``NAME.motion.npz``): vp3d's hand-over from the engine to everything that
animates. Written and read with numpy alone (Blender's Python has numpy, not scipy or torch),
versioned, and validated on load. The format is documented in ``docs/FORMATS.md``.

Arrays (``np.savez_compressed``, no pickled objects):

- ``parents (J,) int32``: parent index of every joint, the root first (-1), parents before children;
- ``rest_offsets (J,3) float64``: metres, each joint's offset from its parent in the T-pose;
- ``rotations (T,J,4) float64``: local (parent-relative) rotations, unit quaternions ``w, x, y, z``;
- ``root_translation (T,3) float64``: the root joint's world position, metres;
- ``world_joints (T,17,3) float64`` (optional): the Human3.6M joints the rotations were solved from,
  world space, metres (lets a reader re-solve onto another rig);
- ``foot_contacts (T,2) bool`` (optional): left and right foot in contact with the floor;
- ``meta``: a 0-d string array holding JSON: ``format_name`` ``"vp3d-motion"``, ``format_version``,
  ``fps``, ``preset``, ``joint_names``, ``end_sites``, ``units``, ``axes``, ``created_by`` and
  ``options`` (what produced it: source, checkpoint, rig...).

World space: right-handed, Y up, metres, the floor at y = 0, the subject facing +Z at frame 0.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import InputFileError
from converters.fileio import atomic_write, check_input_path, check_npz_arrays
from converters.motion import Motion, Rig
from converters.types import check_fps

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MOTION_SUFFIX", "MotionFile", "load_motion_file", "save_motion_file"]

FORMAT_NAME = "vp3d-motion"
FORMAT_VERSION = 1
MOTION_SUFFIX = ".motion.npz"
AXES = "right-handed, Y up, metres, floor at y = 0, subject facing +Z at frame 0"


class MotionFile:
    """A Motion as read from a file, with what else the file holds."""

    def __init__(self, motion: Motion, world_joints: np.ndarray | None, foot_contacts: np.ndarray | None,
                 meta: dict[str, Any]) -> None:
        self.motion = motion
        self.world_joints = world_joints
        self.foot_contacts = foot_contacts
        self.meta = meta


def save_motion_file(motion: Motion, path: str | Path, world_joints: np.ndarray | None = None,
                     foot_contacts: np.ndarray | None = None, created_by: str = "vp3d") -> Path:
    """Write ``motion`` (and optionally its source joints and foot contacts) to ``path`` atomically."""
    t = motion.num_frames
    if world_joints is not None and world_joints.shape != (t, 17, 3):
        raise ValueError(f"world_joints must be ({t},17,3), got {world_joints.shape}")
    if foot_contacts is not None and foot_contacts.shape != (t, 2):
        raise ValueError(f"foot_contacts must be ({t},2), got {foot_contacts.shape}")
    rig = motion.rig
    meta = {
        "format_name": FORMAT_NAME, "format_version": FORMAT_VERSION, "fps": float(motion.fps), "preset": rig.preset,
        "joint_names": list(rig.names), "end_sites": {k: list(map(float, v)) for k, v in rig.end_sites.items()},
        "units": "m", "axes": AXES, "quaternions": "w, x, y, z; local (relative to the parent joint)",
        "created_by": created_by, "options": _jsonable(motion.meta),
    }
    arrays: dict[str, np.ndarray] = {
        "parents": rig.parents.astype(np.int32), "rest_offsets": rig.rest_offsets.astype(np.float64),
        "rotations": motion.rotations.astype(np.float64),
        "root_translation": motion.root_translation.astype(np.float64),
        "meta": np.array(json.dumps(meta)),
    }
    if world_joints is not None:
        arrays["world_joints"] = world_joints.astype(np.float64)
    if foot_contacts is not None:
        arrays["foot_contacts"] = foot_contacts.astype(bool)
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def _jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold turned into text."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return str(value)


def _array(npz: Any, name: str, path: Path, shape: tuple[int | None, ...], kinds: str) -> np.ndarray:
    if name not in npz.files:
        raise InputFileError(f"{path}: not a complete Motion file (no {name})")
    arr = npz[name]
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape,
                                                                                            strict=True)):
        want_text = "(" + ",".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputFileError(f"{path}: {name} has shape {arr.shape}, expected {want_text}")
    if arr.dtype.kind not in kinds:
        raise InputFileError(f"{path}: {name} holds {arr.dtype}, not numbers")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputFileError(f"{path}: {name} holds NaN or infinite values")
    return arr


def load_motion_file(path: str | Path) -> MotionFile:
    """Read and validate a Motion file; every problem is an :class:`InputFileError` naming the file."""
    p = check_input_path(path)
    check_npz_arrays(p)
    try:
        with np.load(p, allow_pickle=False) as npz:
            if "meta" not in npz.files:
                raise InputFileError(f"{p}: not a Motion file (no meta)")
            meta = json.loads(str(npz["meta"]))
            if not isinstance(meta, dict) or meta.get("format_name") != FORMAT_NAME:
                found = meta.get("format_name") if isinstance(meta, dict) else type(meta).__name__
                raise InputFileError(f"{p}: not a Motion file (format {found!r})")
            version = meta.get("format_version")
            if not isinstance(version, int) or version < 1:
                raise InputFileError(f"{p}: format_version {version!r} is not a version number")
            if version > FORMAT_VERSION:
                raise InputFileError(f"{p}: Motion file format {version} is newer than this vp3d reads "
                                     f"({FORMAT_VERSION}); upgrade vp3d")
            parents = _array(npz, "parents", p, (None,), "iu").astype(np.int64)
            j = len(parents)
            offsets = _array(npz, "rest_offsets", p, (j, 3), "f")
            rotations = _array(npz, "rotations", p, (None, j, 4), "f").astype(np.float64)
            t = rotations.shape[0]
            root = _array(npz, "root_translation", p, (t, 3), "f")
            world = _array(npz, "world_joints", p, (t, 17, 3), "f") if "world_joints" in npz.files else None
            contacts = _array(npz, "foot_contacts", p, (t, 2), "b") if "foot_contacts" in npz.files else None
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputFileError(f"{p}: not a readable Motion file ({exc})") from None
    names = meta.get("joint_names")
    if not (isinstance(names, list) and len(names) == j and all(isinstance(n, str) and n for n in names)
            and len(set(names)) == j):
        raise InputFileError(f"{p}: joint_names must be {j} different, non-empty names")
    if t < 1 or j < 1:
        raise InputFileError(f"{p}: holds no frames or no joints")
    fps = check_fps(meta.get("fps"), str(p))
    norms = np.linalg.norm(rotations, axis=-1)
    if np.abs(norms - 1.0).max() > 1e-3:
        raise InputFileError(f"{p}: rotations are not unit quaternions (lengths from {norms.min():.3g} to "
                             f"{norms.max():.3g})")
    ends = meta.get("end_sites") or {}
    if not isinstance(ends, dict) or not all(isinstance(v, list) and len(v) == 3 for v in ends.values()):
        raise InputFileError(f"{p}: end_sites must map joint names to [x, y, z]")
    try:
        rig = Rig(names=tuple(names), parents=parents, rest_offsets=offsets.astype(np.float64),
                  preset=str(meta.get("preset", "custom")),
                  end_sites={str(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in ends.items()})
    except ValueError as exc:
        raise InputFileError(f"{p}: {exc}") from None
    options: dict[str, Any] = meta["options"] if isinstance(meta.get("options"), dict) else {}
    motion = Motion(rig=rig, rotations=rotations / norms[..., None], root_translation=root.astype(np.float64),
                    fps=fps, meta=dict(options))
    return MotionFile(motion, None if world is None else world.astype(np.float64), contacts, meta)
