"""Training takes from BVH motion capture: discovery, resampling, splitting by file.

A take is one BVH file turned into world-space H36M-17 targets and COCO-17 source points
(:func:`converters.skeleton_maps.mocap_joints`), resampled to the checkpoint's frame rate.
Validation holds out whole files, chosen by a hash of the file name so the split is stable
across machines and runs and never puts frames of one take on both sides.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.bvh import read_bvh
from converters.errors import InputFileError
from converters.skeleton_maps import mocap_joints
from converters.timeline import resample_times

__all__ = ["Take", "action_of", "find_bvh_files", "is_validation", "load_takes", "resample"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Take:
    """One mocap take at ``fps``: ``h36m (F,17,3)`` and ``coco (F,17,3)``, world metres, Y up."""

    name: str
    action: str
    h36m: np.ndarray
    coco: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.h36m.shape[0])


def find_bvh_files(dirs: Iterable[str | Path]) -> list[Path]:
    """All ``.bvh`` files under the given folders (or the files themselves), sorted."""
    files: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() == ".bvh"))
        else:
            raise InputFileError(f"{p}: no such file or folder of BVH takes")
    if not files:
        raise InputFileError(f"no .bvh files found under {', '.join(map(str, dirs))}")
    return sorted(set(files))


def action_of(name: str) -> str:
    """Action label from a file name: Bandai Namco ``dataset-1_{action}_{style}_{id}`` gives the
    action; anything else (e.g. CMU ``02_01``) falls back to the folder-free stem's first word."""
    m = re.match(r"dataset-\d+_([^_]+)_", name)
    if m:
        return m.group(1)
    return "cmu" if re.fullmatch(r"\d+_\d+", name) else re.split(r"[_\-.]", name)[0]


def is_validation(name: str, fraction: float) -> bool:
    """Stable split by file name: the take is held out when its hash falls under ``fraction``."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def resample(x: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling along axis 0 from ``fps_in`` to ``fps_out``."""
    if abs(fps_in - fps_out) < 1e-3 * fps_out or x.shape[0] < 2:
        return x
    times = np.arange(x.shape[0]) / fps_in
    return resample_times(x, times, np.arange(0.0, times[-1] + 1e-9, 1.0 / fps_out))


def load_takes(files: Sequence[Path], fps: float, min_frames: int = 1) -> list[Take]:
    """Read every file into a :class:`Take` at ``fps``; skips (with a warning) takes that are
    shorter than ``min_frames`` after resampling."""
    takes = []
    for f in files:
        joints = mocap_joints(read_bvh(f))
        h36m = resample(joints.h36m, joints.fps, fps).astype(np.float32)
        coco = resample(joints.coco, joints.fps, fps).astype(np.float32)
        if h36m.shape[0] < min_frames:
            log.warning("skipping %s: %d frames at %g fps", f, h36m.shape[0], fps)
            continue
        takes.append(Take(name=f.stem, action=action_of(f.stem), h36m=h36m, coco=coco, fps=fps))
    return takes
