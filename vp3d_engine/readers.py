"""Reading what vp3d and other tools wrote back in: ``vp3d-convert`` results (their 3D joints to
re-export, their 2D keypoints to lift again), Motion files, plain joints arrays and motion capture
BVH, as the typed values the pipeline stages take (:class:`Pose3D`, :class:`FrameDetections`).

It sits low in the package (no pipeline, no writers), so the 2D file readers can use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import InputFileError
from converters.fileio import check_input_path
from converters.joints import H36M17
from converters.npz import open_npz
from converters.types import MAX_COORDINATE_M, Pose3D, check_fps, check_magnitude, check_timestamps
from vp3d_engine.detectors.types import FrameDetections

__all__ = ["load_pose_file", "load_result_npz", "read_result_keypoints"]


def _read_result(path: Path, names: tuple[str, ...],
                 optional: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays ``names`` (and those of ``optional`` it holds) and the meta of a ``vp3d-convert``
    NPZ, checked: meta an object with a sane fps (and image size), arrays with one row per
    timestamp, timestamps in order, values bounded."""
    check_input_path(path)
    with open_npz(path) as npz:
        missing = npz.missing("meta", "timestamps", *names)
        if missing:
            raise InputFileError(f"{path}: not a vp3d-convert result (no {', '.join(missing)})")
        meta = npz.json("meta")
        if not isinstance(meta, dict) or meta.get("format_name") != "vp3d-result":
            found = meta.get("format_name") if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
            raise InputFileError(f"{path}: not a vp3d-convert result (meta is {str(found)[:40]!r}); re-create it with "
                                 "vp3d-convert")
        fps = check_fps(meta.get("fps"), str(path))
        frames, kind = npz.headers["timestamps"]
        if len(frames) != 1 or kind.kind not in "fiu":
            raise InputFileError(f"{path}: timestamps must be one number per frame, got {kind} {frames}")
        present = (*names, *(o for o in optional if o in npz))
        for n in present:  # from the headers, before reading
            if npz.shape(n)[:1] != frames or npz.headers[n][1].kind not in "fiub":
                raise InputFileError(f"{path}: {n} has shape {npz.shape(n)} for {frames[0]} timestamps")
        arrays = {n: npz.read(n) for n in ("timestamps", *present)}
    times = arrays["timestamps"]
    check_timestamps(times, fps, str(path))
    if times.size < 2:
        raise InputFileError(f"{path}: holds {times.size} frame(s); a motion needs at least 2")
    for n in _METRES:  # before arithmetic on them overflows
        if n in arrays:
            check_magnitude(arrays[n], MAX_COORDINATE_M, f"{path}: {n}", allow_nan=True)
    return arrays, meta


#: A result's arrays of metres, bounded (far-off 2D keypoints are the pipeline's to judge: a few
#: are a detector's glitch, many a wrong image size).
_METRES = ("joints_3d_root_relative", "trajectory", "detector_3d")


def load_result_npz(path: Path) -> Pose3D:
    """The camera-space pose stored in a ``vp3d-convert`` NPZ (to re-export without detection)."""
    arrays, meta = _read_result(path, ("joints_3d_root_relative", "trajectory"))
    traj = arrays["trajectory"].astype(np.float64) if meta.get("has_trajectory") else None
    return Pose3D(joints=arrays["joints_3d_root_relative"].astype(np.float64), frame="camera", fps=float(meta["fps"]),
                  timestamps=arrays["timestamps"].astype(np.float64), confidence=np.ones(len(arrays["timestamps"])),
                  trajectory=traj, meta={"source": str(path)})  # the file given (its meta names its own source)


def _motion_file_pose(path: Path) -> Pose3D:
    """The world joints a Motion file was solved from, to write or re-solve onto any rig."""
    from converters.motion_file import load_motion_file

    loaded = load_motion_file(path)
    if loaded.world_joints is None:
        raise InputFileError(f"{path}: this Motion file does not hold the joints it was solved from, so it cannot "
                             "be re-exported; convert its source again")
    t = loaded.motion.num_frames
    return Pose3D(joints=loaded.world_joints, frame="world", fps=loaded.motion.fps,
                  timestamps=np.arange(t) / loaded.motion.fps, confidence=np.ones(t),
                  meta={"source": str(path)})  # the file given, not the source its options record


def load_pose_file(path: Path, fps: float | None = None) -> Pose3D:
    """3D joints to re-export: a ``vp3d-convert`` result ``.npz`` (camera space), a vp3d 3D joints
    ``.npz``, a plain ``(T,17,3)`` array (``.npy`` or one-array ``.npz``; ``fps`` is its frame
    rate), or a motion capture ``.bvh`` from another tool (world space as the file has it:
    retargeting onto a preset)."""
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        from vp3d_engine.arrays import joints_from_array, load_plain_array, npz_names

        check_input_path(path)
        names = npz_names(path) if suffix == ".npz" else []
        if "keypoints_2d" in names:
            return load_result_npz(path)
        if "rotations" in names and "meta" in names:
            return _motion_file_pose(path)
        if "joints" in names and "meta" in names:
            from converters.types import load_pose3d

            return load_pose3d(path)
        return joints_from_array(load_plain_array(path), path, fps)
    if suffix != ".bvh":
        return load_result_npz(path)
    from converters.bvh import read_bvh
    from converters.skeleton_maps import mocap_joints

    bvh = read_bvh(path)
    if bvh.num_frames == 0:
        raise InputFileError(f"{path}: the file has no frames (Frames: 0), so there is no motion to convert")
    if set(H36M17.names) <= set(bvh.names):  # vp3d's own h36m rig: its joints are the H36M ones
        from converters.bvh import forward_kinematics, infer_unit_scale

        positions, _ = forward_kinematics(bvh, scale=infer_unit_scale(bvh)[1])
        joints = positions[:, [bvh.names.index(n) for n in H36M17.names]]
    else:
        joints = mocap_joints(bvh).h36m
    times = np.arange(joints.shape[0]) / bvh.fps
    return Pose3D(joints=joints, frame="world", fps=bvh.fps, timestamps=times, confidence=np.ones(len(times)),
                  meta={"source": str(path)})


def read_result_keypoints(path: Path) -> FrameDetections:
    """The 2D keypoints of a ``vp3d-convert`` NPZ as detections (to lift them again with another
    checkpoint); filled-in joints come back with score 0 so tracking fills them again. A result
    whose detector placed hidden joints (``meta['hidden_joints_placed']``) keeps its scores (0 in
    frames without the person) and places them the same way again, so its positions come back as
    they were written."""
    arrays, meta = _read_result(path, ("keypoints_2d", "scores", "valid"),
                                ("detector_3d", "detector_3d_seen", "camera_rotations"))
    xy, valid = arrays["keypoints_2d"].astype(np.float64), arrays["valid"].astype(bool)
    t = len(xy)
    if xy.shape != (t, 17, 2) or arrays["scores"].shape != (t, 17) or valid.shape != (t, 17):
        raise InputFileError(f"{path}: keypoints_2d, scores and valid must be (T,17,2), (T,17), (T,17); got "
                             f"{xy.shape}, {arrays['scores'].shape}, {valid.shape}")
    size = meta.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise InputFileError(f"{path}: image_size {size!r} is not [width, height] in pixels")
    scores = np.asarray(arrays["scores"], dtype=np.float64)
    if not (np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()):
        raise InputFileError(f"{path}: scores must be numbers from 0 to 1 (detector confidences); "
                             "convert the video again to get a clean result file")
    placed = meta.get("hidden_joints_placed") is True
    score = scores if placed else np.where(valid, scores, 0.0)
    people = [np.concatenate([xy[i], score[i][:, None]], axis=-1)[None] for i in range(t)]
    return FrameDetections(people=people, image_size=(size[0], size[1]), fps=float(meta["fps"]),
                           timestamps=arrays["timestamps"].astype(np.float64), source=str(path), places_hidden=placed,
                           meta={**_detector_3d(path, arrays, t), **_camera(path, arrays, meta, t)})


def _camera(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], t: int) -> dict[str, Any]:
    """The camera a result file kept (``camera_rotations (T,3,3)`` and ``meta["camera"]``), as the
    :class:`~vp3d_engine.camera_motion.CameraMotion` the pipeline estimated, so that lifting the
    file again takes the camera's turns out alike; nothing when it has none."""
    from vp3d_engine.camera_motion import CameraMotion

    about = meta.get("camera")
    if "camera_rotations" not in arrays or not isinstance(about, dict):
        return {}
    rotations = np.asarray(arrays["camera_rotations"], np.float64)
    focal, size, kind = about.get("focal_px"), about.get("image_size"), about.get("kind")
    ok = (rotations.shape == (t, 3, 3) and np.isfinite(rotations).all()
          and np.abs(np.einsum("tji,tjk->tik", rotations, rotations) - np.eye(3)).max() < 1e-3
          and isinstance(focal, int | float) and not isinstance(focal, bool) and 10 <= focal <= 100_000
          and isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
          and kind in ("static", "rotating", "moving"))
    if not ok or not isinstance(focal, int | float) or not isinstance(size, list):
        raise InputFileError(f"{path}: camera_rotations must be (T,3,3) rotations with meta camera focal_px, "
                             "image_size and kind; convert the video again (or remove camera_rotations)")
    figures = {k: float(v) for k, v in about.items()
               if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("focal_px",)}
    return {"camera_motion": CameraMotion(rotations, arrays["timestamps"].astype(np.float64), float(focal),
                                          (size[0], size[1]), bool(about.get("focal_estimated")), str(kind),
                                          figures)}


def _detector_3d(path: Path, arrays: dict[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
    """MediaPipe's own 3D kept in a result file (``detector_3d (T,17,3)``, ``detector_3d_seen
    (T,)``), for the pipeline to blend in again; nothing when the file has none."""
    if "detector_3d" not in arrays:
        return {}
    if "detector_3d_seen" not in arrays:
        raise InputFileError(f"{path}: detector_3d without detector_3d_seen; convert the video again")
    joints, seen = arrays["detector_3d"], arrays["detector_3d_seen"]
    if (joints.shape != (t, 17, 3) or joints.dtype.kind != "f" or seen.shape != (t,) or seen.dtype != bool
            or not np.isfinite(joints).all()):
        raise InputFileError(f"{path}: detector_3d must be (T,17,3) finite metres and detector_3d_seen (T,) true or "
                             f"false for the {t} frames; got {joints.shape} and {seen.shape} {seen.dtype}; convert "
                             "the video again (or remove those two arrays from the file to lift it alone)")
    return {"detector_3d": joints.astype(np.float64), "detector_3d_seen": seen}
