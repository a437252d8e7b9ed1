"""MediaPipe BlazePose through mediapipe 0.10.21's legacy ``solutions.pose`` API.

Only ``model_complexity=1`` is bundled in the wheel (0 and 2 download their model at first use),
so that is the one used. BlazePose's 33 landmarks map to COCO-17 by name (nose, eyes, ears,
shoulders, elbows, wrists, hips, knees, ankles; the person's own left and right in both); the score
is BlazePose's per-landmark visibility. Its 3D world landmarks (metres, origin between the hips)
are kept for the ``blazepose-world`` lifter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from converters.errors import BackendUnavailableError, ConfigurationError

__all__ = ["BLAZEPOSE_TO_COCO17", "MediaPipePose"]

log = logging.getLogger(__name__)

#: BlazePose landmark index for each COCO-17 keypoint, in COCO order.
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])


class MediaPipePose:
    """Single-person BlazePose in video (tracking) mode."""

    name = "mediapipe"
    batch_size = 1

    def __init__(self, device: str = "cpu", min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        if device not in ("cpu", "auto"):
            raise ConfigurationError("the mediapipe detector runs on the CPU only; use --device cpu or auto")
        os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ start-up chatter out of the CLI
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the mediapipe detector needs mediapipe 0.10.21 ({exc}); run scripts/setup.sh, or use "
                "--keypoints FILE with 2D keypoints from another tool") from None
        self._pose = mp_pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                  enable_segmentation=False, min_detection_confidence=min_detection_confidence,
                                  min_tracking_confidence=min_tracking_confidence)
        self._world: list[np.ndarray | None] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for image in images:
            h, w = image.shape[:2]
            result = self._pose.process(image)
            if result.pose_landmarks is None:
                out.append(np.zeros((0, 17, 3)))
                self._world.append(None)
                continue
            lm = np.array([(p.x * w, p.y * h, p.visibility) for p in result.pose_landmarks.landmark])
            person = lm[BLAZEPOSE_TO_COCO17]
            person[:, 2] = np.clip(person[:, 2], 0.0, 1.0)
            out.append(person[None])
            world = result.pose_world_landmarks
            self._world.append(None if world is None else
                               np.array([(p.x, p.y, p.z, p.visibility) for p in world.landmark]))
        return out

    def extras(self) -> dict[str, Any]:
        return {"blazepose_world": list(self._world)}

    def close(self) -> None:
        self._pose.close()
