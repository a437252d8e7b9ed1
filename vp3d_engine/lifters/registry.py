"""Registry of lifters: name -> description and default architecture.

Importing this module is cheap (no torch); :func:`build_temporal_model` imports torch when a
model is actually built. CLI choices and menus are generated from :func:`lifter_names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from converters.errors import ConfigurationError

if TYPE_CHECKING:
    from vp3d_engine.lifters.temporal import TemporalModelBase

__all__ = ["LifterSpec", "build_temporal_model", "lifter_names", "lifter_spec", "register_lifter"]


@dataclass(frozen=True)
class LifterSpec:
    """A named lifter. ``architecture`` holds the defaults for a new model of this kind
    (``filter_widths``, ``channels``, ``dropout``, ``causal``, ``dense``)."""

    name: str
    description: str
    architecture: dict[str, Any] = field(default_factory=dict)
    #: "checkpoint": a temporal model loaded from --checkpoint; "detector": 3D that comes with
    #: the 2D detector's own output (no checkpoint)
    kind: str = "checkpoint"
    #: not offered as a choice for conversions (a training architecture only)
    internal: bool = False


_LIFTERS: dict[str, LifterSpec] = {}


def register_lifter(spec: LifterSpec) -> LifterSpec:
    if spec.name in _LIFTERS:
        raise ConfigurationError(f"lifter {spec.name!r} is registered twice")
    _LIFTERS[spec.name] = spec
    return spec


def lifter_names(public: bool = False) -> list[str]:
    """Registered lifters; ``public``: only those a conversion may use."""
    return sorted(n for n, spec in _LIFTERS.items() if not (public and spec.internal))


def lifter_spec(name: str) -> LifterSpec:
    try:
        return _LIFTERS[name]
    except KeyError:
        raise ConfigurationError(f"unknown lifter {name!r}; known: {', '.join(lifter_names())}") from None


def build_temporal_model(
    architecture: dict[str, Any], num_joints_in: int, num_joints_out: int,
    in_features: int = 2, optimized_1f: bool = False,
) -> TemporalModelBase:
    """Build a (dilated or strided-1f) temporal model from an architecture dict."""
    from vp3d_engine.lifters.temporal import TemporalModel, TemporalModelOptimized1f

    widths = [int(w) for w in architecture["filter_widths"]]
    causal = bool(architecture.get("causal", False))
    dropout = float(architecture.get("dropout", 0.25))
    channels = int(architecture["channels"])
    if optimized_1f:
        if architecture.get("dense", False):
            raise ConfigurationError("dense models have no strided 1f twin; train without --dense")
        return TemporalModelOptimized1f(num_joints_in, in_features, num_joints_out, widths, causal, dropout, channels)
    return TemporalModel(num_joints_in, in_features, num_joints_out, widths, causal, dropout, channels,
                         dense=bool(architecture.get("dense", False)))


register_lifter(LifterSpec(
    name="videopose3d",
    description="VideoPose3D temporal CNN (Pavllo et al. 2019); the shipped default checkpoint",
    architecture={"filter_widths": [3, 3, 3, 3, 3], "channels": 1024, "dropout": 0.25,
                  "causal": False, "dense": False},
))
register_lifter(LifterSpec(
    name="test",
    description="tiny temporal CNN (9 frames, 16 channels) for fast tests",
    architecture={"filter_widths": [3, 3], "channels": 16, "dropout": 0.0, "causal": False, "dense": False},
    internal=True,
))
register_lifter(LifterSpec(
    name="blazepose-world",
    description="MediaPipe BlazePose's own 3D world landmarks (with --detector mediapipe), for comparison",
    kind="detector",
))
