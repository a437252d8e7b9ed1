"""MediaPipe's smoothing of one followed person's pose landmarks, frame after frame (numpy).

MediaPipe's pose solution (``smooth_landmarks=True``, as the ``mediapipe`` detector runs it)
passes each frame's landmarks through filters kept for the person it follows, and sets the next
frame's region from the filtered alignment points; ``blazepose-multi`` does the same for each person
it follows (fresh filters for a person found anew). The settings are those of MediaPipe 0.10.21's
``PoseLandmarkFiltering`` graph:

- visibility: a low-pass filter, ``v = 0.1 v_new + 0.9 v``;
- image landmarks (pixels): a one-euro filter per coordinate, ``min_cutoff`` 0.05 Hz, ``beta``
  80, derivative cutoff 1 Hz, the speed measured in body sizes per second (the body size: twice the
  distance between the two alignment points, in pixels);
- the two alignment points (hips, and the point that sets the body's size): one-euro, 0.01 Hz, 10;
- world landmarks (metres): one-euro, 0.1 Hz, 40, the speed in metres per second.

The frame rate is MediaPipe's solution's: 30 frames a second, whatever the video's.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FRAME_RATE", "LandmarkSmoothing", "OneEuro"]

#: The frame rate MediaPipe's solution gives its filters (its frames are 1/30 s apart).
FRAME_RATE = 30.0
VISIBILITY_ALPHA = 0.1


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return np.asarray(1.0 / (1.0 + tau * rate))


class OneEuro:
    """A one-euro filter over arrays of values (each value its own filter), as MediaPipe writes
    it: the speed from the last raw values, low-passed at ``derivative_cutoff``; the value
    low-passed at ``min_cutoff + beta x |speed|`` (Hz). The first call returns its values as given."""

    def __init__(self, min_cutoff: float, beta: float, derivative_cutoff: float = 1.0,
                 rate: float = FRAME_RATE) -> None:
        self.min_cutoff, self.beta, self.derivative_cutoff, self.rate = min_cutoff, beta, derivative_cutoff, rate
        self._raw: np.ndarray | None = None
        self._value = np.zeros(0)
        self._speed = np.zeros(0)

    def __call__(self, value: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """``value`` filtered; ``scale`` turns a change of value into the units ``beta`` is set for."""
        value = np.asarray(value, np.float64)
        if self._raw is None:
            self._raw, self._value, self._speed = value.copy(), value.copy(), np.zeros_like(value)
            return value.copy()
        speed = (value - self._raw) * scale * self.rate
        a = _alpha(self.derivative_cutoff, self.rate)
        self._speed = a * speed + (1.0 - a) * self._speed
        a = _alpha(self.min_cutoff + self.beta * np.abs(self._speed), self.rate)
        self._value = a * value + (1.0 - a) * self._value
        self._raw = value.copy()
        return self._value.copy()


class LandmarkSmoothing:
    """The filters of one followed person (:meth:`apply` once per frame they are found in)."""

    def __init__(self) -> None:
        self._landmarks = OneEuro(0.05, 80.0)
        self._alignment = OneEuro(0.01, 10.0)
        self._world = OneEuro(0.1, 40.0)
        self._visibility: np.ndarray | None = None
        self._world_visibility: np.ndarray | None = None

    def apply(self, landmarks: np.ndarray, alignment: np.ndarray, world: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This frame's ``landmarks (N,3)`` (x, y pixels, visibility), ``alignment (2,2)`` pixels
        and ``world (M,4)`` (x, y, z metres, visibility), filtered."""
        body = 2.0 * float(np.linalg.norm(alignment[1] - alignment[0]))  # MediaPipe's object scale
        out = landmarks.astype(np.float64, copy=True)
        if body > 1e-6:  # MediaPipe passes a pose of no size through unfiltered
            out[:, :2] = self._landmarks(landmarks[:, :2], 1.0 / body)
            alignment = self._alignment(alignment, 1.0 / body)
        self._visibility = out[:, 2] = _low_pass(landmarks[:, 2], self._visibility)
        world_out = world.astype(np.float64, copy=True)
        world_out[:, :3] = self._world(world[:, :3])
        self._world_visibility = world_out[:, 3] = _low_pass(world[:, 3], self._world_visibility)
        return out, alignment, world_out


def _low_pass(value: np.ndarray, last: np.ndarray | None) -> np.ndarray:
    value = np.asarray(value, np.float64)
    return value.copy() if last is None else VISIBILITY_ALPHA * value + (1.0 - VISIBILITY_ALPHA) * last
