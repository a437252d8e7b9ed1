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
- ``camera_rotations (T,4) float64`` and ``camera_positions (T,3) float64`` (optional, format 2):
  the video's camera in the world per frame, unit quaternions ``w, x, y, z`` turning the camera's
  axes (x right, y down, z forward) into the world's, and its position in metres; its focal length
  and image size in ``meta["camera"]``;
- ``meta``: a 0-d string array holding JSON: ``format_name`` ``"vp3d-motion"``, ``format_version``,
  ``fps``, ``preset``, ``joint_names``, ``end_sites``, ``units``, ``axes``, ``created_by`` and
  ``options`` (what produced it: source, checkpoint, rig...).

World space: right-handed, Y up, metres, the floor at y = 0, the subject facing +Z at frame 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import InputFileError
from converters.fileio import atomic_write, check_input_path
from converters.motion import Motion, Rig, matrices_to_quaternions, quaternions_to_matrices
from converters.npz import NpzArrays, open_npz
from converters.types import MAX_COORDINATE_M, check_fps, check_magnitude

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_FRAMES",
    "MAX_JOINTS",
    "MAX_MOTION_BYTES",
    "MOTION_SUFFIX",
    "MotionCamera",
    "MotionFile",
    "load_motion_file",
    "save_motion_file",
]

FORMAT_NAME = "vp3d-motion"
FORMAT_VERSION = 2  # 2: the video's camera (optional); format 1 files read as they are
MOTION_SUFFIX = ".motion.npz"
AXES = "right-handed, Y up, metres, floor at y = 0, subject facing +Z at frame 0"
#: What one Motion file may hold, checked from its array headers before anything is read: frames
#: (an hour at 60 fps; 3.6 minutes at the top rate of 1000 fps), joints, and its arrays' size as
#: float64 in memory (an hour at 60 fps of a 60-joint rig with its source joints fits).
MAX_FRAMES = 216_000
MAX_JOINTS = 256
MAX_MOTION_BYTES = 512 << 20


class MotionCamera:
    """The video's camera in the world, per frame: ``rotations (T,3,3)`` (camera axes x right, y
    down, z forward, to the world's), ``positions (T,3)`` metres, ``focal_px`` in pixels of
    ``image_size (w, h)``."""

    def __init__(self, rotations: np.ndarray, positions: np.ndarray, focal_px: float,
                 image_size: tuple[int, int]) -> None:
        self.rotations = rotations
        self.positions = positions
        self.focal_px = focal_px
        self.image_size = image_size


class MotionFile:
    """A Motion as read from a file, with what else the file holds."""

    def __init__(self, motion: Motion, world_joints: np.ndarray | None, foot_contacts: np.ndarray | None,
                 meta: dict[str, Any], camera: MotionCamera | None = None) -> None:
        self.motion = motion
        self.world_joints = world_joints
        self.foot_contacts = foot_contacts
        self.meta = meta
        self.camera = camera


def save_motion_file(motion: Motion, path: str | Path, world_joints: np.ndarray | None = None,
                     foot_contacts: np.ndarray | None = None, created_by: str = "vp3d",
                     camera: MotionCamera | None = None) -> Path:
    """Write ``motion`` (and optionally its source joints, foot contacts and the video's camera) to
    ``path`` atomically."""
    t = motion.num_frames
    if camera is not None and (camera.rotations.shape != (t, 3, 3) or camera.positions.shape != (t, 3)):
        raise ValueError(f"the camera must have ({t},3,3) rotations and ({t},3) positions")
    if world_joints is not None and world_joints.shape != (t, 17, 3):
        raise ValueError(f"world_joints must be ({t},17,3), got {world_joints.shape}")
    if foot_contacts is not None and foot_contacts.shape != (t, 2):
        raise ValueError(f"foot_contacts must be ({t},2), got {foot_contacts.shape}")
    rig = motion.rig
    meta = {
        "format_name": FORMAT_NAME, "format_version": FORMAT_VERSION if camera is not None else 1,  # 2: with a camera
        "fps": float(motion.fps), "preset": rig.preset,
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
    if camera is not None:
        arrays["camera_rotations"] = matrices_to_quaternions(np.asarray(camera.rotations, np.float64))
        arrays["camera_positions"] = camera.positions.astype(np.float64)
        meta["camera"] = {"focal_px": float(camera.focal_px), "image_size": [int(v) for v in camera.image_size]}
        arrays["meta"] = np.array(json.dumps(meta))
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


def _array(npz: NpzArrays, name: str, shape: tuple[int | None, ...], kinds: str) -> np.ndarray:
    """Array ``name`` checked against ``shape`` and ``kinds`` from its header, then read; floats
    must be finite and no further than :data:`MAX_COORDINATE_M` from zero (metres; unit
    quaternions, below that)."""
    path = npz.path
    if name not in npz:
        raise InputFileError(f"{path}: not a complete Motion file (no {name})")
    got, dtype = npz.headers[name]
    if len(got) != len(shape) or any(want is not None and n != want for n, want in zip(got, shape, strict=True)):
        want_text = "(" + ",".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputFileError(f"{path}: {name} has shape {got}, expected {want_text}")
    if dtype.kind not in kinds:
        raise InputFileError(f"{path}: {name} holds {dtype}, not numbers")
    arr = npz.read(name)
    check_magnitude(arr, MAX_COORDINATE_M, f"{path}: {name}")
    return arr


def _check_size(npz: NpzArrays) -> None:
    """Refuse, from the array headers alone, a file with more frames, joints or memory than
    :data:`MAX_FRAMES`, :data:`MAX_JOINTS` and :data:`MAX_MOTION_BYTES` allow."""
    rotations = npz.headers["rotations"][0] if "rotations" in npz else ()
    frames, joints = (rotations[0], rotations[1]) if len(rotations) == 3 else (0, 0)
    split = "split the take (vp3d-convert --start/--end) or convert it at a lower frame rate"
    if frames > MAX_FRAMES:
        raise InputFileError(f"{npz.path}: {frames:,} frames, more than the {MAX_FRAMES:,} a Motion file may hold (an "
                             f"hour at 60 fps); {split}")
    if joints > MAX_JOINTS:
        raise InputFileError(f"{npz.path}: a rig of {joints:,} joints, more than the {MAX_JOINTS} a Motion file may "
                             "hold; the file is damaged or not a rig vp3d reads")
    need = 8 * sum(math.prod(shape) for name, (shape, _) in npz.headers.items() if name != "meta")
    if need > MAX_MOTION_BYTES:
        raise InputFileError(f"{npz.path}: {frames:,} frames of {joints} joints, {need / 2**20:,.0f} MiB of arrays, "
                             f"more than the {MAX_MOTION_BYTES >> 20} MiB a Motion file may hold; {split}")


def _is_point(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_COORDINATE_M
        for v in value)


def _meta(npz: NpzArrays) -> dict[str, Any]:
    p = npz.path
    if "meta" not in npz:
        raise InputFileError(f"{p}: not a Motion file (no meta)")
    meta = npz.json("meta")
    if not isinstance(meta, dict) or meta.get("format_name") != FORMAT_NAME:
        found = meta.get("format_name") if isinstance(meta, dict) else type(meta).__name__
        raise InputFileError(f"{p}: not a Motion file (format {str(found)[:40]!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise InputFileError(f"{p}: format_version {str(version)[:40]!r} is not a version number")
    if version > FORMAT_VERSION:
        raise InputFileError(f"{p}: Motion file format {version} is newer than this vp3d reads "
                             f"({FORMAT_VERSION}); upgrade vp3d")
    return meta


def load_motion_file(path: str | Path) -> MotionFile:
    """Read and validate a Motion file; every problem is an :class:`InputFileError` naming the file.
    Its size is checked from the array headers before any array is read (:func:`_check_size`)."""
    p = check_input_path(path)
    with open_npz(p) as npz:
        meta = _meta(npz)
        _check_size(npz)
        parents = _array(npz, "parents", (None,), "iu").astype(np.int64)
        j = len(parents)
        offsets = _array(npz, "rest_offsets", (j, 3), "f")
        rotations = np.asarray(_array(npz, "rotations", (None, j, 4), "f"), dtype=np.float64)
        t = rotations.shape[0]
        root = _array(npz, "root_translation", (t, 3), "f")
        world = _array(npz, "world_joints", (t, 17, 3), "f") if "world_joints" in npz else None
        contacts = _array(npz, "foot_contacts", (t, 2), "b") if "foot_contacts" in npz else None
        camera = _camera(npz, meta, t, p) if "camera_rotations" in npz else None
    names = meta.get("joint_names")
    if not (isinstance(names, list) and len(names) == j and all(isinstance(n, str) and n for n in names)
            and len(set(names)) == j):
        raise InputFileError(f"{p}: joint_names must be {j} different, non-empty names")
    if t < 1 or j < 1:
        raise InputFileError(f"{p}: holds no frames or no joints")
    fps = check_fps(meta.get("fps"), str(p))
    norms = np.sqrt(np.einsum("...i,...i->...", rotations, rotations))  # no squared copy of the largest array
    if np.abs(norms - 1.0).max() > 1e-3:
        raise InputFileError(f"{p}: rotations are not unit quaternions (lengths from {norms.min():.3g} to "
                             f"{norms.max():.3g})")
    ends = meta.get("end_sites")
    ends = {} if ends is None else ends
    if not (isinstance(ends, dict) and all(k in names and _is_point(v) for k, v in ends.items())):
        raise InputFileError(f"{p}: end_sites must map joint names to [x, y, z]: three finite numbers, metres")
    try:
        rig = Rig(names=tuple(names), parents=parents, rest_offsets=offsets.astype(np.float64),
                  preset=str(meta.get("preset", "custom"))[:64],
                  end_sites={str(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in ends.items()})
    except ValueError as exc:
        raise InputFileError(f"{p}: {exc}") from None
    options: dict[str, Any] = meta["options"] if isinstance(meta.get("options"), dict) else {}
    rotations /= norms[..., None]  # in place: the file's largest array is not copied
    motion = Motion(rig=rig, rotations=rotations, root_translation=np.asarray(root, dtype=np.float64), fps=fps,
                    meta=dict(options))
    return MotionFile(motion, None if world is None else np.asarray(world, dtype=np.float64), contacts, meta, camera)


def _camera(npz: NpzArrays, meta: dict[str, Any], t: int, p: Path) -> MotionCamera:
    """The camera arrays and ``meta["camera"]``, checked."""
    q = np.asarray(_array(npz, "camera_rotations", (t, 4), "f"), np.float64)
    positions = np.asarray(_array(npz, "camera_positions", (t, 3), "f"), np.float64)
    norms = np.linalg.norm(q, axis=-1)
    if np.abs(norms - 1.0).max() > 1e-3:
        raise InputFileError(f"{p}: camera_rotations are not unit quaternions")
    about = meta.get("camera")
    size = about.get("image_size") if isinstance(about, dict) else None
    focal = about.get("focal_px") if isinstance(about, dict) else None
    if not (isinstance(focal, int | float) and not isinstance(focal, bool) and 1 <= focal <= 1e6
            and isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in size)):
        raise InputFileError(f"{p}: meta camera must give focal_px (pixels) and image_size [width, height]")
    return MotionCamera(quaternions_to_matrices(q / norms[:, None]), positions, float(focal), (size[0], size[1]))
