"""Registry of 2D detectors: name -> description and a factory imported on demand.

A detector turns RGB frames into people: ``detect(images) -> list[(N,17,3)]`` (COCO-17 pixels and
scores per person, see :class:`~vp3d_engine.detectors.types.FrameDetections`). Batches let a GPU
backend work on several frames at once; the CPU backends take them one by one. ``device`` is
``cpu`` or ``cuda``; a backend that cannot use the device asked for says so.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from converters.errors import ConfigurationError

__all__ = ["Detector", "DetectorPool", "DetectorSpec", "create_detector", "detector_names", "detector_spec"]


class Detector(Protocol):
    """What every detector backend provides."""

    name: str
    batch_size: int

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """RGB ``(H,W,3) uint8`` frames, in order, to ``(N,17,3)`` arrays of (x, y, score)."""
        ...

    def extras(self) -> dict[str, Any]:
        """Backend-specific per-frame outputs collected so far (e.g. 3D world landmarks)."""
        ...

    def close(self) -> None: ...


class DetectorPool:
    """Detectors kept open between videos (a batch, a service or cluster worker), so each is
    loaded once: ``acquire`` hands out an idle one for the same name, device and options (or
    makes one) for one thread's exclusive use, started afresh with its ``reset()``; ``release``
    takes it back (``broken=True`` closes it instead, after an error left it in doubt). Backends
    without ``reset`` are made for each video. Thread-safe."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, tuple[tuple[str, Any], ...]], list[Detector]] = {}
        self._keys: dict[int, tuple[str, str, tuple[tuple[str, Any], ...]]] = {}
        self._lock = threading.Lock()
        self.created = 0

    def acquire(self, name: str, device: str = "cpu", **options: Any) -> Detector:
        key = (name, device, tuple(sorted(options.items())))
        with self._lock:
            idle = self._idle.get(key)
            detector = idle.pop() if idle else None
        if detector is None:
            detector = create_detector(name, device=device, **options)
            with self._lock:
                self.created += 1
        else:
            detector.reset()  # type: ignore[attr-defined]
        with self._lock:
            self._keys[id(detector)] = key
        return detector

    def release(self, detector: Detector, broken: bool = False) -> None:
        with self._lock:
            key = self._keys.pop(id(detector), None)
        if broken or key is None or not hasattr(detector, "reset"):
            detector.close()
            return
        with self._lock:
            self._idle.setdefault(key, []).append(detector)

    def close(self) -> None:
        with self._lock:
            idle = [d for ds in self._idle.values() for d in ds]
            self._idle.clear()
        for detector in idle:
            detector.close()


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    description: str
    factory: str  # "module:callable", imported only when the detector is created
    extra: str  # pip extra or package that provides the backend
    #: not offered as a choice at the doors (chosen by the pipeline itself)
    internal: bool = False
    # What the backend can do, for the pipeline to read here rather than probe the detector for:
    #: its people come in a stable order (person 0 is the same person however many are asked for),
    #: so the tracker keeps its order instead of ranking tracks itself
    ranks_people: bool = False
    #: a keypoint's score is its visibility, and hidden keypoints are still placed (kept, not filled)
    places_hidden_joints: bool = False
    #: it also gives each person's 3D world landmarks (extras ``blazepose_world``): a lifter of kind
    #: ``detector`` can take its 3D from it, and it can be blended into the lifted pose
    world_landmarks: bool = False
    #: it takes ``max_people``, the people to look for per frame, in its own ranked order (so
    #: ``--person N`` asks for N + 1)
    max_people: bool = False
    #: a clip may be split across worker processes by time (one core each, no shared state)
    splits_in_time: bool = False
    #: it follows each person from frame to frame and says who is who (extras ``identities``)
    follows_people: bool = False
    #: the detector ``--person all`` runs in its place (one that finds everyone in every frame, from
    #: each person's own crop); empty: this one
    everyone: str = ""


_DETECTORS: dict[str, DetectorSpec] = {}


def register_detector(spec: DetectorSpec) -> DetectorSpec:
    if spec.name in _DETECTORS:
        raise ConfigurationError(f"detector {spec.name!r} is registered twice")
    _DETECTORS[spec.name] = spec
    return spec


def detector_names(public: bool = False) -> list[str]:
    """Registered detectors; ``public``: only those a user may choose."""
    return [n for n, spec in _DETECTORS.items() if not (public and spec.internal)]


def detector_spec(name: str) -> DetectorSpec:
    try:
        return _DETECTORS[name]
    except KeyError:
        raise ConfigurationError(f"unknown detector {name!r}; known: {', '.join(detector_names())}") from None


def create_detector(name: str, device: str = "cpu", **options: Any) -> Detector:
    spec = detector_spec(name)
    module_name, _, attr = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    detector: Detector = factory(device=device, **options)
    return detector


register_detector(DetectorSpec(
    name="mediapipe",
    description="MediaPipe BlazePose (model_complexity=1, bundled, CPU, offline); one person per frame",
    factory="vp3d_engine.detectors.mediapipe_pose:MediaPipePose",
    extra="mediapipe (installed by scripts/setup.sh)",
    ranks_people=True, places_hidden_joints=True, world_landmarks=True, max_people=True, splits_in_time=True,
    everyone="blazepose-multi",
))
register_detector(DetectorSpec(
    name="blazepose-multi",
    description="every person in the frame: MediaPipe's pose detector, then BlazePose's landmarks on each person's "
                "own crop, followed from frame to frame (the models in the mediapipe wheel, run with tflite-runtime); "
                "CPU, offline",
    factory="vp3d_engine.detectors.blazepose_multi:BlazePoseMulti",
    extra="tflite-runtime (installed by scripts/setup.sh; Linux)",
    places_hidden_joints=True, world_landmarks=True, splits_in_time=True, follows_people=True,
))
register_detector(DetectorSpec(
    name="precomputed",
    description="2D keypoints from a file written by another tool (use --keypoints FILE): VideoPose3D npz, "
                "Detectron2 npz, COCO results JSON, OpenPose JSON folder, vp3d's own 2D file",
    factory="vp3d_engine.detectors.files:precomputed_detector",
    extra="none",
    internal=True,
))
