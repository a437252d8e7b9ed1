"""From camera space to the world frame animators expect (numpy only).

Camera space is x right, y down, z forward (metres). World space is right-handed, Y up, the floor
at y = 0, the subject facing +Z at frame 0. Steps:

1. Absolute camera-space joints: root-relative pose plus the trajectory (or the pose alone, pinned
   at the origin, when there is no trajectory).
2. Up: the camera may look down or be tilted, so "up" is taken from the body, not the camera: the
   prevailing ankles-to-head direction over the clip (people stand or walk far more than they lie
   down; see :func:`_up_direction`), over everyone's bodies when several people share the world.
   The clip is rotated so that direction becomes +Y. Then the floor refines it: the plane through
   the ankles in the frames where a foot is on the floor, weighted against the body's up by how far
   those points spread (:func:`_floor_normal`): a walk across the room fixes the tilt better than
   any posture, a dance on one spot cannot.
3. Facing: a turn about Y so that at frame 0 the hips face +Z (their left on +X).
4. Floor: the lowest ankle, taken as the 2nd percentile over the clip (robust to a few bad frames),
   is put ``ankle_height`` above y = 0; the root starts above the origin in X and Z.

People who share one world (everyone in a clip: the main person's) stand on its floor by their
distance from the camera, not by a lift (:func:`floor_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from converters.joints import H36M17
from converters.types import Pose3D

__all__ = ["ANKLE_HEIGHT_M", "Transform", "camera_in_world", "camera_to_world", "floor_scale", "world_transform"]

ANKLE_HEIGHT_M = 0.08
FLOOR_PRIOR_M = 0.15
MAX_FLOOR_TILT_DEG = 20.0
#: :func:`floor_scale` places by the floor only feet seen at least this far below the camera's
#: horizon (from a camera at hip height, or for someone far off, a few degrees of error in the
#: world's up would move them metres), and only within this range of scales.
MIN_FEET_BELOW_HORIZON_DEG = 10.0
FLOOR_SCALE_RANGE = (0.5, 2.0)
_I = {n: i for i, n in enumerate(H36M17.names)}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation turning unit vector ``a`` into unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: half a turn about any perpendicular axis
        axis = _unit(np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0]))
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def world_transform(pose: Pose3D, ankle_height: float = ANKLE_HEIGHT_M, others: Sequence[Pose3D] = ()
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The rigid transform from camera space to the world frame for ``pose``: ``world = camera @
    R.T + t``, as :func:`camera_to_world` applies it. ``others``: the other people seen by the same
    camera (camera space), who will share the world: their bodies vote on its up with ``pose``'s (one
    person's lifted lean would otherwise tilt everyone: on the 4-camera recording the main person's
    body alone put up 14-20 degrees off, and the woman standing upright beside him leaned 13-20
    degrees in his world). The floor, the facing and the origin stay ``pose``'s."""
    rotation = np.diag([1.0, -1.0, -1.0])  # camera (x right, y down, z forward) to Y up: a half turn about x

    def absolute(p: Pose3D) -> np.ndarray:
        return (p.joints + (p.trajectory[:, None] if p.trajectory is not None else 0.0)) @ rotation.T

    def body_up(j: np.ndarray) -> np.ndarray:
        return _unit_rows(j[:, _I["head_top"]] - 0.5 * (j[:, _I["left_ankle"]] + j[:, _I["right_ankle"]]))

    joints = absolute(pose)
    up = _up_direction(np.concatenate([body_up(joints), *(body_up(absolute(p)) for p in others)]))
    tilt = _rotation_between(up, np.array([0.0, 1.0, 0.0]))
    joints, rotation = joints @ tilt.T, tilt @ rotation
    floor = _floor_normal(joints, pose.fps)
    if floor is not None:
        tilt = _rotation_between(floor, np.array([0.0, 1.0, 0.0]))
        joints, rotation = joints @ tilt.T, tilt @ rotation
    left = joints[0, _I["left_hip"]] - joints[0, _I["right_hip"]]
    facing = np.cross(left, [0.0, 1.0, 0.0])
    facing[1] = 0.0
    if np.linalg.norm(facing) > 1e-9:
        facing = _unit(facing)
        yaw = np.arctan2(facing[0], facing[2])  # angle from +Z towards +X
        c, s = np.cos(-yaw), np.sin(-yaw)
        turn = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        joints, rotation = joints @ turn.T, turn @ rotation
    lowest = np.percentile(np.minimum(joints[:, _I["left_ankle"], 1], joints[:, _I["right_ankle"], 1]), 2)
    offset = np.array([-joints[0, _I["pelvis"], 0], ankle_height - lowest, -joints[0, _I["pelvis"], 2]])
    return rotation, offset


Transform = tuple[np.ndarray, np.ndarray]


def camera_to_world(pose: Pose3D, ankle_height: float = ANKLE_HEIGHT_M, transform: Transform | None = None
                    ) -> np.ndarray:
    """World-space joints ``(T,17,3)`` (Y up, floor at 0, facing +Z at frame 0) from a camera-space
    :class:`Pose3D`; ``transform``: the world of another pose (:func:`world_transform`), for people
    who share one (everyone in a clip)."""
    if pose.frame == "world":
        return pose.joints.copy()
    rotation, offset = transform if transform is not None else world_transform(pose, ankle_height)
    joints = pose.joints + (pose.trajectory[:, None] if pose.trajectory is not None else 0.0)
    return joints @ rotation.T + offset


def floor_scale(pose: Pose3D, transform: Transform, ankle_height: float = ANKLE_HEIGHT_M) -> float:
    """The factor to scale camera-space ``pose`` by (its root-relative joints and its trajectory
    alike: about the camera centre) for its feet to stand on the floor of ``transform``, another
    person's world (:func:`world_transform`) that this one shares. Scaled about the camera, a person
    covers the same pixels, nearer and smaller or further and larger; the lifter cannot tell which
    (it lifts a body of the size it learnt: on the 4-camera recording a short woman in front and a
    tall man behind, 2.6 and 3.7 m from one camera, came out at one depth), the floor they both stand
    on can (as in Ugrinovic et al., "Body size and depth disambiguation in multi-person
    reconstruction from single images", 2021). The lower ankle's 2nd percentile over the clip goes
    ``ankle_height`` above the floor, as :func:`world_transform` sets it for its own person.

    1.0 (no change) where the floor cannot say: no trajectory, feet not seen at least
    :data:`MIN_FEET_BELOW_HORIZON_DEG` below the horizon, or a scale outside :data:`FLOOR_SCALE_RANGE`
    (someone on a stage or a chair does not stand on that floor)."""
    if pose.frame != "camera" or pose.trajectory is None:
        return 1.0
    rotation, offset = transform
    joints = (pose.joints + pose.trajectory[:, None]) @ rotation.T  # world axes, the camera at the origin
    ankles = joints[:, [_I["left_ankle"], _I["right_ankle"]]]
    low = float(np.percentile(ankles[..., 1].min(axis=1), 2))
    distance = float(np.median(np.linalg.norm(ankles[..., [0, 2]], axis=-1)))
    below_horizon = np.degrees(np.arctan2(-low, distance))  # the same at any scale
    if below_horizon < MIN_FEET_BELOW_HORIZON_DEG:
        return 1.0
    scale = (float(offset[1]) - ankle_height) / -low
    return scale if FLOOR_SCALE_RANGE[0] <= scale <= FLOOR_SCALE_RANGE[1] else 1.0


def camera_in_world(pose: Pose3D, ankle_height: float = ANKLE_HEIGHT_M, transform: Transform | None = None
                    ) -> dict[str, float] | None:
    """Where the camera was, as the world frame sees it: height above the floor (metres) and pitch
    (degrees, positive looking up). None when the pose has no trajectory (the camera's distance is
    then unknown) or is already in world space."""
    if pose.frame == "world" or pose.trajectory is None:
        return None
    rotation, offset = transform if transform is not None else world_transform(pose, ankle_height)
    forward = rotation @ np.array([0.0, 0.0, 1.0])
    return {"camera_height_m": round(float(offset[1]), 3),
            "camera_pitch_deg": round(float(np.degrees(np.arcsin(np.clip(forward[1], -1.0, 1.0)))), 2)}


def _up_direction(directions: np.ndarray) -> np.ndarray:
    """The prevailing direction among unit vectors ``(T,3)``: their mean, then the mean of those
    within 30 degrees of it (a few frames lying down or mislifted do not tilt it). Unlike a
    per-component median it turns with the input, so the result does not depend on the axes the
    joints were given in."""
    up = _unit(directions.mean(axis=0))
    near = directions[directions @ up > np.cos(np.radians(30.0))]
    return _unit(near.mean(axis=0)) if len(near) else up


def _floor_normal(joints: np.ndarray, fps: float, prior_m: float | None = None) -> np.ndarray | None:
    """Up as the floor shows it: the normal of the plane through the ankles where a foot stands
    still (a planted foot is still whatever the slope the world is seen at; a height test would
    only find the low end of a tilted walk), drawn towards the body's up (+Y here) with the weight
    of contact points spread ``prior_m`` apart: points spread over metres of a walk decide the
    tilt, a dancer's feet on one spot leave the body's up. Points well above the plane (a raised
    foot held still) are dropped and the plane fitted again. None without still feet."""
    from converters.contacts import ContactThresholds, foot_contacts

    prior_m = FLOOR_PRIOR_M if prior_m is None else prior_m
    still = foot_contacts(joints, fps, ContactThresholds(height_on=np.inf, height_off=np.inf))
    ankles = joints[:, [_I["left_ankle"], _I["right_ankle"]]]
    still &= ankles[..., 1] < ankles[..., 1].min(axis=1, keepdims=True) + 0.05  # not a raised foot held still
    points = ankles[still]
    normal = np.array([0.0, 1.0, 0.0])
    prior = prior_m**2 * np.diag([1.0, 0.0, 1.0])  # costs tilting the normal away from +Y
    for _ in range(3):
        if len(points) < 3:
            return None
        centre = points.mean(axis=0)
        _, vectors = np.linalg.eigh(np.cov(points.T, bias=True) + prior)
        normal = vectors[:, 0] if vectors[1, 0] > 0 else -vectors[:, 0]
        height = (points - centre) @ normal
        points = points[height < np.median(height) + 0.05]
    if normal[1] < np.cos(np.radians(MAX_FLOOR_TILT_DEG)):  # no floor is that far off the body's up
        return None
    return normal


def _unit_rows(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def settle_on_floor(joints: np.ndarray, fps: float, window_s: float = 2.0, percentile: float = 10.0,
                    ankle_height: float = ANKLE_HEIGHT_M) -> tuple[np.ndarray, np.ndarray]:
    """World joints ``(T,17,3)`` moved up or down, slowly, so that the lower ankle stands
    ``ankle_height`` above y = 0 over every stretch of ``window_s`` seconds (its ``percentile``
    there: a jump or a kick in the window does not count), and the offsets ``(T,)`` applied.

    A monocular reconstruction drifts in height when its depth is off (a camera zoom reads as the
    person walking closer, which on a camera looking down lifts them off the floor) or its up is a
    few degrees off (a walk towards the camera climbs a slope). People stand on a floor; what stays
    of the lower foot's height after the slow part is removed is their own motion: steps, jumps,
    crouches."""
    from scipy.ndimage import gaussian_filter1d, percentile_filter

    lower = np.minimum(joints[:, _I["left_ankle"], 1], joints[:, _I["right_ankle"], 1])
    size = int(min(len(lower), max(1, round(window_s * fps))))
    offset = np.zeros_like(lower)
    for _ in range(3):  # a percentile of a slope lags it: again on what is left, a smaller slope each time
        level = percentile_filter(lower + offset, percentile, size=size, mode="nearest")
        offset += ankle_height - gaussian_filter1d(level, sigma=max(size / 4, 1e-3), mode="nearest")
    return joints + offset[:, None, None] * np.array([0.0, 1.0, 0.0]), offset
