"""Plain arrays written by other tools: one ``(T,17,3)`` or ``(T,17,2)`` array in a ``.npy`` or a
one-array ``.npz``, read (never unpickled), told apart by shape, and turned into vp3d's types.

- ``(T,17,3)``: 3D joints in the Human3.6M order of VideoPose3D (``converters.joints.H36M17``), in
  metres, centimetres or millimetres (told by the bone lengths), in any right-handed axes: up is
  taken from the body (camera space with y down, and Z-up world arrays, both work); joints may be
  root-relative or include the root's motion. The frame rate is not stored: ``--fps``, else 30.
- ``(T,17,2)``: 2D keypoints in pixels, COCO-17 order; ``(T,17,3)`` whose third column is a score
  in [0, 1] and whose x, y are pixels is read as 2D keypoints with scores. The image size is not
  stored: ``--image-size WxH`` (or the video) must give it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from converters.errors import InputFileError
from converters.joints import H36M17
from converters.npz import check_npy_file, open_npz
from converters.types import MAX_COORDINATE_M, Pose3D, check_magnitude
from vp3d_engine.detectors.types import FrameDetections

__all__ = ["ARRAY_SHAPES", "DEFAULT_FPS", "array_kind", "detections_from_array", "joints_from_array",
           "load_plain_array", "npz_names"]

ARRAY_SHAPES = "(T,17,3) 3D joints in Human3.6M order, or (T,17,2) / (T,17,3 with scores) COCO-17 2D keypoints"
#: Frame rate assumed for files that do not store one when ``--fps`` is not given.
DEFAULT_FPS = 30.0
_MIN_FRAMES = 1
#: Metres per unit, tried in turn: the one that makes the limbs about a third of a metre long wins.
_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_LIMBS = [("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"),
          ("left_knee", "left_ankle"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
          ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist")]
_TYPICAL_LIMB_M = 0.33
#: The furthest a joint may be from zero in a plain array, in its units (millimetres at most).
_MAX_VALUE = MAX_COORDINATE_M / min(_UNITS.values())


def npz_names(path: Path) -> list[str]:
    """The array names in an ``.npz``, after checking every member (:func:`converters.npz.open_npz`;
    object arrays are allowed here, for the 2D readers that parse them safely)."""
    with open_npz(path, objects=True) as npz:
        return npz.names


def load_plain_array(path: Path) -> np.ndarray:
    """The one array of a ``.npy`` or one-array ``.npz`` (never unpickled), as float64; its header
    is checked before anything is read."""
    if path.suffix.lower() == ".npy":
        _check_header(path, *check_npy_file(path))
        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise InputFileError(f"{path}: not a readable numpy file ({exc})") from None
    else:
        with open_npz(path) as npz:
            if len(npz.names) != 1:
                raise InputFileError(f"{path}: holds {len(npz.names)} arrays ({', '.join(npz.names)}); a plain "
                                     f"joints file holds one: {ARRAY_SHAPES}")
            _check_header(path, *npz.headers[npz.names[0]])
            arr = npz.read(npz.names[0])
    return np.asarray(arr, dtype=np.float64)


def _check_header(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, from its header, an array of another shape or kind than vp3d reads."""
    if len(shape) != 3 or shape[1:] not in ((17, 3), (17, 2)) or shape[0] < _MIN_FRAMES:
        raise InputFileError(f"{path}: an array of shape {shape}; vp3d reads {ARRAY_SHAPES}")
    if dtype.kind not in "fiu":
        raise InputFileError(f"{path}: an array of {dtype}, not numbers")


def _is_2d_with_scores(arr: np.ndarray) -> bool:
    third = arr[..., 2][np.isfinite(arr[..., 2])]
    xy = np.abs(arr[..., :2][np.isfinite(arr[..., :2])])
    return bool(third.size and third.min() >= 0 and third.max() <= 1 and xy.size and np.percentile(xy, 90) > 20)


def array_kind(path: Path) -> Literal["keypoints", "motion"]:
    """``keypoints`` (2D) or ``motion`` (3D joints) for a plain array file, by shape."""
    arr = load_plain_array(path)
    return "keypoints" if arr.shape[2] == 2 or _is_2d_with_scores(arr) else "motion"


def joints_from_array(arr: np.ndarray, path: Path, fps: float | None) -> Pose3D:
    """A plain ``(T,17,3)`` joints array as a :class:`Pose3D` in metres (see the module notes)."""
    if not np.isfinite(arr).all():
        raise InputFileError(f"{path}: the joints contain NaN or infinite values")
    check_magnitude(arr, _MAX_VALUE, f"{path}: the joints")  # before squaring them overflows
    index = {n: i for i, n in enumerate(H36M17.names)}
    lengths = np.concatenate([np.linalg.norm(arr[:, index[a]] - arr[:, index[b]], axis=-1) for a, b in _LIMBS])
    limb = float(np.median(lengths))
    if limb <= 0:
        raise InputFileError(f"{path}: the limbs have no length; is this a (T,17,3) array of Human3.6M joints?")
    unit = min(_UNITS, key=lambda u: abs(np.log(limb * _UNITS[u] / _TYPICAL_LIMB_M)))
    scale = _UNITS[unit]
    if not 0.1 < limb * scale < 1.0:
        raise InputFileError(f"{path}: limbs of median length {limb:.3g} in the file's units fit no unit of length "
                             "(m, cm, mm); is this a (T,17,3) array of Human3.6M joints?")
    rate = fps or DEFAULT_FPS
    times = np.arange(arr.shape[0]) / rate
    return Pose3D(joints=arr * scale, frame="camera", fps=rate, timestamps=times, confidence=np.ones(len(times)),
                  meta={"source": str(path), "units_read": unit, "fps_assumed": fps is None})


def detections_from_array(arr: np.ndarray, path: Path) -> FrameDetections:
    """A plain 2D keypoints array as one person per frame (score 1 without a score column; joints
    with a non-finite coordinate count as missing)."""
    xy = arr[..., :2]
    score = arr[..., 2] if arr.shape[2] == 3 else np.ones(arr.shape[:2])
    bad = ~(np.isfinite(xy).all(axis=-1) & np.isfinite(score))
    people = np.concatenate([np.where(bad[..., None], 0.0, xy), np.where(bad, 0.0, np.clip(score, 0, 1))[..., None]],
                            axis=-1)
    return FrameDetections(people=[people[t][None] for t in range(len(people))], source=str(path))
