"""Screen normalisation of 2D keypoints, part of a checkpoint's input contract.

``screen`` is VideoPose3D's aspect-preserving mapping: ``x_n = 2 x / w - 1``,
``y_n = 2 y / w - h / w`` (pixels to a range where the image width spans [-1, 1]). Mirroring the
image (``x -> w - x``) becomes ``x_n -> -x_n``.
"""

from __future__ import annotations

import numpy as np

from converters.errors import ConfigurationError

__all__ = ["NORMALIZATIONS", "normalize_keypoints", "unnormalize_keypoints"]

NORMALIZATIONS = ("screen",)


def _check(kind: str) -> None:
    if kind not in NORMALIZATIONS:
        raise ConfigurationError(f"unknown normalisation {kind!r}; known: {', '.join(NORMALIZATIONS)}")


def normalize_keypoints(xy: np.ndarray, width: np.ndarray | float, height: np.ndarray | float,
                        kind: str = "screen") -> np.ndarray:
    """Pixels ``(..., 2)`` to normalised coordinates; ``width``/``height`` broadcast against
    ``xy[..., 0]``."""
    _check(kind)
    w = np.asarray(width, dtype=xy.dtype)[..., None]
    h = np.asarray(height, dtype=xy.dtype)[..., None]
    offset = np.concatenate([np.ones_like(w), h / w], axis=-1)
    return xy / w * 2 - offset


def unnormalize_keypoints(xy_n: np.ndarray, width: np.ndarray | float, height: np.ndarray | float,
                          kind: str = "screen") -> np.ndarray:
    """Inverse of :func:`normalize_keypoints`."""
    _check(kind)
    w = np.asarray(width, dtype=np.float64)[..., None]
    h = np.asarray(height, dtype=np.float64)[..., None]
    offset = np.concatenate([np.ones_like(w), h / w], axis=-1)
    return (xy_n + offset) * w / 2.0
