"""Resampling sequences over time (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["resample_times"]


def resample_times(values: np.ndarray, times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values (T,...)`` given at ``times (T,)`` onto ``new_times``
    (held at the ends)."""
    if values.shape[0] == 1:
        return np.repeat(values, len(new_times), axis=0)
    flat = values.reshape(values.shape[0], -1)
    out = np.stack([np.interp(new_times, times, flat[:, i]) for i in range(flat.shape[1])], axis=1)
    return out.reshape((len(new_times), *values.shape[1:]))
