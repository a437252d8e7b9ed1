"""What a 2D detector (or a file of detections) hands to tracking: every person it found in every
frame, before one track is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from converters.joints import joint_set

__all__ = ["FrameDetections"]


@dataclass(frozen=True)
class FrameDetections:
    """Detections over a clip.

    ``people[t]`` is a float array ``(N_t, K, 3)``: for each of the ``N_t`` people found in frame
    ``t``, ``K`` keypoints as ``(x, y, score)`` in pixels of the displayed frame (x right, y down)
    with score in [0, 1]; ``N_t`` may be 0. Keypoints are in the ``format`` joint set (``coco17``).
    ``image_size`` is ``(w, h)`` or None when the source does not say; ``fps`` likewise;
    ``timestamps (T,)`` seconds, or None (then frames are taken as evenly spaced at ``fps``).
    ``ranked``: the detector lists people in a stable order of its own (MediaPipe's passes: the
    person its first pass follows comes first), which then decides who is ``--person 0``, ``1``...;
    otherwise people are ranked by size and confidence over the clip.
    ``places_hidden``: the detector places every keypoint, hidden ones included, and its score is how
    visible the joint is, not whether the position means anything (MediaPipe: a joint behind the
    body or out of the frame still gets its best estimate); tracking then keeps those positions
    instead of interpolating over them. Otherwise a low score marks a missing or unreliable joint.
    ``identities``: per frame, ``(N_t,)`` ints, the detector's own identity for each person (the same
    number for the same person from frame to frame, as a detector that follows people gives them);
    None when the detector does not say. Tracking keeps a person's identity where it has one.
    """

    people: list[np.ndarray]
    format: str = "coco17"
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    timestamps: np.ndarray | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    ranked: bool = False
    places_hidden: bool = False
    identities: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        k = joint_set(self.format).size
        for t, p in enumerate(self.people):
            if p.ndim != 3 or p.shape[1:] != (k, 3):
                raise ValueError(f"frame {t}: expected (N,{k},3) detections, got {p.shape}")
        if self.timestamps is not None and self.timestamps.shape != (len(self.people),):
            raise ValueError("timestamps must have one entry per frame")
        if self.identities is not None and (len(self.identities) != len(self.people) or any(
                ids.shape != (p.shape[0],) for ids, p in zip(self.identities, self.people, strict=True))):
            raise ValueError("identities must have one entry per person in every frame")

    @property
    def num_frames(self) -> int:
        return len(self.people)
