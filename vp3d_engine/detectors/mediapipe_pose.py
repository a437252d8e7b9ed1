"""MediaPipe BlazePose through mediapipe 0.10.21's legacy ``solutions.pose`` API.

Only ``model_complexity=1`` is bundled in the wheel (0 and 2 download their model at first use),
so that is the one used. BlazePose's 33 landmarks map to COCO-17 by name (nose, eyes, ears,
shoulders, elbows, wrists, hips, knees, ankles; the person's own left and right in both); the score
is BlazePose's per-landmark visibility. Its 3D world landmarks (metres, origin between the hips)
are kept for the ``blazepose-world`` lifter.

BlazePose finds one person. For ``max_people > 1`` (``--person 1`` and up) it runs once per person
on the same frame, each run its own tracker: run ``k`` sees the frame with the people of runs
``0..k-1`` painted out (their segmentation mask joined with thick lines along their skeleton), and
a pose found mostly inside painted-out pixels is the remains of someone already found, not a new
person. Each extra person costs one more BlazePose pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from converters.errors import BackendUnavailableError, ConfigurationError

__all__ = ["BLAZEPOSE_TO_COCO17", "MediaPipePose"]

log = logging.getLogger(__name__)

#: BlazePose landmark index for each COCO-17 keypoint, in COCO order.
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])


#: COCO-17 segments painted over a person already found (limbs, shoulders, hips, neck to nose).
_BODY_LINES = [(5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (5, 6), (11, 12), (5, 11),
               (6, 12), (0, 5), (0, 6)]
_GHOST_INSIDE = 0.4  # share of a pose's keypoints on painted-out pixels that marks it as a leftover


def _body_mask(person: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H,W) uint8``: 1 on a person's body as drawn from its COCO-17 keypoints."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    xy = np.round(person[:, :2]).astype(np.int32)
    diag = float(np.hypot(*(xy.max(axis=0) - xy.min(axis=0))))
    thick = max(3, int(0.12 * diag))
    for a, b in _BODY_LINES:
        cv2.line(mask, (int(xy[a, 0]), int(xy[a, 1])), (int(xy[b, 0]), int(xy[b, 1])), (1,), thick)
    cv2.fillConvexPoly(mask, xy[[5, 6, 12, 11]], (1,))
    head = xy[:5].mean(axis=0)
    cv2.circle(mask, (int(head[0]), int(head[1])), max(thick, int(0.9 * np.linalg.norm(xy[3] - xy[4]))), (1,), -1)
    return mask


# Process calls per pass (after a start or reset) with native stderr sent to nowhere. The graph
# threads print their start-up notes a few calls in; on a loaded machine (2 cores both busy) one
# came after the 5th call, so the spell lasts 30 frames (about a second of video; the progress
# bar is quiet for that long too).
_QUIET_CALLS = 30


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to nowhere, unless debug logging is on:
    MediaPipe's C++ start-up notes ("Created TensorFlow Lite XNNPACK delegate", feedback-manager
    warnings) would otherwise land in the middle of the progress bar. Python's own errors are
    exceptions, not affected."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediaPipePose:
    """BlazePose in video (tracking) mode; ``max_people`` passes per frame (see the module notes)."""

    name = "mediapipe"
    batch_size = 1  # what it can do (ranks people, places hidden joints, ...) is in its registry spec

    def __init__(self, device: str = "cpu", min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, max_people: int = 1) -> None:
        if device not in ("cpu", "auto"):
            raise ConfigurationError("the mediapipe detector runs on the CPU only; use --device cpu or auto")
        os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ start-up chatter out of the CLI
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the mediapipe detector needs mediapipe 0.10.21 ({exc}); run scripts/setup.sh, or use "
                "--keypoints FILE with 2D keypoints from another tool") from None
        if max_people < 1:
            raise ConfigurationError(f"max_people must be 1 or more, not {max_people}")
        with _native_stderr_quiet():
            self._passes = [mp_pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                         enable_segmentation=max_people > 1,
                                         min_detection_confidence=min_detection_confidence,
                                         min_tracking_confidence=min_tracking_confidence) for _ in range(max_people)]
            # The graphs load their models on threads of their own and print as they do: one frame
            # through each, then a fresh start, keeps that inside this quiet spell.
            blank = np.zeros((32, 32, 3), np.uint8)
            for pose in self._passes:
                pose.process(blank)
                pose.reset()
        self._calls = [0] * max_people  # process() calls per pass so far
        self._world: list[np.ndarray | None] = []  # per frame: the first pass's (the main subject's)
        self._world_people: list[list[np.ndarray]] = []  # per frame: one per person kept, as in detect's output

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._detect_frame(image) for image in images]

    def _detect_frame(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        people: list[np.ndarray] = []
        worlds: list[np.ndarray] = []
        self._world_people.append(worlds)
        found = np.zeros((h, w), np.uint8)  # pixels of the people found so far in this frame
        work = image
        for k, pose in enumerate(self._passes):
            if self._calls[k] >= _QUIET_CALLS:
                result = pose.process(work)
            else:  # the first frames build the graph: TFLite and absl print start-up notes on stderr
                with _native_stderr_quiet():
                    result = pose.process(work)
                self._calls[k] += 1
            if k == 0:
                world = result.pose_world_landmarks
                self._world.append(None if world is None else
                                   np.array([(p.x, p.y, p.z, p.visibility) for p in world.landmark]))
            if result.pose_landmarks is None:
                continue
            lm = np.array([(p.x * w, p.y * h, p.visibility) for p in result.pose_landmarks.landmark])
            person = lm[BLAZEPOSE_TO_COCO17]
            person[:, 2] = np.clip(person[:, 2], 0.0, 1.0)
            xi = np.clip(person[:, 0].astype(np.int64), 0, w - 1)
            yi = np.clip(person[:, 1].astype(np.int64), 0, h - 1)
            if found[yi, xi].mean() < _GHOST_INSIDE:
                people.append(person)
                world_people = result.pose_world_landmarks
                worlds.append(np.full((33, 4), np.nan) if world_people is None else
                              np.array([(p.x, p.y, p.z, p.visibility) for p in world_people.landmark]))
            if k + 1 < len(self._passes):
                found |= _body_mask(person, h, w)
                if result.segmentation_mask is not None:
                    found |= (result.segmentation_mask > 0.2).astype(np.uint8)
                work = image.copy()
                work[found > 0] = 0
        return np.stack(people) if people else np.zeros((0, 17, 3))

    def reset(self) -> None:
        """Start a new video: forget the tracked people and the landmarks collected so far."""
        with _native_stderr_quiet():  # a graph restarting prints its start-up notes again
            for pose in self._passes:
                pose.reset()
        self._calls = [0] * len(self._passes)
        self._world.clear()
        self._world_people.clear()

    def extras(self) -> dict[str, Any]:
        return {"blazepose_world": list(self._world), "blazepose_world_people": list(self._world_people)}

    def close(self) -> None:
        with _native_stderr_quiet():  # closing a graph may flush its start-up notes
            for pose in self._passes:
                pose.close()
