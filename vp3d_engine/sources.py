"""What a file given to ``vp3d-convert`` is: a video, 2D keypoints, or 3D joints, told apart by
name, by the arrays inside, and for plain arrays by shape (:mod:`vp3d_engine.arrays`); and the
name of the video a 2D file says it was made from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from converters.errors import InputFileError
from converters.fileio import check_input_path
from converters.npz import open_npz
from vp3d_engine.arrays import ARRAY_SHAPES, array_kind, npz_names

__all__ = ["VIDEO_SUFFIXES", "SourceKind", "classify_source", "recorded_video_name"]

#: What a folder of videos is searched for.
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                  ".ts", ".mts"}

SourceKind = Literal["video", "keypoints", "motion"]
_2D_NPZ_KEYS = ({"positions_2d"}, {"keypoints", "boxes"}, {"xy", "meta"})


def classify_source(path: Path) -> SourceKind:
    """``video``, ``keypoints`` (2D) or ``motion`` (3D) for a positional input. Unknown arrays are
    an :class:`InputFileError` naming the shapes vp3d reads."""
    check_input_path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "keypoints"  # an OpenPose folder (folders of videos are expanded before this)
    if suffix == ".bvh":
        return "motion"
    if suffix == ".json":
        return "keypoints"
    if suffix == ".npy":
        return array_kind(path)
    if suffix == ".npz":
        names = set(npz_names(path))
        if {"keypoints_2d", "meta"} <= names or {"joints", "meta"} <= names or {"rotations", "meta"} <= names:
            return "motion"  # a vp3d-convert result, a vp3d 3D joints file or a Motion file: re-export
        if any(keys <= names for keys in _2D_NPZ_KEYS):
            return "keypoints"
        if len(names) == 1:
            return array_kind(path)
        raise InputFileError(f"{path}: an .npz holding {', '.join(sorted(names)) or 'nothing'}; vp3d reads its own "
                             f"results, VideoPose3D and Detectron2 2D files, or one array: {ARRAY_SHAPES}")
    return "video"


def recorded_video_name(path: Path) -> str | None:
    """The name of the video a 2D file says it was made from, where it says one: a vp3d-convert
    result's ``source``, the one video of a VideoPose3D custom file, the common prefix of an
    OpenPose folder's files. None when the file does not say (or cannot be read: reading it later
    gives the reason)."""
    try:
        if path.is_dir():
            names = {p.name.rsplit("_", 2)[0] for p in path.glob("*_keypoints.json")}
            return names.pop() if len(names) == 1 else None
        if path.suffix.lower() != ".npz":
            return None
        with open_npz(path, objects=True) as npz:  # every member checked once; the meta read from it
            names = set(npz.names)
            if "meta" in names and ({"keypoints_2d"} <= names or {"xy"} <= names):
                meta = npz.json("meta")
                source = meta.get("source") if isinstance(meta, dict) else None
                return str(source) if source else None
        if "positions_2d" in names:
            from vp3d_engine.detectors.files import read_videopose3d_custom

            video = read_videopose3d_custom(path).meta.get("video")
            return str(video) if video else None
    except (InputFileError, OSError, ValueError, KeyError):
        return None
    return None
