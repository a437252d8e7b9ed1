"""Data contracts between pipeline stages (numpy only, validated on construction).

- :class:`Keypoints2D`: one person's 2D keypoints over a clip, pixels.
- :class:`Pose3D`: that person's 3D joints over the clip, metres.

Both are saved as ``.npz`` with the array names below plus a ``meta`` JSON string, and read back
by :func:`load_keypoints` / :func:`load_pose3d` without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import InputFileError
from converters.fileio import atomic_write
from converters.joints import joint_set
from converters.npz import open_npz

__all__ = ["MAX_COORDINATE_M", "MAX_FPS", "MAX_TIMESTAMP_S", "MIN_FPS", "Keypoints2D", "Pose3D", "atomic_save_npz",
           "check_fps", "check_magnitude", "check_timestamps", "load_keypoints", "load_pose3d"]

_KP_FORMAT = "vp3d-keypoints2d"
_POSE_FORMAT = "vp3d-pose3d"


#: Frame rates vp3d accepts anywhere (BVH, keypoint files, results, checkpoints): a rate outside
#: is a broken file, and would make resampling allocate absurd amounts of memory.
MIN_FPS, MAX_FPS = 1.0, 1000.0
#: No joint of a person is further from the origin than this (metres); a file that says otherwise
#: is broken, and arithmetic on its values would overflow.
MAX_COORDINATE_M = 1e5
#: Timestamps (seconds) beyond this are broken (and their differences could overflow).
MAX_TIMESTAMP_S = 1e9


def check_magnitude(values: np.ndarray, limit: float, where: str, allow_nan: bool = False) -> None:
    """Refuse infinite values (and NaN unless ``allow_nan``: a missing value) and any further than
    ``limit`` from zero, before arithmetic on them overflows (and numpy warns)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return
    finite = np.isfinite(arr)
    if not finite.all() and (not allow_nan or np.isinf(arr).any()):
        raise InputFileError(f"{where}: holds NaN or infinite values; the file is broken")
    seen = arr[finite] if allow_nan else arr
    top = max(-float(seen.min()), float(seen.max())) if seen.size else 0.0
    if top > limit:
        raise InputFileError(f"{where}: holds values up to {top:.3g}, beyond {limit:g}; the file is broken or not in "
                             "the units vp3d reads")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise InputFileError(message)


def check_fps(fps: object, where: str = "") -> float:
    """``fps`` if it is a frame rate vp3d can work with, else an :class:`InputFileError`."""
    prefix = f"{where}: " if where else ""
    if not (isinstance(fps, int | float | np.number) and not isinstance(fps, bool) and MIN_FPS <= fps <= MAX_FPS):
        raise InputFileError(f"{prefix}frame rate {fps!r} is outside {MIN_FPS:g} to {MAX_FPS:g} frames per second; "
                             "the file is broken or its frame rate field is wrong")
    return float(fps)


def check_timestamps(timestamps: np.ndarray, fps: float, where: str = "") -> None:
    """Timestamps must be finite, always go forward, and not span far more frames than they
    hold (each second of span costs ``fps`` frames when resampled onto an even grid)."""
    prefix = f"{where}: " if where else ""
    t = np.asarray(timestamps)
    if t.size == 0:
        return
    if t.dtype.kind not in "fiu" or not np.isfinite(t).all():
        raise InputFileError(f"{prefix}timestamps are not all finite numbers; the file is broken")
    if max(-float(t.min()), float(t.max())) > MAX_TIMESTAMP_S:
        raise InputFileError(f"{prefix}timestamps reach {max(-float(t.min()), float(t.max())):.3g} s, beyond "
                             f"{MAX_TIMESTAMP_S:g} s; the file is broken")
    if t.size > 1 and (np.diff(t) <= 0).any():
        where_back = int(np.argmax(np.diff(t) <= 0))
        raise InputFileError(f"{prefix}timestamps do not go forward after frame {where_back} (a repeated or earlier "
                             "time); the file is broken")
    implied = float(t[-1] - t[0]) * fps
    if implied > 2 * t.size + 10 * fps:
        raise InputFileError(f"{prefix}{t.size} frames spread over {t[-1] - t[0]:.4g} s at {fps:g} fps (room for "
                             f"{implied:.3g} frames); the timestamps or the frame rate are wrong")


@dataclass(frozen=True)
class Keypoints2D:
    """2D keypoints of one person.

    ``xy (T,K,2)`` pixels (x right, y down, origin at the top-left corner of the displayed,
    rotation-corrected frame); ``score (T,K)`` detector confidence in [0, 1]; ``valid (T,K)``
    true where the joint was detected with confidence (false where it was filled in, or placed by
    a detector that estimates hidden joints but scored low); ``format`` a joint-set name
    (``coco17``); ``image_size (w, h)``; ``fps`` nominal frame rate; ``timestamps (T,)`` seconds
    of each frame from the start of the video (real timestamps, so variable frame rate survives).
    """

    xy: np.ndarray
    score: np.ndarray
    valid: np.ndarray
    format: str
    image_size: tuple[int, int]
    fps: float
    timestamps: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = joint_set(self.format).size
        t = self.xy.shape[0]
        _check(self.xy.shape == (t, k, 2), f"xy must be (T,{k},2) for {self.format}, got {self.xy.shape}")
        _check(self.score.shape == (t, k), f"score must be (T,{k}), got {self.score.shape}")
        _check(self.valid.shape == (t, k) and self.valid.dtype == bool, "valid must be a (T,K) bool array")
        _check(self.timestamps.shape == (t,), f"timestamps must be (T,), got {self.timestamps.shape}")
        _check(len(self.image_size) == 2 and min(self.image_size) > 0, f"bad image size {self.image_size}")
        check_fps(self.fps, "keypoints")
        check_timestamps(self.timestamps, self.fps, "keypoints")

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[0])

    def save(self, path: str | Path) -> Path:
        meta = {"format_name": _KP_FORMAT, "format": self.format, "image_size": list(self.image_size),
                "fps": self.fps, **self.meta}
        return atomic_save_npz(path, xy=self.xy.astype(np.float32), score=self.score.astype(np.float32),
                               valid=self.valid, timestamps=self.timestamps.astype(np.float64),
                               meta=np.array(json.dumps(meta)))


@dataclass(frozen=True)
class Pose3D:
    """3D joints of one person.

    ``joints (T,17,3)`` metres in the H36M-17 order; ``frame`` is ``camera`` (x right, y down,
    z forward, root-relative unless ``trajectory`` is added back) or ``world`` (Y up, floor at
    y = 0); ``trajectory (T,3)`` the root in the same frame, or None; ``confidence (T,)``;
    ``fps`` and ``timestamps (T,)`` as in :class:`Keypoints2D`.
    """

    joints: np.ndarray
    frame: str
    fps: float
    timestamps: np.ndarray
    confidence: np.ndarray
    trajectory: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.joints.shape[0]
        _check(self.joints.shape == (t, 17, 3), f"joints must be (T,17,3), got {self.joints.shape}")
        _check(self.frame in ("camera", "world"), f"frame must be 'camera' or 'world', got {self.frame!r}")
        _check(self.timestamps.shape == (t,), "timestamps must be (T,)")
        _check(self.confidence.shape == (t,), "confidence must be (T,)")
        _check(self.trajectory is None or self.trajectory.shape == (t, 3), "trajectory must be (T,3)")
        check_fps(self.fps, "3D joints")
        check_timestamps(self.timestamps, self.fps, "3D joints")

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    def save(self, path: str | Path) -> Path:
        meta = {"format_name": _POSE_FORMAT, "frame": self.frame, "fps": self.fps,
                "joint_names": list(joint_set("h36m17").names), **self.meta}
        arrays: dict[str, np.ndarray] = {
            "joints": self.joints.astype(np.float32), "timestamps": self.timestamps.astype(np.float64),
            "confidence": self.confidence.astype(np.float32), "meta": np.array(json.dumps(meta)),
        }
        if self.trajectory is not None:
            arrays["trajectory"] = self.trajectory.astype(np.float32)
        return atomic_save_npz(path, **arrays)


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to a temporary file in the same folder, then rename."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def _read_npz(path: str | Path, kind: str, names: tuple[str, ...],
              optional: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays ``names`` (and those of ``optional`` it holds) and the meta of a vp3d ``kind``
    file, read through :func:`converters.npz.open_npz`."""
    p = Path(path)
    with open_npz(p) as npz:
        if "meta" not in npz:
            raise InputFileError(f"{p}: not a vp3d {kind} file (no meta)")
        meta = npz.json("meta")
        if not isinstance(meta, dict) or meta.get("format_name") != (_KP_FORMAT if kind == "keypoints" else
                                                                     _POSE_FORMAT):
            found = meta.get("format_name") if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
            raise InputFileError(f"{p}: not a vp3d {kind} file (meta is {str(found)[:40]!r})")
        missing = npz.missing(*names)
        if missing:
            raise InputFileError(f"{p}: not a vp3d {kind} file (no {', '.join(missing)})")
        arrays = {n: npz.read(n) for n in (*names, *(o for o in optional if o in npz))}
    for n, arr in arrays.items():
        if arr.dtype.kind not in "fiub":
            raise InputFileError(f"{p}: {n} holds {arr.dtype}, not numbers")
        if kind == "pose3d" and n in ("joints", "trajectory"):  # (far-off 2D is the pipeline's to judge)
            check_magnitude(arr, MAX_COORDINATE_M, f"{p}: {n}", allow_nan=True)
    return arrays, meta


def load_keypoints(path: str | Path) -> Keypoints2D:
    arrays, meta = _read_npz(path, "keypoints", ("xy", "score", "valid", "timestamps"))
    extra = {k: v for k, v in meta.items() if k not in ("format_name", "format", "image_size", "fps")}
    try:
        return Keypoints2D(xy=arrays["xy"].astype(np.float64), score=arrays["score"].astype(np.float64),
                           valid=arrays["valid"].astype(bool), format=meta["format"],
                           image_size=(int(meta["image_size"][0]), int(meta["image_size"][1])),
                           fps=float(meta["fps"]), timestamps=arrays["timestamps"], meta=extra)
    except (KeyError, ValueError, TypeError, OverflowError, InputFileError) as exc:
        raise InputFileError(f"{path}: malformed vp3d keypoints file ({str(exc)[:200]})") from None


def load_pose3d(path: str | Path) -> Pose3D:
    arrays, meta = _read_npz(path, "pose3d", ("joints", "timestamps", "confidence"), ("trajectory",))
    extra = {k: v for k, v in meta.items() if k not in ("format_name", "frame", "fps", "joint_names")}
    extra["source"] = str(path)  # the file given: errors name it (its meta may record another source)
    try:
        return Pose3D(joints=arrays["joints"].astype(np.float64), frame=meta["frame"], fps=float(meta["fps"]),
                      timestamps=arrays["timestamps"], confidence=arrays["confidence"].astype(np.float64),
                      trajectory=arrays["trajectory"].astype(np.float64) if "trajectory" in arrays else None,
                      meta=extra)
    except (KeyError, ValueError, TypeError, OverflowError, InputFileError) as exc:
        raise InputFileError(f"{path}: malformed vp3d pose file ({str(exc)[:200]})") from None
