"""Training batches and evaluation views from mocap takes.

A training sample is one window of ``receptive_field`` frames seen by a random camera: the
network input is the window's COCO-17 points projected to pixels, made noisy and normalised; the
targets are the H36M-17 joints of the output frame in camera space (root-relative, metres) and the
root's camera-space position (the trajectory). Left/right flip augmentation mirrors both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from converters.joints import COCO17, H36M17
from vp3d_engine.normalization import normalize_keypoints
from vp3d_engine.training.mocap_data import Take
from vp3d_engine.training.synthetic import (
    BodyShape,
    CameraRanges,
    NoiseModel,
    project,
    project_world,
    sample_cameras,
    world_to_camera,
)

__all__ = ["Batch", "View", "WindowSampler", "render_view"]


@dataclass(frozen=True)
class Batch:
    """``inputs (B,RF+N-1,17,2)`` normalised 2D, ``pose (B,N,17,3)`` root-relative camera-space
    metres, ``trajectory (B,N,3)`` camera-space root, metres; ``N`` output frames per sample."""

    inputs: np.ndarray
    pose: np.ndarray
    trajectory: np.ndarray


def _flip_batch(inputs: np.ndarray, pose: np.ndarray, traj: np.ndarray, mask: np.ndarray) -> None:
    """Mirror the rows selected by ``mask`` in place (x -> -x, left <-> right)."""
    if not mask.any():
        return
    perm_2d, perm_3d = COCO17.flip_permutation(), H36M17.flip_permutation()
    inputs[mask] = inputs[mask][:, :, perm_2d] * np.array([-1.0, 1.0], dtype=inputs.dtype)
    pose[mask] = pose[mask][:, :, perm_3d] * np.array([-1.0, 1.0, 1.0], dtype=pose.dtype)
    traj[mask] = traj[mask] * np.array([-1.0, 1.0, 1.0], dtype=traj.dtype)


class WindowSampler:
    """Draws random windows from takes; every frame of every take is equally likely to be the
    (first) output frame (takes are edge-padded like VideoPose3D's). ``outputs`` consecutive
    output frames per sample (1 for the strided 1f model, more for chunked training of the
    dilated model); takes shorter than that are skipped.

    ``frame_span`` (frames): each camera is aimed at, and frames, a stretch of the take around its
    window, of a length drawn uniformly up to this (within the take), as a static camera filming a
    whole walk keeps the whole path in view: the person is seen anywhere in the picture, out to its
    edges and off the camera's axis, and far and small when the path is long, as in whole-take
    views (``render_view``). 0 aims at and frames the window alone."""

    def __init__(
        self,
        takes: Sequence[Take],
        receptive_field: int,
        causal_shift: int = 0,
        cameras: CameraRanges | None = None,
        noise: NoiseModel | None = None,
        flip: bool = True,
        normalization: str = "screen",
        outputs: int = 1,
        shape: BodyShape | None = None,
        frame_span: int = 0,
    ) -> None:
        takes = [t for t in takes if t.num_frames >= outputs]
        if not takes:
            raise ValueError("no takes to sample from")
        pad = receptive_field // 2
        left, right = pad + causal_shift, pad - causal_shift
        self.receptive_field = receptive_field
        self.outputs = outputs
        self.cameras = cameras or CameraRanges()
        self.noise = noise
        self.shape = shape
        self.flip = flip
        self.normalization = normalization
        self.frame_span = frame_span
        coco, h36m, starts, bounds = [], [], [], []
        offset = 0
        for take in takes:
            coco.append(np.pad(take.coco, ((left, right), (0, 0), (0, 0)), mode="edge"))
            h36m.append(np.pad(take.h36m, ((left, right), (0, 0), (0, 0)), mode="edge"))
            starts.append(offset + np.arange(take.num_frames - outputs + 1))
            # The take's own frames (padding left out), for each of its windows.
            bounds.append(np.broadcast_to([offset + left, offset + left + take.num_frames - 1],
                                          (take.num_frames - outputs + 1, 2)))
            offset += take.num_frames + left + right
        self.coco = np.concatenate(coco)
        self.h36m = np.concatenate(h36m)
        self.window_starts = np.concatenate(starts)
        self.take_bounds = np.concatenate(bounds)
        self.target_offset = left

    @property
    def num_frames(self) -> int:
        return int(self.window_starts.size)

    def _framed(self, rng: np.random.Generator, pick: np.ndarray, roots: np.ndarray,
                window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each camera aims (the roots of ``(B,T,3)`` frames, their middle one) and the
        points it keeps in frame (the window's ``(B,P,3)``): the window's own, or, when
        ``frame_span`` is set, 16 frames spread over a random stretch of the take around it."""
        if self.frame_span <= 0:
            return roots, window
        lo, hi = self.take_bounds[pick, 0], self.take_bounds[pick, 1]
        centre = self.window_starts[pick] + self.target_offset  # the (first) output frame
        span = rng.uniform(0, self.frame_span, len(pick))
        first = np.clip(centre - rng.uniform(0, 1, len(pick)) * span, lo, hi)
        last = np.clip(first + span, lo, hi)
        idx = np.rint(first[:, None] + (last - first)[:, None] * np.linspace(0, 1, 16)[None]).astype(np.int64)
        return (self.h36m[idx, 0].astype(np.float64),
                np.concatenate([window, self.coco[idx].reshape(len(pick), -1, 3)], axis=1))

    def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        pick = rng.integers(self.num_frames, size=batch_size)
        starts = self.window_starts[pick]
        length = self.receptive_field + self.outputs - 1
        idx = starts[:, None] + np.arange(length)[None]
        coco = self.coco[idx]  # (B,L,17,3) float32
        frames = self.target_offset + np.arange(self.outputs)
        if self.shape is not None:
            target, coco = self.shape.apply(self.h36m[idx], coco, self.shape.sample(rng, batch_size), frames=frames)
        else:
            target = self.h36m[starts[:, None] + frames]
        roots = self.h36m[idx, 0].astype(np.float64)  # (B,L,3)
        aim, framed = self._framed(rng, pick, roots, coco[:, ::4].reshape(batch_size, -1, 3))
        cams = sample_cameras(rng, aim, self.cameras, keep_in_frame=framed)
        xy = project_world(coco, cams)
        if self.noise is not None:
            xy, _, _ = self.noise.apply(rng, xy)
        inputs = normalize_keypoints(xy, cams.size[:, None, None, 0].astype(np.float32),
                                     cams.size[:, None, None, 1].astype(np.float32), self.normalization)
        target_cam = world_to_camera(target, cams)  # (B,N,17,3)
        traj = target_cam[:, :, 0].astype(np.float32)
        pose = (target_cam - target_cam[:, :, :1]).astype(np.float32)
        if self.flip:
            _flip_batch(inputs, pose, traj, rng.random(batch_size) < 0.5)
        return Batch(inputs=inputs, pose=pose, trajectory=traj)


@dataclass(frozen=True)
class View:
    """A whole take seen by one fixed camera: ``inputs (F,17,2)`` normalised 2D, ``pose (F,17,3)``
    root-relative camera-space metres, ``trajectory (F,3)``, ``pixels (F,17,2)``, ``size (w,h)``,
    and the camera's ``focal`` length and principal point ``centre`` in pixels."""

    take: str
    action: str
    inputs: np.ndarray
    pose: np.ndarray
    trajectory: np.ndarray
    pixels: np.ndarray
    size: tuple[int, int]
    focal: float
    centre: tuple[float, float]
    world: np.ndarray | None = None  # (F,17,3) the take's H36M joints, world metres, Y up
    scores: np.ndarray | None = None  # (F,17) the detector-like confidence of ``pixels``


def render_view(take: Take, rng: np.random.Generator, cameras: CameraRanges,
                noise: NoiseModel | None, level: float = 1.0, normalization: str = "screen") -> View:
    """Film a whole take with one random camera (fixed over the take), optionally with detector
    noise at a fixed ``level``: the evaluation protocol."""
    cams = sample_cameras(rng, take.h36m[None, :, 0].astype(np.float64), cameras,
                          keep_in_frame=take.coco[None].reshape(1, -1, 3))
    xy = project(world_to_camera(take.coco[None].astype(np.float64), cams), cams)
    scores = np.ones(xy.shape[:-1], dtype=np.float32)
    if noise is not None:
        xy, scores, valid = noise.apply(rng, xy, level=np.array([level]))
        scores = scores * valid
    w, h = cams.size[0]
    inputs = normalize_keypoints(xy[0], w, h, normalization).astype(np.float32)
    cam3d = world_to_camera(take.h36m[None].astype(np.float64), cams)[0]
    return View(
        take=take.name, action=take.action, inputs=inputs,
        pose=(cam3d - cam3d[:, :1]).astype(np.float32), trajectory=cam3d[:, 0].astype(np.float32),
        pixels=xy[0].astype(np.float32), size=(int(w), int(h)),
        focal=float(cams.f[0]), centre=(float(cams.c[0, 0]), float(cams.c[0, 1])),
        world=take.h36m.astype(np.float32), scores=scores[0].astype(np.float32),
    )
