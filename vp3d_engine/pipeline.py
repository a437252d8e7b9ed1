"""The 2D-to-3D stages, each a function over a typed value: :func:`detect` (a video, through
:mod:`vp3d_engine.detection`) or :func:`read_2d` (a 2D file) to :class:`Detected`, :func:`track` to
a :class:`~vp3d_engine.tracking.TrackResult`, :func:`lift` to camera-space 3D (label swaps fixed,
the detector's 3D blended in). :func:`run_pipeline` runs them in a row, reporting each stage;
:func:`vp3d_engine.convert.convert` calls it. The lifter's device is chosen once
(``auto`` takes CUDA when torch sees a GPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import ConfigurationError, ConversionError, InputFileError
from converters.types import Keypoints2D, Pose3D
from vp3d_engine.arrays import DEFAULT_FPS
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.options import PipelineOptions
from vp3d_engine.tracking import TrackResult, track_people, track_person
from vp3d_engine.video import DecodeReport, VideoInfo, probe_video

if TYPE_CHECKING:
    from vp3d_engine.camera_motion import CameraMotion
    from vp3d_engine.checkpoints import LoadedLifter
    from vp3d_engine.detectors.registry import DetectorPool

__all__ = ["Detected", "PipelineOptions", "PipelineResult", "check_keypoints_fit_image", "detect", "for_everyone",
           "lift", "load_lifter", "read_2d", "run_people", "run_pipeline", "track", "track_all"]

log = logging.getLogger(__name__)
MIN_FRAMES = 8


@dataclass
class PipelineResult:
    source: str
    keypoints: Keypoints2D
    pose: Pose3D
    track: TrackResult
    info: VideoInfo | None = None
    decode: DecodeReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # MediaPipe's own 3D of the person on the keypoints' frames, not seen where their labels were
    # put right (None: none).
    detector_3d: Pose3D | None = None
    # The camera's rotation per frame (estimated from the video's background; None: not estimated).
    camera: CameraMotion | None = None


def _pick_device(name: str) -> str:
    from vp3d_engine.device import pick_device

    return str(pick_device(name))


def check_keypoints_fit_image(dets: FrameDetections, size: tuple[int, int], source: str | Path,
                              margin: float = 0.5, tolerated: float = 0.05) -> FrameDetections:
    """Refuse keypoints that do not fit the image they claim: more than ``tolerated`` of the scored
    keypoints lie further than ``margin`` times the image's width or height outside it (a wrong
    image size would otherwise lift to joints hundreds of metres away). Returns the detections with
    the few such keypoints left marked missing (score 0, coordinates 0)."""
    w, h = size
    scored = [p[p[..., 2] > 0][:, :2] for p in dets.people if p.size]
    if not scored:
        return dets
    xy = np.concatenate(scored)
    outside = _far_outside(xy, w, h, margin)
    if xy.size and outside.mean() > tolerated:
        raise InputFileError(
            f"{source}: {outside.mean():.0%} of the keypoints lie far outside the {w}x{h}-pixel image they claim "
            f"(x up to {xy[:, 0].max():.4g}, y up to {xy[:, 1].max():.4g}); the image size recorded in the file is "
            "wrong, or its keypoints are not in pixels: correct the file")
    # The few left are detector glitches: missing, not evidence (they would pull the lift far away).
    people = [np.where(_far_outside(p[..., :2].reshape(-1, 2), w, h, margin).reshape(p.shape[:-1])[..., None],
                       0.0, p) for p in dets.people]
    return replace(dets, people=people)


def _far_outside(xy: np.ndarray, w: int, h: int, margin: float) -> np.ndarray:
    return ((xy[:, 0] < -margin * w) | (xy[:, 0] > (1 + margin) * w)
            | (xy[:, 1] < -margin * h) | (xy[:, 1] > (1 + margin) * h))


def _followed_world(dets: FrameDetections, extras: dict[str, Any], kp: Keypoints2D) -> list[np.ndarray | None]:
    """MediaPipe's 3D of the person the track follows: per frame, the detection whose 2D is the
    track's (the nearest, over the joints the track did not fill in); None where no detection is."""
    per_frame = extras["blazepose_world_people"]
    out: list[np.ndarray | None] = []
    for t, found in enumerate(dets.people):
        worlds = per_frame[t] if t < len(per_frame) else []
        valid = kp.valid[t]
        if len(found) == 0 or len(worlds) != len(found) or not valid.any():
            out.append(None)
            continue
        gaps = [float(np.linalg.norm(p[valid, :2] - kp.xy[t, valid], axis=-1).mean()) for p in found]
        best = int(np.argmin(gaps))
        out.append(worlds[best] if gaps[best] < 25.0 and np.isfinite(worlds[best]).all() else None)
    return out


def _detector_pose(dets: FrameDetections, extras: dict[str, Any], kp: Keypoints2D, person: int) -> Pose3D:
    """MediaPipe's own 3D of the person the track follows, on the track's frames."""
    from vp3d_engine.lifters.blazepose_world import blazepose_world_pose

    # A detector that ranks people gives its first person's 3D for every frame (found or not);
    # otherwise the 3D is the detection the track took in each frame.
    first = person == 0 and dets.ranked and "blazepose_world" in extras
    world = extras["blazepose_world"] if first else _followed_world(dets, extras, kp)
    return blazepose_world_pose(world, kp.timestamps, kp.fps)


def _blend(pose: Pose3D, dets: FrameDetections, extras: dict[str, Any], kp: Keypoints2D, person: int,
           opts: PipelineOptions, relabelled: np.ndarray | None) -> tuple[Pose3D, Pose3D | None]:
    """The lifted pose with MediaPipe's own 3D blended in at ``opts.mediapipe_3d`` where there is
    one (the video detected by MediaPipe, or a result file that kept it), and that 3D."""
    from vp3d_engine.lifters.blend import blend_detector_3d, drop_frames

    detector: Pose3D | None = None
    if "blazepose_world_people" in extras:
        if len(extras["blazepose_world_people"]) != kp.num_frames:
            log.warning("MediaPipe's 3D covers %d frames of %d; the lifted pose is used alone",
                        len(extras["blazepose_world_people"]), kp.num_frames)
        else:
            try:
                found = _detector_pose(dets, extras, kp, person)
            except ConversionError:  # no 3D landmarks for the followed person in any frame
                log.info("MediaPipe gave no 3D for this person; the lifted pose is used alone")
            else:
                # Frames without the followed person: the detector's 3D there is someone else's, or none.
                detector = drop_frames(drop_frames(found, relabelled), ~kp.valid.any(axis=1))
    elif "detector_3d" in dets.meta and dets.meta["detector_3d"].shape[0] == kp.num_frames:
        joints, seen = dets.meta["detector_3d"], dets.meta["detector_3d_seen"]
        detector = drop_frames(Pose3D(joints=joints, frame="camera", fps=kp.fps, timestamps=kp.timestamps,
                                      confidence=seen.astype(np.float64)), relabelled)
    if detector is not None and opts.mediapipe_3d > 0:
        return blend_detector_3d(pose, detector, opts.mediapipe_3d), detector
    pose.meta["detector_3d_weight"] = 0.0
    return pose, detector


def _fix_label_swaps(kp: Keypoints2D, pose: Pose3D, lift: Callable[[Keypoints2D], Pose3D]
                     ) -> tuple[Keypoints2D, Pose3D, np.ndarray | None]:
    """The keypoints and pose with the detector's mirrored episodes relabelled (vp3d_engine.swaps),
    and the frames relabelled (None: none)."""
    from vp3d_engine.swaps import fix_label_swaps

    lifted: list[Pose3D] = []

    def relift(k: Keypoints2D) -> np.ndarray:
        lifted.append(lift(k))
        return lifted[-1].joints

    fixed = fix_label_swaps(kp, pose.joints, relift)
    if fixed is None:
        return kp, pose, None
    frames = int(fixed[2].sum())
    log.info("left/right labels put right in %d frames", frames)
    lifted[-1].meta["label_swaps_fixed"] = frames
    return fixed[0], lifted[-1], fixed[2]


def load_lifter(opts: PipelineOptions) -> LoadedLifter | None:
    """The checkpoint ``opts`` asks for, loaded once (None for a lifter that takes its 3D from the
    detector); a batch or a service worker loads it once and passes it to :func:`run_pipeline`."""
    from vp3d_engine.checkpoints import load_checkpoint
    from vp3d_engine.lifters.registry import lifter_spec

    if lifter_spec(opts.lifter).kind == "detector":  # (vp3d_engine.options checks it goes with its detector)
        return None
    return load_checkpoint(opts.checkpoint, device=_pick_device(opts.device))


@dataclass
class Detected:
    """The detect stage's value: every frame's people (from the video, or from a 2D file), the
    detector's extras (MediaPipe's world landmarks), the image size and frame rate the keypoints
    are in, and what the video said about itself."""

    source: str
    dets: FrameDetections
    size: tuple[int, int]
    fps: float
    extras: dict[str, Any] = field(default_factory=dict)
    info: VideoInfo | None = None
    decode: DecodeReport | None = None
    fps_assumed: bool = False


def read_2d(source: str | Path, opts: PipelineOptions) -> Detected:
    """The 2D-file stage: ``opts.keypoints`` read and checked against its image (the size and rate
    from the file, else the options, else the video ``source`` when there is one)."""
    from vp3d_engine.detectors.files import read_keypoints_file

    if opts.keypoints is None:
        raise ConfigurationError("read_2d needs a keypoints file (opts.keypoints)")
    path = Path(source)
    dets = read_keypoints_file(opts.keypoints)
    video = path if path.is_file() and path.resolve() != opts.keypoints.resolve() else None
    size, fps = opts.image_size or dets.image_size, opts.fps or dets.fps
    info = None
    if (size is None or fps is None) and video is not None:
        info = probe_video(video)
        size, fps = size or (info.width, info.height), fps or info.fps
    if size is None:
        raise InputFileError(f"{opts.keypoints} does not record the image size the keypoints are measured in; "
                             "give it with --image-size WIDTHxHEIGHT (pixels), or give the video too")
    assumed = fps is None
    if fps is None:
        fps = DEFAULT_FPS
        log.info("%s does not record its frame rate; %g fps assumed (give --fps)", opts.keypoints, fps)
    camera = dets.meta.get("camera_motion")  # a result file's: its camera's turns taken out again
    return Detected(source=str(source), dets=check_keypoints_fit_image(dets, size, opts.keypoints), size=size,
                    fps=fps, info=info, fps_assumed=assumed,
                    extras={} if camera is None or opts.camera == "static" else {"camera_motion": camera})


def detect(source: str | Path, opts: PipelineOptions, progress: Callable[[float], None] | None = None,
           detectors: DetectorPool | None = None) -> Detected:
    """The detect stage on a video: ``progress(fraction)``, the share of the frames to detect done;
    ``detectors``: a pool that keeps the detector loaded between videos."""
    from vp3d_engine.detection import detect_video, detection_span

    path = Path(source)
    info = probe_video(path)
    report = DecodeReport()
    start, end = detection_span(opts, info)
    span = (end - start) if end is not None else None

    def detected(t: float) -> None:
        if progress is not None and span:
            progress(min(1.0, max(0.0, (t - start) / span)))

    dets, extras = detect_video(path, opts, info, report, detected, detectors)
    if report.damaged:
        log.warning("%s: the video is damaged; %d packets could not be decoded, %d frames were",
                    source, report.damaged_packets, report.yielded)
    return Detected(source=str(source), dets=dets, size=(info.width, info.height), fps=info.fps / opts.stride,
                    extras=extras, info=info, decode=report)


def for_everyone(opts: PipelineOptions) -> PipelineOptions:
    """The options as they run: ``--person all`` on a video takes the detector that finds everyone in
    every frame (each person from their own crop) in place of one that looks for one person at a
    time (:attr:`~vp3d_engine.detectors.registry.DetectorSpec.everyone`)."""
    from vp3d_engine.detectors.registry import detector_spec

    if opts.person == "all" and opts.keypoints is None:
        other = detector_spec(opts.detector).everyone
        if other and other != opts.detector:
            log.info("--person all: detector %s finds everyone in each frame (in place of %s)", other, opts.detector)
            return replace(opts, detector=other)
    return opts


def _enough_frames(detected: Detected) -> None:
    if detected.dets.num_frames < MIN_FRAMES:
        raise InputFileError(f"{detected.source}: only {detected.dets.num_frames} frames; vp3d needs at least "
                             f"{MIN_FRAMES} (about a third of a second) to estimate motion")


def track(detected: Detected, opts: PipelineOptions) -> TrackResult:
    """The track stage: the person ``opts.person`` followed through the detections, gaps filled."""
    if not isinstance(opts.person, int):
        raise ConfigurationError("track follows one person; track_all follows everyone (person all)")
    _enough_frames(detected)
    return track_person(detected.dets, detected.size, detected.fps, person=opts.person)


def track_all(detected: Detected, opts: PipelineOptions) -> list[TrackResult]:
    """The track stage for ``--person all``: everyone seen in at least ``opts.min_presence`` of the
    frames, in ``--person N`` order; for a number, that one person."""
    if isinstance(opts.person, int):
        return [track(detected, opts)]
    _enough_frames(detected)
    return track_people(detected.dets, detected.size, detected.fps, min_presence=opts.min_presence)


def lift(detected: Detected, tracked: TrackResult, opts: PipelineOptions, lifter: LoadedLifter | None
         ) -> tuple[Keypoints2D, Pose3D, Pose3D | None]:
    """The lift stage: the followed person's 2D to camera-space 3D by ``lifter`` (None: the
    detector's own 3D), with mirrored stretches relabelled and the detector's 3D blended in as the
    options say. Returns the keypoints lifted (relabelled), the pose, and the detector's 3D."""
    from vp3d_engine.lifting import lift_keypoints

    dets, extras, keypoints = detected.dets, detected.extras, tracked.keypoints
    person = int(keypoints.meta.get("person", 0))
    detector_3d: Pose3D | None = None
    if lifter is None:
        from vp3d_engine.world_stage import camera_turns, turn_to_first_frame

        pose = _detector_pose(dets, extras, keypoints, person)
        turns = camera_turns(extras.get("camera_motion"), pose.timestamps, opts.camera)
        if turns is not None:  # as lift_keypoints takes them out for a checkpoint's pose
            pose = turn_to_first_frame(pose, turns)
            pose.meta["camera_turns"] = "taken out"
    else:
        device = _pick_device(opts.device)
        from vp3d_engine.world_stage import camera_turns

        camera = detected.extras.get("camera_motion")  # its turns taken out (world_stage.camera_turns)
        turns = camera_turns(camera, keypoints.timestamps, opts.camera)

        def lift_once(kp: Keypoints2D) -> Pose3D:
            return lift_keypoints(kp, lifter, device=device, flip=opts.flip, resample=opts.resample,
                                  trajectory=opts.trajectory, turns=turns,
                                  focal=None if camera is None else float(camera.focal_px))

        pose = lift_once(keypoints)
        relabelled = None
        if opts.label_swaps == "fix":
            keypoints, pose, relabelled = _fix_label_swaps(keypoints, pose, lift_once)
        pose, detector_3d = _blend(pose, dets, extras, tracked.keypoints, person, opts, relabelled)
    if detected.fps_assumed:
        pose.meta["fps_assumed"] = True
    if not np.isfinite(pose.joints).all():
        raise ConversionError(f"{detected.source}: the lifter produced non-finite joints")
    return keypoints, pose, detector_3d


def run_pipeline(source: str | Path, opts: PipelineOptions | None = None,
                 report: Callable[[str, float], None] | None = None, lifter: LoadedLifter | None = None,
                 detectors: DetectorPool | None = None, checked: bool = False) -> PipelineResult:
    """The 2D-to-3D stages in a row (:func:`detect` or :func:`read_2d`, :func:`track`, :func:`lift`):
    a video (or, with ``opts.keypoints``, a keypoint file) to 2D keypoints and camera-space 3D of
    the person ``opts.person`` (a number; :func:`run_people` takes ``all``).
    ``report(stage, fraction)``: each stage as it starts (``detect`` also as the share of the
    video's frames detected so far grows). ``lifter``: a checkpoint loaded earlier with
    :func:`load_lifter` (else loaded here); ``detectors``: a pool that keeps the detector loaded
    between videos. The options are checked first (:func:`~vp3d_engine.options.check_options`)
    unless the caller has (``checked``)."""
    opts = opts or PipelineOptions()
    if not isinstance(opts.person, int):
        raise ConfigurationError("run_pipeline converts one person; run_people converts everyone (person all)")
    return run_people(source, opts, report, lifter, detectors, checked)[0]


def run_people(source: str | Path, opts: PipelineOptions | None = None,
               report: Callable[[str, float], None] | None = None, lifter: LoadedLifter | None = None,
               detectors: DetectorPool | None = None, checked: bool = False) -> list[PipelineResult]:
    """:func:`run_pipeline` for ``opts.person``, a number (one result) or ``all`` (one result per
    person, in ``--person N`` order; the 2D detected once, each person lifted on their own)."""
    from vp3d_engine.options import ConvertOptions, check_options

    opts = opts or PipelineOptions()
    say = report or (lambda stage, fraction: None)
    if not checked:
        check_options(ConvertOptions(pipeline=opts), local=lifter is None)
    opts = for_everyone(opts)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if lifter is None:
        lifter = load_lifter(opts)
    timings["load_s"] = time.perf_counter() - t0
    say("detect", 0.0)
    t1 = time.perf_counter()
    found = read_2d(source, opts) if opts.keypoints is not None else detect(
        source, opts, lambda fraction: say("detect", fraction), detectors)
    timings["decode_detect_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    say("track", 0.0)
    people = track_all(found, opts)
    results = []
    for n, tracked in enumerate(people):
        say("lift", n / len(people))
        keypoints, pose, detector_3d = lift(found, tracked, opts, lifter)
        pose.meta["detector"] = opts.detector if opts.keypoints is None else "keypoints file"  # the one that ran
        results.append(PipelineResult(source=str(source), keypoints=keypoints, pose=pose, track=tracked,
                                      info=found.info, decode=found.decode, timings=timings,
                                      detector_3d=detector_3d, camera=found.extras.get("camera_motion")))
    timings["track_lift_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    say("lift", 1.0)
    return results
