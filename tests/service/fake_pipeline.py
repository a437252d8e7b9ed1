"""A stand-in for the pipeline in the service's tests: fast, deterministic, and different for
every upload (the result names the upload's size, the options and the worker's pid).

- ``VP3D_FAKE_SECONDS`` sets how long a job takes (reported as the ``detect`` stage); an upload
  named ``long...`` takes ``LONG_S`` seconds (a job to wait behind).
- Person 9 fails at once, and an upload named ``broken...`` fails at 86% (after "detection"), each
  with a one-line error as the real pipeline would.
- ``VP3D_FAKE_FILES=1`` also writes the files the web page asks for (a Motion file, BVH, GLB and
  NPZ) for a small figure that walks 6 m along +X in 3 s: the page has a real skeleton to show.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WALK_M = 6.0  # how far the fake figure's root travels along +X
LONG_S = 30.0  # how long a job named long... takes


def walking_figure() -> Any:
    """A 7-joint figure (hips, spine, head, two legs) whose root goes from x=0 to ``WALK_M`` at 30 fps."""
    from converters.motion import Motion, Rig

    rig = Rig(names=("Hips", "Spine", "Head", "LeftUpLeg", "LeftLeg", "RightUpLeg", "RightLeg"),
              parents=np.array([-1, 0, 1, 0, 3, 0, 5]),
              rest_offsets=np.array([[0, 0.95, 0], [0, 0.3, 0], [0, 0.35, 0], [0.1, -0.05, 0], [0, -0.45, 0],
                                     [-0.1, -0.05, 0], [0, -0.45, 0]], dtype=float),
              preset="fake", end_sites={"Head": (0.0, 0.15, 0.0), "LeftLeg": (0.0, -0.45, 0.0),
                                        "RightLeg": (0.0, -0.45, 0.0)})
    t = np.arange(91) / 30.0
    rotations = np.zeros((len(t), 7, 4))
    rotations[..., 0] = 1.0
    swing = 0.4 * np.sin(2 * np.pi * t)  # the legs swing about X, opposite to each other
    for joint, sign in ((3, 1.0), (5, -1.0)):
        rotations[:, joint] = np.stack([np.cos(sign * swing / 2), np.sin(sign * swing / 2), 0 * t, 0 * t], axis=1)
    root = np.stack([WALK_M * t / t[-1], 0.95 + 0.02 * np.sin(4 * np.pi * t), 0 * t], axis=1)
    return Motion(rig, rotations, root, 30.0, {"source": "fake"})


def _write_files(out: Path, stem: str) -> list[str]:
    from converters.bvh_writer import write_bvh
    from converters.fileio import atomic_write
    from converters.gltf_writer import write_gltf
    from converters.motion_file import save_motion_file

    motion = walking_figure()
    save_motion_file(motion, out / f"{stem}.motion.npz")
    write_bvh(motion, out / f"{stem}.bvh")
    write_gltf(motion, out / f"{stem}.glb")
    atomic_write(out / f"{stem}.npz", lambda f: np.savez(f, root=motion.root_translation))
    return [f"{stem}.motion.npz", f"{stem}.bvh", f"{stem}.glb", f"{stem}.npz"]


def make_runner() -> Callable[[Any, Callable[[str, float], None]], dict[str, Any]]:
    default_seconds = float(os.environ.get("VP3D_FAKE_SECONDS", "0.5"))
    files = os.environ.get("VP3D_FAKE_FILES") == "1"

    def run(task: Any, progress: Callable[[str, float], None]) -> dict[str, Any]:
        from converters.errors import ConversionError
        from converters.fileio import atomic_write

        seconds = LONG_S if task.stem.startswith("long") else default_seconds
        if task.options.get("person") == 9:
            raise ConversionError("person 9 is missing from 100% of the frames; choose another --person")
        for k in range(10):
            progress("detect", 0.9 * k / 10)
            time.sleep(seconds / 10)
        if task.stem.startswith("broken"):
            progress("detect", 0.86)
            raise ConversionError("no person was found in 93% of the frames; film the whole body, in good light")
        out = Path(task.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result = {"upload_bytes": Path(task.upload).stat().st_size, "options": task.options, "pid": os.getpid()}
        name = f"{task.stem}.json"
        atomic_write(out / name, lambda f: f.write(json.dumps(result).encode()))
        names = [name] + (_write_files(out, task.stem) if files else [])
        progress("write", 1.0)
        return {"files": names, "timings": {"convert_s": seconds}}

    return run
