"""Files written by ``vp3d-convert``: NPZ and JSON, atomically (temporary file, then rename).

NPZ arrays (VideoPose3D ``--viz-export`` in spirit, with names that say what they are):
``keypoints_2d (T,17,2)`` pixels, ``scores (T,17)``, ``valid (T,17)`` (false where filled in),
``joints_3d (T,17,3)`` camera space metres (root-relative pose plus trajectory, or root-relative
when the checkpoint has no trajectory model), ``joints_3d_root_relative (T,17,3)``,
``trajectory (T,3)``, ``timestamps (T,)`` seconds, and ``meta``: a JSON string with fps, image
size, joint names (``joint_names_2d``, ``joint_names_3d``), checkpoint, detector and figures.
The JSON file holds the same data as lists.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import ConfigurationError, ConversionError, InputFileError
from converters.fileio import OutputSet, atomic_write, check_input_path, check_npz_arrays
from converters.joints import H36M17, joint_set
from converters.motion import Motion
from converters.types import Pose3D, atomic_save_npz, check_fps, check_timestamps
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.pipeline import PipelineResult

__all__ = ["MOTION_FORMATS", "check_motion_formats", "load_pose_file", "load_result_npz", "read_result_keypoints",
           "result_arrays",
           "result_motion", "solve_world", "write_json", "write_motion_files", "write_npz",
           "write_result_files"]


def result_arrays(result: PipelineResult) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    kp, pose = result.keypoints, result.pose
    traj = pose.trajectory if pose.trajectory is not None else np.zeros((pose.num_frames, 3))
    arrays = {
        "keypoints_2d": kp.xy.astype(np.float32),
        "scores": kp.score.astype(np.float32),
        "valid": kp.valid,
        "joints_3d": (pose.joints + traj[:, None]).astype(np.float32),
        "joints_3d_root_relative": pose.joints.astype(np.float32),
        "trajectory": traj.astype(np.float32),
        "timestamps": kp.timestamps.astype(np.float64),
    }
    meta = {
        "format_name": "vp3d-result", "version": 1, "source": result.source, "fps": kp.fps,
        "image_size": list(kp.image_size), "camera_frame": "x right, y down, z forward; metres",
        "has_trajectory": pose.trajectory is not None,
        "joint_names_2d": list(joint_set(kp.format).names), "joint_names_3d": list(H36M17.names),
        "frames_with_person": result.track.frames_present, "joints_filled": result.track.joints_filled,
        "tracks_found": result.track.tracks_found, **pose.meta,
        "decode": None if result.decode is None else {
            "frames": result.decode.yielded, "damaged_packets": result.decode.damaged_packets},
    }
    return arrays, meta


def write_npz(result: PipelineResult, path: Path) -> Path:
    arrays, meta = result_arrays(result)
    return atomic_save_npz(path, **arrays, meta=np.array(json.dumps(meta)))


def write_json(result: PipelineResult, path: Path) -> Path:
    arrays, meta = result_arrays(result)
    data = {"meta": meta, **{k: np.round(v, 5).tolist() if v.dtype.kind == "f" else v.tolist()
                             for k, v in arrays.items()}}
    return atomic_write(path, lambda f: json.dump(data, f, separators=(",", ":")), binary=False)


def _read_result(path: Path, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays ``names`` and the meta of a ``vp3d-convert`` NPZ, checked: meta an object with a
    sane fps (and image size), arrays with one row per timestamp, timestamps in order."""
    check_input_path(path)
    check_npz_arrays(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [n for n in ("meta", "timestamps", *names) if n not in npz.files]
            if missing:
                raise InputFileError(f"{path}: not a vp3d-convert result (no {', '.join(missing)})")
            meta = json.loads(str(npz["meta"]))
            arrays = {n: npz[n] for n in ("timestamps", *names)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: not a readable vp3d-convert .npz ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format_name") != "vp3d-result":
        found = meta.get("format_name") if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
        raise InputFileError(f"{path}: not a vp3d-convert result (meta is {found!r}); re-create it with vp3d-convert")
    fps = check_fps(meta.get("fps"), str(path))
    times = arrays["timestamps"]
    if times.ndim != 1 or times.dtype.kind not in "fiu":
        raise InputFileError(f"{path}: timestamps must be one number per frame, got {times.dtype} {times.shape}")
    check_timestamps(times, fps, str(path))
    if times.size < 2:
        raise InputFileError(f"{path}: holds {times.size} frame(s); a motion needs at least 2")
    for n in names:
        if arrays[n].shape[:1] != times.shape or arrays[n].dtype.kind not in "fiub":
            raise InputFileError(f"{path}: {n} has shape {arrays[n].shape} for {times.size} timestamps")
    return arrays, meta


def load_result_npz(path: Path) -> Pose3D:
    """The camera-space pose stored in a ``vp3d-convert`` NPZ (to re-export without detection)."""
    arrays, meta = _read_result(path, ("joints_3d_root_relative", "trajectory"))
    traj = arrays["trajectory"].astype(np.float64) if meta.get("has_trajectory") else None
    return Pose3D(joints=arrays["joints_3d_root_relative"].astype(np.float64), frame="camera", fps=float(meta["fps"]),
                  timestamps=arrays["timestamps"].astype(np.float64), confidence=np.ones(len(arrays["timestamps"])),
                  trajectory=traj, meta={"source": str(meta.get("source", path))})


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
                  meta={"source": str(loaded.motion.meta.get("source", path))})


def load_pose_file(path: Path, fps: float | None = None) -> Pose3D:
    """3D joints to re-export: a ``vp3d-convert`` result ``.npz`` (camera space), a vp3d 3D joints
    ``.npz``, a plain ``(T,17,3)`` array (``.npy`` or one-array ``.npz``; ``fps`` is its frame
    rate), or a motion capture ``.bvh`` from another tool (world space as the file has it:
    retargeting onto a preset)."""
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        from vp3d_engine.sources import joints_from_array, load_plain_array, npz_names

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
    checkpoint); filled-in joints come back with score 0 so tracking fills them again."""
    arrays, meta = _read_result(path, ("keypoints_2d", "scores", "valid"))
    xy, valid = arrays["keypoints_2d"].astype(np.float64), arrays["valid"].astype(bool)
    t = len(xy)
    if xy.shape != (t, 17, 2) or arrays["scores"].shape != (t, 17) or valid.shape != (t, 17):
        raise InputFileError(f"{path}: keypoints_2d, scores and valid must be (T,17,2), (T,17), (T,17); got "
                             f"{xy.shape}, {arrays['scores'].shape}, {valid.shape}")
    size = meta.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise InputFileError(f"{path}: image_size {size!r} is not [width, height] in pixels")
    score = np.where(valid, arrays["scores"], 0.0)
    people = [np.concatenate([xy[i], score[i][:, None]], axis=-1)[None] for i in range(t)]
    return FrameDetections(people=people, image_size=(size[0], size[1]), fps=float(meta["fps"]),
                           timestamps=arrays["timestamps"].astype(np.float64), source=str(path))


MOTION_FORMATS = ("motion", "bvh", "glb", "fbx")  # written from the solved animation
#: File name endings of the formats (``NAME`` + ending).
SUFFIXES = {"npz": ".npz", "json": ".json", "motion": ".motion.npz", "bvh": ".bvh", "glb": ".glb", "fbx": ".fbx"}


def result_motion(pose: Pose3D, rig: str = "h36m") -> Motion:
    """The world-space animation of a result (see :func:`solve_world`)."""
    return solve_world(pose, rig)[0]


def solve_world(pose: Pose3D, rig: str = "h36m") -> tuple[Motion, np.ndarray]:
    """The world-space animation of a result: joints turned into the world frame (up from the body,
    floor at y = 0, facing +Z), resampled to an even grid at the clip's frame rate (real timestamps
    may be variable; the animation formats have one frame time), solved onto rig preset ``rig``.
    Returns the Motion and the world joints ``(T,17,3)`` it was solved from."""
    from converters.solve import solve
    from converters.timeline import resample_times
    from converters.world import camera_to_world

    index = {n: i for i, n in enumerate(H36M17.names)}
    thigh = np.linalg.norm(pose.joints[:, index["left_hip"]] - pose.joints[:, index["left_knee"]], axis=-1)
    if float(np.median(thigh)) < 0.01:
        raise ConversionError(f"{pose.meta.get('source', 'the 3D joints')}: the joints have no extent (limbs shorter "
                              "than 1 cm); the file holds no real pose")
    world = camera_to_world(pose)
    times = pose.timestamps - pose.timestamps[0]
    grid = np.arange(0.0, times[-1] + 0.5 / pose.fps, 1.0 / pose.fps)
    joints = resample_times(world, times, grid)
    motion = solve(joints, pose.fps, rig)
    motion.meta.update({"input_frame": pose.frame, "rig": rig})
    motion.meta.update({k: v for k, v in pose.meta.items() if k in ("checkpoint", "source")})
    return motion, joints


def check_motion_formats(formats: list[str]) -> None:
    """Fail before any work when a requested format needs an extra that is missing."""
    if "fbx" in formats:
        from converters.blender_adapter import require_bpy

        require_bpy()


def write_motion_files(pose: Pose3D, stem: Path, formats: list[str], rig: str = "h36m",
                       units: str = "cm") -> list[Path]:
    """Write ``stem.motion.npz`` / ``.bvh`` / ``.glb`` / ``.fbx`` (those in ``formats``) from one solve, all or none."""
    return write_result_files(stem, formats, pose, rig=rig, units=units)


def write_result_files(stem: Path, formats: list[str], pose: Pose3D, result: PipelineResult | None = None,
                       rig: str = "h36m", units: str = "cm") -> list[Path]:
    """Write every file of one result (``stem.npz``, ``.json`` from ``result``; ``.motion.npz``,
    ``.bvh``, ``.glb``, ``.fbx`` from ``pose``), those in ``formats``, as one set: each goes to a temporary name, and
    all are moved into place only once every one was written. On any failure (or interrupt) the
    folder keeps the files it had, and no temporary file is left."""
    table = [f for f in ("npz", "json") if f in formats]
    if table and result is None:
        raise ConfigurationError(f"--{' --'.join(table)} needs a pipeline result, not only 3D joints")
    with OutputSet() as out:
        def staged(fmt: str) -> Path:
            return out.stage(stem.with_name(stem.name + SUFFIXES[fmt]))

        if result is not None and "npz" in formats:
            write_npz(result, staged("npz"))
        if result is not None and "json" in formats:
            write_json(result, staged("json"))
        wanted = [f for f in MOTION_FORMATS if f in formats]
        if wanted:
            motion, world = solve_world(pose, rig)
            for fmt in wanted:
                tmp = staged(fmt)
                if fmt == "motion":
                    from converters.motion_file import save_motion_file

                    save_motion_file(motion, tmp, world_joints=world, created_by=f"vp3d {_version()}")
                elif fmt == "bvh":
                    from converters.bvh_writer import write_bvh

                    write_bvh(motion, tmp, units=units)
                elif fmt == "glb":
                    from converters.gltf_writer import write_gltf

                    write_gltf(motion, tmp, name=stem.name)
                else:
                    from converters.blender_adapter import write_fbx

                    write_fbx(motion, tmp, units=units, name=stem.name)
        return _commit(out)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vp3d")
    except PackageNotFoundError:
        return "unknown"


def _commit(out: OutputSet) -> list[Path]:
    """Rename the staged files with SIGINT and SIGTERM held back, so an interrupt cannot split the set
    (a held signal is delivered right after); nothing is moved once a stop was asked for."""
    import signal

    from converters.interrupts import check_interrupted

    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        check_interrupted()
        return out.commit()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
