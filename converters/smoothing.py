"""Temporal smoothing of joint trajectories, chosen by name (numpy and scipy).

``smooth(values (T,...), fps, spec)`` filters every coordinate over time. ``spec`` is a name with
optional parameters, as the CLI takes it:

- ``none``;
- ``oneeuro`` (``mincutoff`` Hz, ``beta`` s/m, ``dcutoff`` Hz; Casiez et al., CHI 2012): a low-pass
  whose cutoff rises with speed, so slow motion is steadied and fast motion keeps up; run forward
  and backward, so it does not lag;
- ``savgol`` (``window`` seconds, ``order``): Savitzky-Golay, a local polynomial fit that keeps peaks;
- ``butter`` (``cutoff`` Hz, ``order``): a Butterworth low-pass run forward and backward, no lag.

E.g. ``oneeuro:mincutoff=3,beta=1``. The defaults are for joints in metres.

``auto`` is what vp3d does unless told: :data:`DEFAULT_SMOOTHING` on lifted joints (chosen by
measurement: ``vp3d evaluate --world`` on the validation takes with detector noise; see
``benchmarks/world_cleanup.py``), nothing on motion capture, which is clean already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from converters.errors import ConfigurationError

__all__ = ["DEFAULT_SMOOTHING", "FILTERS", "SmoothSpec", "parse_smooth", "resolve_smoothing", "smooth"]


@dataclass(frozen=True)
class SmoothSpec:
    name: str
    params: dict[str, float]

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v:g}" for k, v in sorted(self.params.items()))


def _one_euro(values: np.ndarray, fps: float, mincutoff: float, beta: float, dcutoff: float) -> np.ndarray:
    """Run forward, then backward over the result: the lag of the causal filter cancels (a whole clip
    is at hand, unlike in the real-time use it was designed for)."""
    forward = _one_euro_pass(values, fps, mincutoff, beta, dcutoff)
    return _one_euro_pass(forward[::-1], fps, mincutoff, beta, dcutoff)[::-1].copy()


def _one_euro_pass(values: np.ndarray, fps: float, mincutoff: float, beta: float, dcutoff: float) -> np.ndarray:
    def alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(values)
    out[0] = values[0]
    dx_hat = np.zeros_like(values[0])
    for t in range(1, len(values)):  # a recursive filter: one step per frame, all coordinates at once
        dx = (values[t] - out[t - 1]) * fps
        a_d = alpha(dcutoff)
        dx_hat = a_d * dx + (1 - a_d) * dx_hat
        a = alpha(mincutoff + beta * np.abs(dx_hat))
        out[t] = a * values[t] + (1 - a) * out[t - 1]
    return out


def _savgol(values: np.ndarray, fps: float, window: float, order: float) -> np.ndarray:
    from scipy.signal import savgol_filter

    frames = max(int(order) + 2, round(window * fps)) | 1  # odd, longer than the polynomial order
    if frames > len(values):
        return values.copy()
    return savgol_filter(values, frames, int(order), axis=0, mode="interp")


def _butter(values: np.ndarray, fps: float, cutoff: float, order: float) -> np.ndarray:
    from scipy.signal import butter, filtfilt

    nyquist = fps / 2
    if cutoff >= nyquist:
        return values.copy()
    b, a = butter(int(order), cutoff / nyquist)
    if len(values) <= 3 * max(len(a), len(b)):
        return values.copy()
    return filtfilt(b, a, values, axis=0)


#: name -> (function, default parameters, allowed ranges)
FILTERS: dict[str, tuple[Callable[..., np.ndarray] | None, dict[str, float], dict[str, tuple[float, float]]]] = {
    "none": (None, {}, {}),
    "oneeuro": (_one_euro, {"mincutoff": 3.0, "beta": 1.0, "dcutoff": 1.0},
                {"mincutoff": (0.001, 100.0), "beta": (0.0, 100.0), "dcutoff": (0.001, 100.0)}),
    "savgol": (_savgol, {"window": 0.25, "order": 2}, {"window": (0.01, 10.0), "order": (1, 5)}),
    "butter": (_butter, {"cutoff": 6.0, "order": 4}, {"cutoff": (0.1, 100.0), "order": (1, 8)}),
}


DEFAULT_SMOOTHING = "oneeuro"


def resolve_smoothing(text: str, lifted: bool) -> str:
    """The filter ``text`` names, written out in full; ``auto``: :data:`DEFAULT_SMOOTHING` for
    ``lifted`` joints (from video), ``none`` for joints recorded in world space."""
    if text.strip() == "auto":
        text = DEFAULT_SMOOTHING if lifted else "none"
    return str(parse_smooth(text))


def parse_smooth(text: str) -> SmoothSpec:
    """``name`` or ``name:key=value,...`` to a :class:`SmoothSpec` with every parameter filled and
    checked; a :class:`ConfigurationError` that names the choices otherwise."""
    name, _, rest = text.strip().partition(":")
    if name not in FILTERS:
        raise ConfigurationError(f"unknown smoothing {name!r}; choose one of auto, {', '.join(FILTERS)}")
    _, defaults, ranges = FILTERS[name]
    params = dict(defaults)
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in defaults:
            raise ConfigurationError(f"smoothing {name} takes {', '.join(defaults) or 'no parameters'}; "
                                     f"not {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigurationError(f"smoothing {name}: {key}={value!r} is not a number") from None
        low, high = ranges[key]
        if not low <= number <= high:  # NaN fails too
            raise ConfigurationError(f"smoothing {name}: {key} must be from {low:g} to {high:g}, not {value}")
        params[key] = number
    return SmoothSpec(name, params)


def smooth(values: np.ndarray, fps: float, spec: SmoothSpec | str) -> np.ndarray:
    """``values (T,...)`` filtered over time (a copy; ``none`` returns it unchanged)."""
    spec = parse_smooth(spec) if isinstance(spec, str) else spec
    function = FILTERS[spec.name][0]
    if function is None or len(values) < 3:
        return values.copy()
    flat = values.reshape(len(values), -1).astype(np.float64)
    return np.asarray(function(flat, fps, **spec.params)).reshape(values.shape)
