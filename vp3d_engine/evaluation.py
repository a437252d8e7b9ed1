"""Evaluation of a lifter on mocap takes filmed by seeded synthetic cameras.

Protocol: each take is seen by ``views`` cameras drawn from the training ranges with a fixed seed
(the same views for every checkpoint), either clean (``noise="none"``) or with the detector noise
model at level 1 (``noise="detector"``). The dilated model runs on whole takes, with test-time
flip augmentation when the checkpoint asks for it. Errors are averaged over all frames; per-take
and per-action figures are frame-weighted too.

With ``world`` settings, each view also goes through the world stage of ``vp3d-convert`` (the
trajectory matched to the 2D, up and floor, smoothing, foot locking: :func:`world_figures`) and is
scored as an animator sees it, against the take's own world joints
(:func:`vp3d_engine.metrics.world_motion_metrics`).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import ConfigurationError
from converters.joints import COCO17, H36M17
from vp3d_engine import metrics
from vp3d_engine.training.batches import View, render_view
from vp3d_engine.training.mocap_data import Take, find_bvh_files, is_validation, load_takes
from vp3d_engine.training.synthetic import CameraRanges, NoiseModel

if TYPE_CHECKING:
    import torch

    from vp3d_engine.lifters.temporal import TemporalModelBase

__all__ = ["METRICS", "WorldSettings", "evaluate", "evaluate_views", "make_views", "world_figures"]

NOISE_KINDS = ("none", "detector")
METRICS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "root_error_mm", "root_xy_error_mm",
           "root_depth_error_mm")


@dataclass(frozen=True)
class WorldSettings:
    """The world-stage options of ``vp3d-convert`` a world evaluation runs with."""

    trajectory: str = "image"
    smoothing: str = "auto"
    feet: str = "lock"
    settle: bool = True  # the slow drift in height removed (converters.world.settle_on_floor)


def world_figures(view: View, pose: np.ndarray, trajectory: np.ndarray, fps: float,
                  settings: WorldSettings) -> dict[str, float]:
    """World-space figures of one view's prediction (root-relative ``pose (F,17,3)`` and
    ``trajectory (F,3)`` in camera space) after the world stage, against the take."""
    from converters.contacts import foot_contacts
    from converters.types import Pose3D
    from converters.world import ANKLE_HEIGHT_M
    from vp3d_engine.world_stage import solve_world

    if view.world is None:
        raise ConfigurationError("world figures need views made with the take's world joints")
    traj = trajectory.astype(np.float64)
    if settings.trajectory == "image":
        from converters.trajectory import clean_trajectory

        scores = view.scores if view.scores is not None else np.ones(view.pixels.shape[:2])
        cleaned = clean_trajectory(pose.astype(np.float64), traj, view.pixels, scores, view.size, fps)
        traj = cleaned[0] if cleaned is not None else traj
    frames = len(pose)
    camera = Pose3D(joints=pose.astype(np.float64), frame="camera", fps=fps, timestamps=np.arange(frames) / fps,
                    confidence=np.ones(frames), trajectory=traj)
    world = solve_world(camera, "h36m", "on", settings.smoothing, settings.feet, settings.settle).joints
    truth = view.world.astype(np.float64)
    ankles = (H36M17.index("left_ankle"), H36M17.index("right_ankle"))
    return metrics.world_motion_metrics(world, truth, foot_contacts(truth, fps), ankles, ANKLE_HEIGHT_M)


def make_views(takes: Sequence[Take], seed: int, views: int = 2, noise: str = "detector") -> list[View]:
    """Seeded camera views of every take; a take's views depend only on its name and ``seed``."""
    if noise not in NOISE_KINDS:
        raise ConfigurationError(f"unknown noise {noise!r}; use one of {', '.join(NOISE_KINDS)}")
    model = NoiseModel() if noise == "detector" else None
    out: list[View] = []
    for take in takes:
        rng = np.random.default_rng([seed, zlib.crc32(take.name.encode())])
        out.extend(render_view(take, rng, CameraRanges(), model, level=1.0) for _ in range(views))
    return out


def _metrics(pred: np.ndarray, gt: np.ndarray, traj_pred: np.ndarray | None, traj_gt: np.ndarray) -> dict[str, float]:
    out = {
        "mpjpe_mm": metrics.mpjpe(pred, gt) * 1000,
        "p_mpjpe_mm": metrics.p_mpjpe(pred, gt) * 1000,
        "n_mpjpe_mm": metrics.n_mpjpe(pred, gt) * 1000,
        "mpjve_mm": metrics.mpjve(pred, gt) * 1000,
    }
    if traj_pred is not None:
        out["root_error_mm"] = float(np.linalg.norm(traj_pred - traj_gt, axis=-1).mean() * 1000)
        # Lateral (x, y) and depth (z) parts: depth is ambiguous when the focal length is unknown.
        out["root_xy_error_mm"] = float(np.linalg.norm((traj_pred - traj_gt)[:, :2], axis=-1).mean() * 1000)
        out["root_depth_error_mm"] = float(np.abs((traj_pred - traj_gt)[:, 2]).mean() * 1000)
    return out


def evaluate_views(pose: TemporalModelBase, trajectory: TemporalModelBase | None, views: Sequence[View],
                   flip: bool = True, device: torch.device | str = "cpu", world: WorldSettings | None = None,
                   fps: float = 30.0) -> dict[str, Any]:
    """Figures over all views, plus ``per_take`` and ``per_action`` breakdowns and ``frames``."""
    from vp3d_engine.lifters.inference import predict_sequence

    perm_in, perm_out = COCO17.flip_permutation(), H36M17.flip_permutation()
    per_take: dict[str, list[tuple[int, dict[str, float]]]] = defaultdict(list)
    action_of: dict[str, str] = {}
    for view in views:
        pred = predict_sequence(pose, view.inputs, flip=flip, flip_perm_in=perm_in, flip_perm_out=perm_out,
                                device=device)
        pred = pred - pred[:, :1]
        traj = None
        if trajectory is not None:
            traj = predict_sequence(trajectory, view.inputs, flip=flip, flip_perm_in=perm_in,
                                    flip_perm_out=np.zeros(1, dtype=np.int64), device=device)[:, 0]
        figures = _metrics(pred, view.pose, traj, view.trajectory)
        if world is not None:
            if traj is None:
                raise ConfigurationError("world figures need a checkpoint with a trajectory model")
            figures.update(world_figures(view, pred, traj, fps, world))
        per_take[view.take].append((view.inputs.shape[0], figures))
        action_of[view.take] = view.action

    def pool(items: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
        frames = sum(n for n, _ in items)
        keys = items[0][1].keys()
        out = {k: _pooled([(n, m[k]) for n, m in items]) for k in keys} | {"frames": frames}
        if "jitter_ratio" in out:  # of the pooled means, not a mean of ratios
            out["jitter_ratio"] = out["jitter_mm"] / out["jitter_truth_mm"]
        return out

    takes = {name: pool(items) for name, items in sorted(per_take.items())}
    by_action: dict[str, list[tuple[int, dict[str, float]]]] = defaultdict(list)
    for name, items in per_take.items():
        by_action[action_of[name]].extend(items)
    overall = pool([item for items in per_take.values() for item in items])
    return {**overall, "per_take": takes, "per_action": {a: pool(i) for a, i in sorted(by_action.items())}}


def _pooled(items: list[tuple[int, float]]) -> float:
    """Frame-weighted mean, leaving out views where a figure does not exist (NaN: no planted foot)."""
    kept = [(n, v) for n, v in items if np.isfinite(v)]
    frames = sum(n for n, _ in kept)
    return sum(n * v for n, v in kept) / frames if frames else float("nan")


def evaluate(data: Sequence[str | Path], checkpoint: str | Path, noise: str = "detector", seed: int = 0,
             views: int = 2, split: str = "validation", device: str = "cpu",
             world: WorldSettings | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint on BVH takes; ``split`` is ``validation`` (the held-out takes of the
    checkpoint's own split), ``train`` or ``all``."""
    from vp3d_engine.checkpoints import load_checkpoint

    lifter = load_checkpoint(checkpoint, device=device)
    cfg = lifter.config
    if cfg["input"]["joints"] != "coco17":
        raise ConfigurationError(
            f"{lifter.path}: evaluation on mocap feeds COCO-17 keypoints, this checkpoint expects "
            f"{cfg['input']['joints']}")
    files = find_bvh_files(data)
    fraction = float(cfg.get("training", {}).get("val_fraction", 0.1))
    if split == "validation":
        files = [f for f in files if is_validation(f.stem, fraction)]
    elif split == "train":
        files = [f for f in files if not is_validation(f.stem, fraction)]
    elif split != "all":
        raise ConfigurationError(f"unknown split {split!r}; use validation, train or all")
    if not files:
        raise ConfigurationError(f"no takes in the {split} split of {', '.join(map(str, data))}")
    takes = load_takes(files, float(cfg.get("fps", 30.0)))
    result = evaluate_views(lifter.pose, lifter.trajectory, make_views(takes, seed, views, noise),
                            flip=bool(cfg.get("test_time_flip", True)), device=device, world=world,
                            fps=float(cfg.get("fps", 30.0)))
    settings = {} if world is None else {"world": {"trajectory": world.trajectory, "smoothing": world.smoothing,
                                                   "feet": world.feet}}
    return {"checkpoint": str(lifter.path), "noise": noise, "seed": seed, "views": views, "split": split,
            "takes": len(takes), **settings, **result}
