"""Semi-supervised training on unlabeled video (VideoPose3D, Pavllo et al. 2019, section 4).

Real clips have no 3D ground truth, but they do have what the lifter sees at run time: the
detector's 2D. Each unlabeled window is lifted in a second pass after the supervised batch, with
batch norm on its running statistics, which the mocap batches alone set (the paper lifts both in
one pass; here, with a few real clips against 122k mocap windows, mixing them into the batch
statistics cost 6.5 mm of validation MPJPE and more on the real recording:
``benchmarks/results/semi_supervised.txt``), and three losses tie the prediction to the clip:

- **Projection.** The predicted limb joints, placed at the trajectory model's root (detached; a
  constant 4 m in front of the camera without one), are projected and compared with the detected
  2D after a per-frame scale and translation fit. The paper projects with the known camera; in the
  wild the focal length is unknown, and the fit makes the loss independent of it (and of the
  depth), so only the pose's shape is judged: perspective still enters through the root's place.
  The residual is measured at the root's depth, so the loss reads as metres, like the supervised
  one; joints are weighted by the detector's confidence (0 where the tracker filled them in).
- **Bone-length prior.** A scale fit leaves the pose's size free, so, as in the paper, the mean
  bone lengths of the unlabeled windows are held to those of the labelled batch.
- **Bone-length consistency.** Windows come in groups of frames of the same clip (one person,
  one flip), and each bone's length is held constant across the group (its standard deviation, in
  metres): a forearm that is 25-37% longer in some frames than in others is the failure measured
  on real clips, and a depth error that tilts a bone out of the image must change its length.

The 2D comes from the same pipeline as ``vp3d-convert`` (detector, tracker, left/right label-swap
fix), so training sees what inference sees; it is cached per input file in the output folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from converters.errors import ConfigurationError, InputFileError
from converters.fileio import atomic_write
from converters.joints import COCO17, H36M17
from converters.npz import open_npz
from converters.timeline import resample_times
from converters.types import Keypoints2D
from vp3d_engine.normalization import normalize_keypoints

__all__ = [
    "UnlabeledBatch", "UnlabeledClip", "UnlabeledSampler", "bone_lengths", "consistency_loss",
    "load_unlabeled", "projection_loss", "unlabeled_files",
]

log = logging.getLogger(__name__)
CACHE_VERSION = 1
KEYPOINT_SUFFIXES = {".npz", ".npy", ".json"}

_LIMBS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
          "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
H36M_LIMBS = np.array([H36M17.names.index(n) for n in _LIMBS])
COCO_LIMBS = np.array([COCO17.names.index(n) for n in _LIMBS])
BONES = np.array([(j, p) for j, p in enumerate(H36M17.parents) if p >= 0])  # (16, 2): child, parent
DEFAULT_ROOT = (0.0, 0.0, 4.0)


@dataclass(frozen=True)
class UnlabeledClip:
    """One person's 2D track at the training frame rate: ``inputs (T,17,2)`` normalised,
    ``weights (T,17)`` detector confidence, 0 where a joint was filled in."""

    name: str
    inputs: np.ndarray
    weights: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.inputs.shape[0])


def _kind(path: Path) -> str:
    """``video``, ``keypoints`` (2D, including a vp3d-convert result, which holds its 2D) or ``motion``."""
    from vp3d_engine.arrays import npz_names
    from vp3d_engine.sources import classify_source

    if path.suffix.lower() == ".npz" and "keypoints_2d" in npz_names(path):
        return "keypoints"
    return classify_source(path)


def unlabeled_files(paths: Sequence[Path]) -> list[Path]:
    """Videos and 2D keypoint files named by ``paths``; folders give the ones directly inside (an
    OpenPose folder of ``*_keypoints.json`` frames is one clip)."""
    from vp3d_engine.sources import VIDEO_SUFFIXES

    found: list[Path] = []
    for path in paths:
        if path.is_dir() and any(path.glob("*_keypoints.json")):
            found.append(path)  # an OpenPose folder: one clip
        elif path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and (
                p.suffix.lower() in VIDEO_SUFFIXES
                or (p.suffix.lower() in KEYPOINT_SUFFIXES and _kind(p) == "keypoints")))
            if not inside:
                raise ConfigurationError(f"--unlabeled {path}: no videos or 2D keypoint files in it")
            found += inside
        elif not path.exists():
            raise ConfigurationError(f"--unlabeled {path}: no such file or folder")
        elif _kind(path) == "motion":
            raise ConfigurationError(f"--unlabeled {path} holds 3D joints; give videos or 2D keypoints "
                                     "(labelled motion goes in --data as BVH)")
        else:
            found.append(path)
    return found


def _cache_name(path: Path) -> str:
    st = path.stat()
    key = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, CACHE_VERSION])
    return f"{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def _detect(path: Path) -> Keypoints2D:
    from vp3d_engine.pipeline import PipelineOptions, run_pipeline

    keypoints = _kind(path) == "keypoints"
    if keypoints:
        from vp3d_engine.detectors.files import read_keypoints_file

        if read_keypoints_file(path).image_size is None:
            raise ConfigurationError(f"--unlabeled {path} does not record the image size of its keypoints; convert "
                                     f"it once with vp3d-convert {path} --image-size WIDTHxHEIGHT --npz and give "
                                     "the result")
    return run_pipeline(path, PipelineOptions(keypoints=path if keypoints else None, camera="static")).keypoints


def _load_track(path: Path, cache: Path | None) -> Keypoints2D:
    target = cache / _cache_name(path) if cache is not None else None
    if target is not None and target.is_file():
        try:  # vp3d's own cache, but read as any file in a folder others can write to: checked
            with open_npz(target) as z:
                w, h = (int(v) for v in z.read("image_size"))
                return Keypoints2D(xy=z.read("xy"), score=z.read("score"), valid=z.read("valid"), format=COCO17.name,
                                   image_size=(w, h), fps=float(z.read("fps")), timestamps=z.read("timestamps"))
        except (InputFileError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"--unlabeled {path}: its cached 2D {target} cannot be used ({exc}); delete it "
                                     "to detect the 2D again") from None
    kp = _detect(path)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda f: np.savez(f, xy=kp.xy, score=kp.score, valid=kp.valid,
                                                timestamps=kp.timestamps, image_size=np.array(kp.image_size),
                                                fps=np.array(kp.fps)))
    return kp


def load_unlabeled(paths: Sequence[Path], fps: float, normalization: str = "screen", cache: Path | None = None,
                   progress: Callable[[str], None] | None = None) -> list[UnlabeledClip]:
    """2D tracks of ``paths`` (see :func:`unlabeled_files`) resampled to ``fps`` and normalised."""
    clips = []
    for path in unlabeled_files(paths):
        if progress is not None:
            progress(path.name)
        kp = _load_track(path, cache)
        if kp.format != COCO17.name:
            raise ConfigurationError(f"--unlabeled {path}: {kp.format} keypoints; training takes COCO-17")
        times = kp.timestamps - kp.timestamps[0]
        grid = np.arange(0.0, times[-1] + 0.5 / fps, 1.0 / fps) if times[-1] > 0 else np.zeros(1)
        xy = resample_times(kp.xy.astype(np.float64), times, grid)
        weights = resample_times((kp.score * kp.valid).astype(np.float64), times, grid)
        w, h = kp.image_size
        clips.append(UnlabeledClip(name=path.name,
                                   inputs=normalize_keypoints(xy, w, h, normalization).astype(np.float32),
                                   weights=np.clip(weights, 0.0, 1.0).astype(np.float32)))
        log.info("unlabeled %s: %d frames at %g fps", path.name, grid.size, fps)
    return clips


@dataclass(frozen=True)
class UnlabeledBatch:
    """``inputs (G*N,RF,17,2)`` windows, ``observed (G*N,17,2)`` the 2D of each window's output
    frame, ``weights (G*N,17)``; rows ``g*N .. g*N+N-1`` are group ``g`` (one clip, one flip)."""

    inputs: np.ndarray
    observed: np.ndarray
    weights: np.ndarray
    groups: int


class UnlabeledSampler:
    """Groups of ``per_group`` random frames of one clip each (clips drawn in proportion to their
    length), every frame with its receptive field of 2D around it (edge-padded at the ends)."""

    def __init__(self, clips: Sequence[UnlabeledClip], receptive_field: int, causal_shift: int = 0,
                 per_group: int = 8, flip: bool = True) -> None:
        if not clips:
            raise ConfigurationError("no unlabeled clips to train on")
        pad = receptive_field // 2
        self.left, right = pad + causal_shift, pad - causal_shift
        self.receptive_field = receptive_field
        self.per_group = per_group
        self.flip = flip
        self.clips = list(clips)
        self.padded = [np.pad(c.inputs, ((self.left, right), (0, 0), (0, 0)), mode="edge") for c in clips]
        frames = np.array([c.num_frames for c in clips], dtype=np.float64)
        self.p = frames / frames.sum()

    @property
    def num_frames(self) -> int:
        return int(sum(c.num_frames for c in self.clips))

    def sample(self, rng: np.random.Generator, groups: int) -> UnlabeledBatch:
        n = self.per_group
        inputs = np.empty((groups * n, self.receptive_field, 17, 2), dtype=np.float32)
        observed = np.empty((groups * n, 17, 2), dtype=np.float32)
        weights = np.empty((groups * n, 17), dtype=np.float32)
        which = rng.choice(len(self.clips), size=groups, p=self.p)
        for g, c in enumerate(which):
            clip, padded = self.clips[c], self.padded[c]
            frames = rng.integers(clip.num_frames, size=n)
            rows = slice(g * n, (g + 1) * n)
            inputs[rows] = padded[frames[:, None] + np.arange(self.receptive_field)[None]]
            observed[rows] = clip.inputs[frames]
            weights[rows] = clip.weights[frames]
        if self.flip:
            flip = np.repeat(rng.random(groups) < 0.5, n)
            if flip.any():
                perm = COCO17.flip_permutation()
                mirror = np.array([-1.0, 1.0], dtype=np.float32)
                inputs[flip] = inputs[flip][:, :, perm] * mirror
                observed[flip] = observed[flip][:, perm] * mirror
                weights[flip] = weights[flip][:, perm]
        return UnlabeledBatch(inputs=inputs, observed=observed, weights=weights, groups=groups)


def projection_loss(pose: torch.Tensor, root: torch.Tensor, observed: torch.Tensor,
                    weights: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted mean distance between the projected limb joints of ``pose (B,17,3)``
    (root-relative, camera space) placed at ``root (B,3)`` and the normalised 2D ``observed
    (B,17,2)``, after the least-squares scale and translation that maps the projection onto the 2D
    in each frame. The 2D is measured in units of its own spread (RMS distance from its centre)
    and the result converted to metres with the predicted limbs' 3D spread, so it is bounded (a
    collapsed prediction costs about that spread) and reads like the supervised loss."""
    pts = pose[:, H36M_LIMBS] + root[:, None]
    p = pts[..., :2] / pts[..., 2:].clamp(min=0.2)
    o = observed[:, COCO_LIMBS]
    w = weights[:, COCO_LIMBS]
    wsum = w.sum(1).clamp(min=1e-6)

    def centred(x: torch.Tensor) -> torch.Tensor:
        return x - (w[..., None] * x).sum(1, keepdim=True) / wsum[:, None, None]

    def spread(x: torch.Tensor) -> torch.Tensor:  # (B,) weighted RMS distance from the centre
        return ((w * (x * x).sum(-1)).sum(1) / wsum).sqrt()

    pc, oc = centred(p), centred(o)
    oc = oc / spread(oc).clamp(min=1e-6)[:, None, None]
    scale = (w * (pc * oc).sum(-1)).sum(1) / (w * (pc * pc).sum(-1)).sum(1).clamp(min=1e-12)
    resid = torch.linalg.vector_norm(scale[:, None, None] * pc - oc, dim=-1)
    size = spread(centred(pts)).detach()  # metres
    return (w * resid * size[:, None]).sum() / w.sum().clamp(min=1e-6)


def bone_lengths(pose: torch.Tensor) -> torch.Tensor:
    """``(...,17,3)`` H36M-17 joints to ``(...,16)`` bone lengths."""
    return torch.linalg.vector_norm(pose[..., BONES[:, 0], :] - pose[..., BONES[:, 1], :], dim=-1)


def consistency_loss(lengths: torch.Tensor) -> torch.Tensor:
    """Mean over groups and bones of the standard deviation of ``lengths (G,N,16)`` within a group."""
    return lengths.std(dim=1).mean()
