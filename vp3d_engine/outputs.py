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

from converters.errors import InputFileError
from converters.fileio import atomic_write
from converters.joints import H36M17, joint_set
from converters.motion import Motion
from converters.types import Pose3D, atomic_save_npz
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.pipeline import PipelineResult

__all__ = ["MOTION_FORMATS", "check_motion_formats", "load_pose_file", "load_result_npz", "read_result_keypoints",
           "result_arrays",
           "result_motion", "write_json", "write_motion_files", "write_npz"]


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


def load_result_npz(path: Path) -> Pose3D:
    """The camera-space pose stored in a ``vp3d-convert`` NPZ (to re-export without detection)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format_name") != "vp3d-result":
                raise InputFileError(f"{path}: not a vp3d-convert result (format {meta.get('format_name')!r})")
            traj = npz["trajectory"].astype(np.float64) if meta.get("has_trajectory") else None
            return Pose3D(joints=npz["joints_3d_root_relative"].astype(np.float64), frame="camera",
                          fps=float(meta["fps"]), timestamps=npz["timestamps"].astype(np.float64),
                          confidence=np.ones(len(npz["timestamps"])), trajectory=traj,
                          meta={"source": meta.get("source", str(path))})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: not a readable vp3d-convert .npz ({exc})") from None


def load_pose_file(path: Path) -> Pose3D:
    """3D joints to re-export: a ``vp3d-convert`` result ``.npz`` (camera space), or a motion
    capture ``.bvh`` from another tool (world space as the file has it: retargeting onto a preset)."""
    if path.suffix.lower() != ".bvh":
        return load_result_npz(path)
    from converters.bvh import read_bvh
    from converters.skeleton_maps import mocap_joints

    bvh = read_bvh(path)
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
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            xy, valid = npz["keypoints_2d"].astype(np.float64), npz["valid"].astype(bool)
            score = np.where(valid, npz["scores"], 0.0)
            times = npz["timestamps"].astype(np.float64)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: not a readable vp3d-convert .npz ({exc})") from None
    people = [np.concatenate([xy[t], score[t][:, None]], axis=-1)[None] for t in range(xy.shape[0])]
    return FrameDetections(people=people, image_size=(int(meta["image_size"][0]), int(meta["image_size"][1])),
                           fps=float(meta["fps"]), timestamps=times, source=str(path))


MOTION_FORMATS = ("bvh", "glb", "fbx")


def result_motion(pose: Pose3D, rig: str = "h36m") -> Motion:
    """The world-space animation of a result: joints turned into the world frame (up from the body,
    floor at y = 0, facing +Z), resampled to an even grid at the clip's frame rate (real timestamps
    may be variable; the animation formats have one frame time), solved onto rig preset ``rig``."""
    from converters.solve import solve
    from converters.timeline import resample_times
    from converters.world import camera_to_world

    world = camera_to_world(pose)
    times = pose.timestamps - pose.timestamps[0]
    grid = np.arange(0.0, times[-1] + 0.5 / pose.fps, 1.0 / pose.fps)
    motion = solve(resample_times(world, times, grid), pose.fps, rig)
    motion.meta.update({"input_frame": pose.frame, "rig": rig})
    motion.meta.update({k: v for k, v in pose.meta.items() if k in ("checkpoint", "source")})
    return motion


def check_motion_formats(formats: list[str]) -> None:
    """Fail before any work when a requested format needs an extra that is missing."""
    if "fbx" in formats:
        from converters.blender_adapter import require_bpy

        require_bpy()


def write_motion_files(pose: Pose3D, stem: Path, formats: list[str], rig: str = "h36m",
                       units: str = "cm") -> list[Path]:
    """Write ``stem.bvh`` / ``stem.glb`` / ``stem.fbx`` (those in ``formats``) from one solve."""
    wanted = [f for f in MOTION_FORMATS if f in formats]
    if not wanted:
        return []
    motion = result_motion(pose, rig)
    written = []
    for fmt in wanted:
        target = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "bvh":
            from converters.bvh_writer import write_bvh

            written.append(write_bvh(motion, target, units=units))
        elif fmt == "glb":
            from converters.gltf_writer import write_gltf

            written.append(write_gltf(motion, target))
        else:
            from converters.blender_adapter import write_fbx

            written.append(write_fbx(motion, target, units=units))
    return written
