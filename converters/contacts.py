"""Foot contacts: which foot is on the floor in each frame, from world-space joints (numpy only).

A foot is in contact when its ankle is low (near the lowest the ankle gets in the clip) and
still (slow horizontally), with hysteresis: contact starts below ``height_on`` and ``speed_on`` and
ends above ``height_off`` or ``speed_off``, so noise around one threshold does not flicker. Speeds
are central differences of positions smoothed over ``smooth_s`` seconds. Contacts shorter than
``min_s`` seconds are dropped (a foot brushing the floor mid-swing).

World space is vp3d's: Y up, metres (see :mod:`converters.world`). Human3.6M joints have ankles but
no toes, so the ankle stands for the foot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.joints import H36M17

__all__ = ["ContactThresholds", "foot_contacts"]

_ANKLES = (H36M17.index("left_ankle"), H36M17.index("right_ankle"))


@dataclass(frozen=True)
class ContactThresholds:
    """Metres above the ankle's low level, and metres per second."""

    height_on: float = 0.06
    height_off: float = 0.10
    speed_on: float = 0.35
    speed_off: float = 0.65
    smooth_s: float = 0.1
    min_s: float = 0.1


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Moving average over ``frames`` (odd) along axis 0, edges held."""
    if frames < 2:
        return x
    pad = frames // 2
    padded = np.concatenate([np.repeat(x[:1], pad, axis=0), x, np.repeat(x[-1:], pad, axis=0)])
    c = np.cumsum(padded, axis=0)
    c = np.concatenate([np.zeros_like(c[:1]), c])
    return (c[frames:] - c[:-frames]) / frames


def foot_contacts(joints: np.ndarray, fps: float, thresholds: ContactThresholds | None = None) -> np.ndarray:
    """``(T,2)`` bool: left and right foot in contact, from world joints ``(T,17,3)`` (Y up)."""
    th = thresholds or ContactThresholds()
    t = joints.shape[0]
    feet = joints[:, list(_ANKLES)]  # (T,2,3)
    window = max(1, round(th.smooth_s * fps) | 1)
    smooth = _smooth(feet, window)
    if t > 1:
        velocity = np.gradient(smooth[..., [0, 2]], axis=0) * fps
        speed = np.linalg.norm(velocity, axis=-1)  # horizontal, m/s
    else:
        speed = np.zeros((t, 2))
    low = np.percentile(smooth[..., 1], 5, axis=0)  # each ankle's level when down
    height = smooth[..., 1] - low
    on = (height < th.height_on) & (speed < th.speed_on)
    off = (height > th.height_off) | (speed > th.speed_off)
    contact = np.zeros((t, 2), dtype=bool)
    state = on[0].copy()
    for k in range(t):  # hysteresis: a short loop over frames of two booleans
        state = np.where(state, ~off[k], on[k])
        contact[k] = state
    shortest = max(1, round(th.min_s * fps))
    for foot in range(2):
        contact[:, foot] = _drop_short_runs(contact[:, foot], shortest)
    return contact


def _drop_short_runs(flags: np.ndarray, shortest: int) -> np.ndarray:
    out = flags.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start < shortest:
            out[start:stop] = False
    return out
