"""Lift a person's 2D keypoints to 3D with a loaded checkpoint.

The lifter was trained at the checkpoint's frame rate (``config.fps``), so by default
(``resample="checkpoint"``) the keypoints are resampled onto an even grid at that rate from their
real timestamps (which also absorbs variable frame rates), normalised as the checkpoint says,
lifted with edge padding (and flip averaging when the checkpoint asks for it), and the 3D result is
resampled back to the original timestamps. ``resample="none"`` lifts the frames as they come, as
the original VideoPose3D code does on videos in the wild (its checkpoints were trained at 50 fps,
so this reproduces its output exactly, not its accuracy at other rates).
"""

from __future__ import annotations

import numpy as np

from converters.errors import ConfigurationError, ConversionError
from converters.joints import COCO17, H36M17
from converters.timeline import resample_times
from converters.types import Keypoints2D, Pose3D
from vp3d_engine.checkpoints import LoadedLifter
from vp3d_engine.lifters.inference import predict_sequence
from vp3d_engine.normalization import normalize_keypoints

__all__ = ["RESAMPLE_MODES", "TRAJECTORY_MODES", "lift_keypoints"]


RESAMPLE_MODES = ("checkpoint", "none")
#: "image": the root's depth steadied and its travel matched to the 2D (converters.trajectory);
#: "model": the trajectory model's output as it is.
TRAJECTORY_MODES = ("image", "model")


def lift_keypoints(kp: Keypoints2D, lifter: LoadedLifter, device: str = "cpu", flip: bool | None = None,
                   resample: str = "checkpoint", trajectory: str = "image", turns: np.ndarray | None = None,
                   focal: float | None = None) -> Pose3D:
    """3D joints in camera space (metres, root-relative) plus the root trajectory. ``turns``: the
    camera's turn at each frame (``(T,3,3)``, frame t's camera axes to the first frame's,
    :mod:`vp3d_engine.camera_motion`, measured with ``focal`` pixels) to take out: the joints are
    turned into the first frame's camera axes and the root is placed from the 2D as the first
    frame's camera would have seen it (each frame's keypoints moved by ``K R_t K^-1``), as on a
    tripod (meta ``camera_turns``: ``"taken out"``)."""
    if resample not in RESAMPLE_MODES:
        raise ConfigurationError(f"resample must be one of {', '.join(RESAMPLE_MODES)}, not {resample!r}")
    if trajectory not in TRAJECTORY_MODES:
        raise ConfigurationError(f"trajectory must be one of {', '.join(TRAJECTORY_MODES)}, not {trajectory!r}")
    cfg = lifter.config
    if kp.format != cfg["input"]["joints"]:
        raise ConfigurationError(f"checkpoint {lifter.path} expects {cfg['input']['joints']} keypoints, "
                                 f"these are {kp.format}")
    if kp.format != COCO17.name:
        raise ConfigurationError("only COCO-17 input is supported by the video pipeline")
    fps = float(cfg.get("fps", 30.0))
    times = kp.timestamps - kp.timestamps[0]
    gaps = np.diff(times)
    if gaps.size and (gaps.max() > 10.0 or gaps.min() <= 0):
        where = int(np.argmax(gaps)) if gaps.max() > 10.0 else int(np.argmin(gaps))
        raise ConversionError(f"the timestamps jump by {gaps[where]:.1f} s after frame {where} (joined or broken "
                              "clip); convert the parts separately with --start/--end")
    if resample == "none":
        grid, xy = times, kp.xy
    else:
        grid = np.arange(0.0, times[-1] + 0.5 / fps, 1.0 / fps) if times[-1] > 0 else np.zeros(1)
        xy = resample_times(kp.xy, times, grid)
    w, h = kp.image_size
    inputs = normalize_keypoints(xy, w, h, cfg["input"].get("normalization", "screen")).astype(np.float32)
    use_flip = bool(cfg.get("test_time_flip", True)) if flip is None else flip
    perm_in, perm_out = COCO17.flip_permutation(), H36M17.flip_permutation()
    pose = predict_sequence(lifter.pose, inputs, flip=use_flip, flip_perm_in=perm_in, flip_perm_out=perm_out,
                            device=device)
    pose = pose - pose[:, :1]
    traj = None
    if lifter.trajectory is not None:
        traj = predict_sequence(lifter.trajectory, inputs, flip=use_flip, flip_perm_in=perm_in,
                                flip_perm_out=np.zeros(1, dtype=np.int64), device=device)[:, 0]
        traj = resample_times(traj, grid, times)
    joints = resample_times(pose, grid, times)
    confidence = (kp.score * kp.valid).mean(axis=1)
    meta: dict[str, object] = {"trajectory": "none" if traj is None else "model"}
    seen = kp.xy
    if turns is not None:
        if focal is None:
            raise ConfigurationError("the camera's turns need its focal length")
        joints = np.einsum("tij,tkj->tki", turns, joints)
        seen = _as_first_frame_saw(kp.xy, turns, focal, kp.image_size)
        if traj is not None:
            traj = np.einsum("tij,tj->ti", turns, traj)
        meta["camera_turns"] = "taken out"
    if traj is not None and trajectory == "image":
        from converters.trajectory import clean_trajectory

        cleaned = clean_trajectory(joints, traj, seen, kp.score * kp.valid, kp.image_size, kp.fps,
                                   turning=turns is not None)
        if cleaned is not None:
            traj = cleaned[0]
            meta.update({"trajectory": "image", "trajectory_figures": cleaned[1]})
    return Pose3D(joints=joints, frame="camera", fps=kp.fps, timestamps=kp.timestamps.copy(),
                  confidence=confidence, trajectory=traj,
                  meta={"checkpoint": str(lifter.path), "lifter": cfg.get("lifter"), "flip": use_flip,
                        "root_relative": True, "resample": resample, **meta})


def _as_first_frame_saw(xy: np.ndarray, turns: np.ndarray, focal: float, size: tuple[int, int]) -> np.ndarray:
    """Pixels ``(T,K,2)`` of frame t's camera where the first frame's camera (turned by ``turns``
    from it, the same centre and focal length) sees the same directions: ``K R_t K^-1 x``."""
    centre = np.array([(size[0] - 1) / 2.0, (size[1] - 1) / 2.0])
    rays = np.concatenate([(xy - centre) / focal, np.ones(xy.shape[:-1] + (1,))], axis=-1)
    turned = np.einsum("tij,tkj->tki", turns, rays)
    z = np.where(np.abs(turned[..., 2:]) < 1e-6, 1e-6, turned[..., 2:])
    return turned[..., :2] / z * focal + centre
