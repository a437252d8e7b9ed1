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
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import ConfigurationError
from converters.fileio import OutputSet, atomic_write
from converters.joints import H36M17, joint_set
from converters.types import atomic_save_npz
from vp3d_engine.pipeline import PipelineResult
from vp3d_engine.render import RenderOptions
from vp3d_engine.world_stage import WorldMotion

__all__ = [
    "MOTION_FORMATS",
    "SUFFIXES",
    "TOGETHER",
    "check_motion_formats",
    "person_stem",
    "result_arrays",
    "write_json",
    "write_npz",
    "write_people_files",
]


def result_arrays(result: PipelineResult, world: WorldMotion) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and meta of a result file; foot contacts and the world-stage figures from
    ``world`` (the animation the world stage solved from ``result``)."""
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
        "foot_contacts": _on_frames(world.contacts, pose.timestamps - pose.timestamps[0], pose.fps),
    }
    if result.camera is not None:  # the camera's turn from the first frame, per frame (camera_motion)
        arrays["camera_rotations"] = result.camera.at(kp.timestamps).astype(np.float32)
    if result.detector_3d is not None:  # MediaPipe's own 3D, so that a re-lift can blend it in again
        arrays["detector_3d"] = result.detector_3d.joints.astype(np.float32)
        arrays["detector_3d_seen"] = result.detector_3d.confidence > 0
    meta = {
        "format_name": "vp3d-result", "version": 1, "source": result.source, "fps": kp.fps,
        "image_size": list(kp.image_size), "camera_frame": "x right, y down, z forward; metres",
        "has_trajectory": pose.trajectory is not None,
        "joint_names_2d": list(joint_set(kp.format).names), "joint_names_3d": list(H36M17.names),
        "frames_with_person": result.track.frames_present, "joints_filled": result.track.joints_filled,
        "tracks_found": result.track.tracks_found, "person": kp.meta.get("person"),
        "hidden_joints_placed": bool(kp.meta.get("hidden_joints_placed", False)), **pose.meta,
        **{k: v for k, v in world.motion.meta.items() if k in _WORLD_META},
        "decode": None if result.decode is None else {
            "frames": result.decode.yielded, "damaged_packets": result.decode.damaged_packets},
    }
    return arrays, meta


#: world-stage settings and figures copied from the animation's meta into the result's
_WORLD_META = ("smoothing", "feet", "floor_shift_m", "floor_settle_range_m", "camera_height_m", "camera_pitch_deg",
               "feet_root_shift_m", "feet_ankle_shift_m", "floor_scale", "camera")


def _on_frames(values: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame ``values`` of the even animation grid (frame k at k / fps) at the clip's own frame
    ``times`` (which may be uneven): the nearest grid frame."""
    index = np.clip(np.round(times * fps).astype(np.int64), 0, len(values) - 1)
    return values[index]


def write_npz(result: PipelineResult, path: Path, world: WorldMotion) -> Path:
    arrays, meta = result_arrays(result, world)
    return atomic_save_npz(path, **arrays, meta=np.array(json.dumps(meta)))


def write_json(result: PipelineResult, path: Path, world: WorldMotion) -> Path:
    arrays, meta = result_arrays(result, world)
    data = {"meta": meta, **{k: np.round(v, 5).tolist() if v.dtype.kind == "f" else v.tolist()
                             for k, v in arrays.items()}}
    return atomic_write(path, lambda f: json.dump(data, f, separators=(",", ":")), binary=False)


MOTION_FORMATS = ("motion", "bvh", "glb", "fbx")  # written from the solved animation
#: File name endings of the formats (``NAME`` + ending).
SUFFIXES = {"npz": ".npz", "json": ".json", "motion": ".motion.npz", "bvh": ".bvh", "glb": ".glb", "fbx": ".fbx",
            "render": "_preview.mp4"}


#: The formats that hold everyone of a clip in one file with --person all (the others: one file each).
TOGETHER = ("glb", "fbx")

def check_motion_formats(formats: list[str]) -> None:
    """Fail before any work when a requested format needs an extra that is missing."""
    if "fbx" in formats:
        from converters.blender_adapter import require_bpy

        require_bpy()


def person_stem(stem: Path, person: int) -> Path:
    """The stem of person ``person``'s own files with ``--person all`` (``NAME.p0``)."""
    return stem.with_name(f"{stem.name}.p{person}")


def write_people_files(stem: Path, formats: list[str], people: list[tuple[PipelineResult | None, WorldMotion]],
                       units: str = "cm", video: Path | None = None, render: RenderOptions | None = None,
                       span: tuple[float | None, float | None] = (None, None), everyone: bool = False) -> list[Path]:
    """Write every file of a conversion, those in ``formats``, as one set: each goes to a temporary
    name, and all are moved into place only once every one was written. On any failure (or
    interrupt) the folder keeps the files it had, and no temporary file is left.

    ``people``: each person's pipeline result (None for a 3D source) and their animation from the
    world stage (:mod:`vp3d_engine.world_stage`). One person's files go under ``stem`` (``stem.npz``,
    ``.json`` from the result; ``.motion.npz``, ``.bvh``, ``.glb``, ``.fbx`` from the animation).
    ``everyone`` (``--person all``): each person's NPZ, JSON, Motion file, BVH and preview under their
    own stem (``NAME.p0.bvh``: the ``N`` of ``--person N`` with the detector that ran), and one GLB
    and one FBX holding everyone, in the one world the stage put them in."""
    if not people:
        raise ConfigurationError("no one to write")
    table = [f for f in ("npz", "json") if f in formats]
    if table and any(result is None for result, _ in people):
        raise ConfigurationError(f"--{' --'.join(table)} needs a pipeline result, not only 3D joints")
    if "render" in formats and (any(result is None for result, _ in people) or video is None):
        raise ConfigurationError("--render draws the preview over the video: give the video (a 2D or 3D file "
                                 "alone has no frames to draw on)")
    with OutputSet() as out:
        solved_all: list[tuple[str, WorldMotion]] = []
        for result, solved in people:
            own = stem
            if everyone:
                number = int(result.keypoints.meta.get("person", len(solved_all))) if result is not None \
                    else len(solved_all)
                own = person_stem(stem, number)

            def staged(fmt: str, own: Path = own) -> Path:
                return out.stage(own.with_name(own.name + SUFFIXES[fmt]))

            solved_all.append((own.name, solved))
            if result is not None and "npz" in formats:
                write_npz(result, staged("npz"), solved)
            if result is not None and "json" in formats:
                write_json(result, staged("json"), solved)
            if result is not None and video is not None and "render" in formats:
                from vp3d_engine.render import render_preview

                kp = result.keypoints  # the skeleton drawn is the animation's (floor, locked feet, smoothing)
                joints = _on_frames(solved.joints, kp.timestamps - kp.timestamps[0], kp.fps)
                render_preview(video, staged("render"), kp.xy, kp.valid, kp.timestamps, joints, kp.fps, render,
                               start=span[0], end=span[1], camera=solved.camera)
            motion, world, contacts = solved.motion, solved.joints, solved.contacts
            if "motion" in formats:
                from converters.motion_file import MotionCamera, save_motion_file

                view = solved.camera
                save_motion_file(motion, staged("motion"), world_joints=world, foot_contacts=contacts,
                                 created_by=f"vp3d {_version()}",
                                 camera=None if view is None else MotionCamera(view.rotations, view.positions,
                                                                               view.focal_px, view.image_size))
            if "bvh" in formats:
                from converters.bvh_writer import write_bvh

                write_bvh(motion, staged("bvh"), units=units)
        if everyone:  # an earlier run's files of people not found this time would pass for this run's
            from vp3d_engine.tracking import MAX_PEOPLE

            for n in range(MAX_PEOPLE):
                for fmt in formats:
                    if fmt not in TOGETHER and fmt in SUFFIXES:
                        out.retire(person_stem(stem, n).with_name(f"{person_stem(stem, n).name}{SUFFIXES[fmt]}"))
        together = [(name, solved.motion) for name, solved in solved_all]
        view = solved_all[0][1].camera if solved_all else None  # everyone shares the main person's world
        for fmt in TOGETHER:
            if fmt not in formats or not together:
                continue
            target = out.stage(stem.with_name(stem.name + SUFFIXES[fmt]))
            if fmt == "glb":
                from converters.gltf_writer import write_gltf

                write_gltf(together if everyone else together[0][1], target, name=stem.name, camera=view)
            else:
                from converters.blender_adapter import write_fbx

                write_fbx(together if everyone else together[0][1], target, units=units, name=stem.name,
                          camera=view)
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
