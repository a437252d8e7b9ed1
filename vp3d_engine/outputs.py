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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from converters.errors import ConfigurationError, ConversionError
from converters.fileio import OutputSet, atomic_write
from converters.joints import H36M17, joint_set
from converters.motion import Motion
from converters.types import Pose3D, atomic_save_npz
from vp3d_engine.pipeline import PipelineResult
from vp3d_engine.render import RenderOptions

if TYPE_CHECKING:
    from converters.world import Transform

__all__ = [
    "MOTION_FORMATS",
    "SUFFIXES",
    "TOGETHER",
    "WorldMotion",
    "check_motion_formats",
    "person_stem",
    "result_arrays",
    "shared_world",
    "solve_world",
    "write_json",
    "write_npz",
    "write_people_files",
    "write_result_files",
]


def result_arrays(result: PipelineResult, world: WorldMotion | None = None,
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and meta of a result file; foot contacts and the world-stage figures from
    ``world`` (the animation solved from ``result``; solved here when not given)."""
    kp, pose = result.keypoints, result.pose
    world = world or solve_world(pose)
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
               "feet_root_shift_m", "feet_ankle_shift_m", "floor_scale")


def _on_frames(values: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame ``values`` of the even animation grid (frame k at k / fps) at the clip's own frame
    ``times`` (which may be uneven): the nearest grid frame."""
    index = np.clip(np.round(times * fps).astype(np.int64), 0, len(values) - 1)
    return values[index]


def write_npz(result: PipelineResult, path: Path, world: WorldMotion | None = None) -> Path:
    arrays, meta = result_arrays(result, world)
    return atomic_save_npz(path, **arrays, meta=np.array(json.dumps(meta)))


def write_json(result: PipelineResult, path: Path, world: WorldMotion | None = None) -> Path:
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

ROOT_MOTION = ("on", "in-place", "off")


class WorldMotion(NamedTuple):
    """The animation, the world joints ``(T,17,3)`` it was solved from, and foot contacts ``(T,2)``."""

    motion: Motion
    joints: np.ndarray
    contacts: np.ndarray


def solve_world(pose: Pose3D, rig: str = "h36m", root_motion: str = "on", smoothing: str = "auto",
                feet: str = "lock", settle: bool = True, transform: Transform | None = None) -> WorldMotion:
    """The world-space animation of a result: joints turned into the world frame (up from the body
    and the floor, facing +Z), resampled to an even grid at the clip's frame rate (real timestamps
    may be variable; the animation formats have one frame time), solved onto rig preset ``rig``.

    Stages: ``smoothing`` (:mod:`converters.smoothing`; ``auto``: the measured default on lifted
    joints, none on motion capture) filters the world joints; the bones get one
    length each (:func:`converters.feet.rigid_joints`); for camera-space sources, ``settle``
    removes the slow drift in height (:func:`converters.world.settle_on_floor`); foot contacts come
    from those joints (the performance, before any root hold); for camera-space sources the floor
    goes under the feet in contact (``ANKLE_HEIGHT_M`` below the ankles) and ``feet="lock"`` plants
    them (:func:`converters.feet.lock_feet`); a world-space source (motion capture) keeps its floor
    and feet. ``transform``: the camera-to-world transform to use (:func:`shared_world`, so that
    everyone of a clip shares one world: the same up, facing and origin; each person's own feet still
    set their height over the floor)."""
    from converters.contacts import foot_contacts
    from converters.feet import FEET_MODES, lock_feet, rigid_joints
    from converters.solve import solve
    from converters.timeline import resample_times
    from converters.world import ANKLE_HEIGHT_M, camera_in_world, camera_to_world, settle_on_floor

    if feet not in FEET_MODES:
        raise ConfigurationError(f"feet must be one of {', '.join(FEET_MODES)}, not {feet!r}")
    index = {n: i for i, n in enumerate(H36M17.names)}
    thigh = np.linalg.norm(pose.joints[:, index["left_hip"]] - pose.joints[:, index["left_knee"]], axis=-1)
    if float(np.median(thigh)) < 0.01:
        raise ConversionError(f"{pose.meta.get('source', 'the 3D joints')}: the joints have no extent (limbs shorter "
                              "than 1 cm); the file holds no real pose")
    world = camera_to_world(pose, transform=transform)
    times = pose.timestamps - pose.timestamps[0]
    grid = np.arange(0.0, times[-1] + 0.5 / pose.fps, 1.0 / pose.fps)
    joints = resample_times(world, times, grid)
    from converters.smoothing import resolve_smoothing, smooth

    smoothing = resolve_smoothing(smoothing, lifted=pose.frame == "camera")
    if smoothing != "none":
        joints = smooth(joints, pose.fps, smoothing)
    joints = rigid_joints(joints, pose.fps)
    settled = None
    if pose.frame == "camera" and settle:  # a lifted clip's slow drift in height goes (world.settle_on_floor)
        joints, settled = settle_on_floor(joints, pose.fps)
    contacts = foot_contacts(joints, pose.fps)
    meta: dict[str, Any] = {"smoothing": smoothing, "input_frame": pose.frame, "rig": rig,
                            **(camera_in_world(pose, transform=transform) or {})}
    if pose.frame == "camera":  # vp3d placed the floor (a world-space source keeps its own)
        ankles = joints[:, [index["left_ankle"], index["right_ankle"]], 1]
        down = ankles[contacts] if contacts.any() else np.min(ankles, axis=1)
        shift = ANKLE_HEIGHT_M - float(np.median(down))
        joints = joints + [0.0, shift, 0.0]
        meta["floor_shift_m"] = round(shift, 4)
        if settled is not None:
            meta["floor_settle_range_m"] = round(float(np.ptp(settled)), 4)
        meta["feet"] = feet
        if feet == "lock":
            joints, figures = lock_feet(joints, contacts, pose.fps)
            meta.update({f"feet_{k}": v for k, v in figures.items()})
    else:
        meta["feet"] = "as recorded"
    motion = solve(joints, pose.fps, rig)
    motion.meta.update(meta)
    motion.meta.update({k: v for k, v in pose.meta.items() if k in ("checkpoint", "source", "trajectory", "detector",
                                                                        "detector_3d_weight")})
    if root_motion != "on":
        motion, joints = _hold_root(motion, joints, root_motion)
    return WorldMotion(motion, joints, contacts)


def _hold_root(motion: Motion, joints: np.ndarray, mode: str) -> tuple[Motion, np.ndarray]:
    """``in-place``: the root keeps its height (jumps, crouches) but not its travel over the floor;
    ``off``: the root stays where it is at the first frame."""
    if mode not in ROOT_MOTION:
        raise ConfigurationError(f"root motion must be one of {', '.join(ROOT_MOTION)}, not {mode!r}")
    root = motion.root_translation.copy()
    held = [0, 1, 2] if mode == "off" else [0, 2]
    delta = np.zeros_like(root)
    delta[:, held] = root[:1, held] - root[:, held]
    motion.meta["root_motion"] = mode
    return replace(motion, root_translation=root + delta), joints + delta[:, None]


def check_motion_formats(formats: list[str]) -> None:
    """Fail before any work when a requested format needs an extra that is missing."""
    if "fbx" in formats:
        from converters.blender_adapter import require_bpy

        require_bpy()


def write_result_files(stem: Path, formats: list[str], pose: Pose3D, result: PipelineResult | None = None,
                       rig: str = "h36m", units: str = "cm", video: Path | None = None, root_motion: str = "on",
                       smoothing: str = "auto", feet: str = "lock",
                       render: RenderOptions | None = None, span: tuple[float | None, float | None] = (None, None),
                       ) -> list[Path]:
    """Write every file of one result (``stem.npz``, ``.json`` from ``result``; ``.motion.npz``,
    ``.bvh``, ``.glb``, ``.fbx`` from ``pose``), those in ``formats``, as one set: each goes to a temporary name, and
    all are moved into place only once every one was written. On any failure (or interrupt) the
    folder keeps the files it had, and no temporary file is left."""
    return write_people_files(stem, formats, [(pose, result)], rig=rig, units=units, video=video,
                              root_motion=root_motion, smoothing=smoothing, feet=feet, render=render, span=span,
                              everyone=False)


def person_stem(stem: Path, person: int) -> Path:
    """The stem of person ``person``'s own files with ``--person all`` (``NAME.p0``)."""
    return stem.with_name(f"{stem.name}.p{person}")


def shared_world(poses: list[Pose3D]) -> Transform | None:
    """The camera-to-world transform everyone of a clip shares (camera-space ``poses``, the main
    person first): the main person's floor, facing and origin, the up all their bodies show
    (:func:`converters.world.world_transform`). None for one person or a world-space source (each
    then takes their own world)."""
    from converters.world import world_transform

    if len(poses) < 2 or poses[0].frame != "camera":
        return None
    return world_transform(poses[0], others=[p for p in poses[1:] if p.frame == "camera"])


def write_people_files(stem: Path, formats: list[str], people: list[tuple[Pose3D, PipelineResult | None]],
                       rig: str = "h36m", units: str = "cm", video: Path | None = None, root_motion: str = "on",
                       smoothing: str = "auto", feet: str = "lock",
                       render: RenderOptions | None = None, span: tuple[float | None, float | None] = (None, None),
                       everyone: bool = True) -> list[Path]:
    """:func:`write_result_files` for everyone in a clip (``--person all``), as one set: each
    person's NPZ, JSON, Motion file, BVH and preview under their own stem (``NAME.p0.bvh``: the
    ``N`` of ``--person N`` with the detector that ran), and one GLB and one FBX holding everyone. All share one world
    (:func:`shared_world`): the main person's (the first) facing, floor and origin, the up all their
    bodies show; each other person scaled about the camera to stand on that floor where the picture
    shows it (:func:`converters.world.floor_scale`, in their meta as ``floor_scale``; their NPZ and
    JSON keep the lift as it was), each root at its own place, each person's feet on the floor.
    ``everyone=False``: one person, files under ``stem`` itself."""
    if not people:
        raise ConfigurationError("no one to write")
    table = [f for f in ("npz", "json") if f in formats]
    if table and any(result is None for _, result in people):
        raise ConfigurationError(f"--{' --'.join(table)} needs a pipeline result, not only 3D joints")
    if "render" in formats and (any(result is None for _, result in people) or video is None):
        raise ConfigurationError("--render draws the preview over the video: give the video (a 2D or 3D file "
                                 "alone has no frames to draw on)")
    shared = shared_world([pose for pose, _ in people]) if everyone else None
    with OutputSet() as out:
        solved_all: list[tuple[str, WorldMotion]] = []
        for n, (pose, result) in enumerate(people):
            own = stem
            if everyone:
                number = int(result.keypoints.meta.get("person", len(solved_all))) if result is not None \
                    else len(solved_all)
                own = person_stem(stem, number)

            def staged(fmt: str, own: Path = own) -> Path:
                return out.stage(own.with_name(own.name + SUFFIXES[fmt]))

            if not any(f in formats for f in ("npz", "json", "render", *MOTION_FORMATS)):
                continue
            scale = 1.0
            if shared is not None and n > 0:
                from converters.world import floor_scale

                scale = floor_scale(pose, shared)
                pose = replace(pose, joints=pose.joints * scale,
                               trajectory=None if pose.trajectory is None else pose.trajectory * scale)
            solved = solve_world(pose, rig, root_motion, smoothing, feet, transform=shared)
            if shared is not None:
                solved.motion.meta["floor_scale"] = round(scale, 4)
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
                               start=span[0], end=span[1])
            motion, world, contacts = solved
            if "motion" in formats:
                from converters.motion_file import save_motion_file

                save_motion_file(motion, staged("motion"), world_joints=world, foot_contacts=contacts,
                                 created_by=f"vp3d {_version()}")
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
        for fmt in TOGETHER:
            if fmt not in formats or not together:
                continue
            target = out.stage(stem.with_name(stem.name + SUFFIXES[fmt]))
            if fmt == "glb":
                from converters.gltf_writer import write_gltf

                write_gltf(together if everyone else together[0][1], target, name=stem.name)
            else:
                from converters.blender_adapter import write_fbx

                write_fbx(together if everyone else together[0][1], target, units=units, name=stem.name)
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
