"""The world stage: from camera-space 3D (the lift stage's ``Pose3D``) to the world-space
animation the files hold, between ``lift`` and ``write`` in :func:`vp3d_engine.convert.convert`.

Steps, for each person (:func:`solve_world`): the joints turned into the world frame (up from the
bodies and the floor, facing +Z, :mod:`converters.world`), resampled to an even grid, smoothed
(:mod:`converters.smoothing`), bones made rigid, slow drift in height settled, foot contacts found,
the floor put under the feet in contact, planted feet locked (:mod:`converters.feet`), solved onto
the rig (:mod:`converters.solve`), the root held when asked. Everyone of a clip
(:func:`solve_people`) shares one world: the main person's floor, facing and origin, the up all
their bodies show, each other person standing on that floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from converters.errors import ConfigurationError, ConversionError
from converters.joints import H36M17
from converters.motion import Motion
from converters.types import Pose3D

if TYPE_CHECKING:
    from converters.world import Transform
    from vp3d_engine.camera_motion import CameraMotion

__all__ = ["CAMERA_MODES", "ROOT_MOTION", "WorldCamera", "WorldMotion", "camera_turns", "shared_world", "solve_people",
           "solve_world", "turn_to_first_frame"]

ROOT_MOTION = ("on", "in-place", "off")


@dataclass(frozen=True)
class WorldCamera:
    """The video's camera in the animation's world, per frame of the animation: ``rotations
    (T,3,3)`` turn the camera's axes (x right, y down, z forward, as in the picture) into the world's,
    ``positions (T,3)`` metres; ``focal_px`` in pixels of ``image_size (w, h)``; ``kind`` as estimated
    (``static``, ``rotating``, ``moving``), ``applied``: whether its turns were taken out of the motion."""

    rotations: np.ndarray
    positions: np.ndarray
    focal_px: float
    image_size: tuple[int, int]
    kind: str
    applied: bool


class WorldMotion(NamedTuple):
    """The animation, the world joints ``(T,17,3)`` it was solved from, foot contacts ``(T,2)``, and
    the video's camera in that world (None: not estimated, or a world-space source)."""

    motion: Motion
    joints: np.ndarray
    contacts: np.ndarray
    camera: WorldCamera | None = None


CAMERA_MODES = ("auto", "static", "moving")


def camera_turns(camera: CameraMotion | None, times: np.ndarray, mode: str = "auto") -> np.ndarray | None:
    """The camera's turn at each of ``times`` (``(T,3,3)``, frame t's camera axes to the first
    frame's) to take out of a lifted pose, or None where nothing is taken out: ``mode`` ``static``,
    no estimate, or ``auto`` with a camera the estimate found static."""
    if mode not in CAMERA_MODES:
        raise ConfigurationError(f"camera must be one of {', '.join(CAMERA_MODES)}, not {mode!r}")
    if camera is None or mode == "static" or (mode == "auto" and camera.kind == "static"):
        return None
    return camera.at(times)


def turn_to_first_frame(pose: Pose3D, turns: np.ndarray) -> Pose3D:
    """``pose`` (camera space, each frame in its own camera's axes) in the first frame's camera
    axes: a panning or shaking camera's turns taken out, so that the body's path and heading are the
    world's, not the camera's."""
    from dataclasses import replace

    joints = np.einsum("tij,tkj->tki", turns, pose.joints)
    trajectory = None if pose.trajectory is None else np.einsum("tij,tj->ti", turns, pose.trajectory)
    return replace(pose, joints=joints, trajectory=trajectory)


def solve_world(pose: Pose3D, rig: str = "h36m", root_motion: str = "on", smoothing: str = "auto",
                feet: str = "lock", settle: bool = True, transform: Transform | None = None,
                camera: CameraMotion | None = None, turns: np.ndarray | None = None) -> WorldMotion:
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
    set their height over the floor). ``camera``: the video's camera as estimated, placed in the
    world as :class:`WorldCamera` (moved with the body wherever the stage moves it: settling, floor,
    root hold), ``turns`` its turns already taken out of ``pose`` (:func:`turn_to_first_frame`)."""
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
    if pose.frame == "camera" and transform is None:
        from converters.world import world_transform

        transform = world_transform(pose)
    world = camera_to_world(pose, transform=transform)
    times = pose.timestamps - pose.timestamps[0]
    grid = np.arange(0.0, times[-1] + 0.5 / pose.fps, 1.0 / pose.fps)
    joints = resample_times(world, times, grid)
    view = None  # the camera's orientation (T,3,3) and position (T,3) in the world, on the grid
    if camera is not None and transform is not None and pose.trajectory is not None:  # (else no distance to it)
        orientation = transform[0] @ (turns if turns is not None else np.eye(3))  # camera t -> world
        view = (_slerp(np.broadcast_to(orientation, (len(times), 3, 3)), times, grid),
                np.repeat(transform[1][None], len(grid), axis=0).astype(np.float64))
    from converters.smoothing import resolve_smoothing, smooth

    smoothing = resolve_smoothing(smoothing, lifted=pose.frame == "camera")
    if smoothing != "none":
        joints = smooth(joints, pose.fps, smoothing)
    joints = rigid_joints(joints, pose.fps)
    settled = None
    if pose.frame == "camera" and settle:  # a lifted clip's slow drift in height goes (world.settle_on_floor)
        joints, settled = settle_on_floor(joints, pose.fps)
        if view is not None:
            view[1][:, 1] += settled
    contacts = foot_contacts(joints, pose.fps)
    meta: dict[str, Any] = {"smoothing": smoothing, "input_frame": pose.frame, "rig": rig,
                            **(camera_in_world(pose, transform=transform) or {})}
    if pose.frame == "camera":  # vp3d placed the floor (a world-space source keeps its own)
        ankles = joints[:, [index["left_ankle"], index["right_ankle"]], 1]
        down = ankles[contacts] if contacts.any() else np.min(ankles, axis=1)
        shift = ANKLE_HEIGHT_M - float(np.median(down))
        joints = joints + [0.0, shift, 0.0]
        if view is not None:
            view[1][:, 1] += shift
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
        before = joints[:, 0].copy()
        motion, joints = _hold_root(motion, joints, root_motion)
        if view is not None:  # the camera keeps its view of the body
            view[1][:] += joints[:, 0] - before
    placed = None
    if view is not None and camera is not None:
        # The focal length the root was placed with (converters.trajectory), so that looking through
        # this camera the body lands where the video shows it; else the estimate's.
        fitted = pose.meta.get("trajectory_figures")
        focal = fitted.get("focal_px") if isinstance(fitted, dict) else None
        placed = WorldCamera(rotations=view[0], positions=view[1], focal_px=float(focal or camera.focal_px),
                             image_size=camera.image_size, kind=camera.kind, applied=turns is not None)
        motion.meta["camera"] = {"kind": camera.kind, "applied": turns is not None,
                                 "focal_px": round(float(camera.focal_px), 2),
                                 "focal_estimated": bool(camera.focal_estimated),
                                 "image_size": list(camera.image_size),
                                 **({"reason": camera.reason} if camera.reason else {}),
                                 **{k: round(float(v), 4) for k, v in camera.figures.items()
                                    if k in ("max_angle_deg", "path_deg", "parallax_deg", "inlier_share")}}
    return WorldMotion(motion, joints, contacts, placed)


def _slerp(rotations: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Rotations ``(T,3,3)`` at ``times`` resampled to ``grid`` (spherical interpolation)."""
    from scipy.spatial.transform import Rotation, Slerp

    if len(times) < 2:
        return np.repeat(np.asarray(rotations[:1]), len(grid), axis=0)
    return np.asarray(Slerp(times, Rotation.from_matrix(np.asarray(rotations)))(
        np.clip(grid, times[0], times[-1])).as_matrix())


def _hold_root(motion: Motion, joints: np.ndarray, mode: str) -> tuple[Motion, np.ndarray]:
    """``in-place``: the root keeps its height (jumps, crouches) but not its travel over the floor;
    ``off``: the root stays where it is at the first frame."""
    from dataclasses import replace

    if mode not in ROOT_MOTION:
        raise ConfigurationError(f"root motion must be one of {', '.join(ROOT_MOTION)}, not {mode!r}")
    root = motion.root_translation.copy()
    held = [0, 1, 2] if mode == "off" else [0, 2]
    delta = np.zeros_like(root)
    delta[:, held] = root[:1, held] - root[:, held]
    motion.meta["root_motion"] = mode
    return replace(motion, root_translation=root + delta), joints + delta[:, None]




def shared_world(poses: list[Pose3D]) -> Transform | None:
    """The camera-to-world transform everyone of a clip shares (camera-space ``poses``, the main
    person first): the main person's floor, facing and origin, the up all their bodies show
    (:func:`converters.world.world_transform`). None for one person or a world-space source (each
    then takes their own world)."""
    from converters.world import world_transform

    if len(poses) < 2 or poses[0].frame != "camera":
        return None
    return world_transform(poses[0], others=[p for p in poses[1:] if p.frame == "camera"])


def solve_people(poses: list[Pose3D], rig: str = "h36m", root_motion: str = "on", smoothing: str = "auto",
                 feet: str = "lock", everyone: bool = False, camera: CameraMotion | None = None,
                 camera_mode: str = "auto") -> list[WorldMotion]:
    """Each person's animation (:func:`solve_world`). ``camera``: the video's camera as estimated;
    its turns (pan, tilt, roll, shake) are taken out of every lifted pose first (:func:`camera_turns`,
    ``camera_mode``), so the world is the first frame's camera's. ``everyone``: they share one world
    (:func:`shared_world`): the main person's (the first) facing, floor and origin, the up all their
    bodies show; each other person scaled about the camera to stand on that floor where the picture
    shows it (:func:`converters.world.floor_scale`, in their animation's meta as ``floor_scale``;
    their NPZ and JSON keep the lift as it was), each root at its own place, each person's feet on
    the floor. Otherwise each person takes their own world."""
    from dataclasses import replace

    from converters.world import floor_scale

    turned: list[Pose3D] = []
    turns_of: list[np.ndarray | None] = []
    for pose in poses:
        turns = camera_turns(camera, pose.timestamps, camera_mode) if pose.frame == "camera" else None
        done = pose.meta.get("camera_turns") == "taken out"  # by the lift stage, with the root placed as on a tripod
        turned.append(turn_to_first_frame(pose, turns) if turns is not None and not done else pose)
        turns_of.append(turns)
    shared = shared_world(turned) if everyone else None
    out = []
    for n, (pose, turns) in enumerate(zip(turned, turns_of, strict=True)):
        scale = floor_scale(pose, shared) if shared is not None and n > 0 else 1.0
        if scale != 1.0:
            pose = replace(pose, joints=pose.joints * scale,
                           trajectory=None if pose.trajectory is None else pose.trajectory * scale)
        solved = solve_world(pose, rig, root_motion, smoothing, feet, transform=shared,
                             camera=camera if pose.frame == "camera" else None, turns=turns)
        if shared is not None:
            solved.motion.meta["floor_scale"] = round(scale, 4)
        out.append(solved)
    if shared is not None and out:  # one camera in the one world: the main person's
        out = [out[0], *(s._replace(camera=out[0].camera) for s in out[1:])]
    return out
