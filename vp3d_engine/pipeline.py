"""The video pipeline: decode, detect, track, lift; one function, typed results.

Decoding runs on a background thread (PyAV releases the GIL) so it hides behind detection. The
lifter's device is chosen once (``auto`` takes CUDA when torch sees a GPU).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import ConfigurationError, ConversionError, InputFileError
from converters.options import option
from converters.types import Keypoints2D, Pose3D
from vp3d_engine.arrays import DEFAULT_FPS
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.tracking import TrackResult, track_person
from vp3d_engine.video import DecodeReport, Frame, VideoInfo, iter_frames, probe_video

if TYPE_CHECKING:
    from vp3d_engine.checkpoints import LoadedLifter
    from vp3d_engine.detectors.registry import DetectorPool

__all__ = ["PipelineOptions", "PipelineResult", "check_keypoints_fit_image", "load_lifter", "run_pipeline"]

log = logging.getLogger(__name__)
MIN_FRAMES = 8


@dataclass
class PipelineOptions:
    """The 2D-to-3D options; what each takes, and its default, is in :mod:`converters.options`
    (checked by :func:`vp3d_engine.options.check_options`)."""

    detector: str = option("detector").default
    lifter: str = option("lifter").default
    checkpoint: str = option("checkpoint").default
    device: str = option("device").default
    start: float | None = None
    end: float | None = None
    stride: int = option("stride").default
    person: int = option("person").default
    keypoints: Path | None = None  # 2D keypoints from a file: skips decoding and detection
    image_size: tuple[int, int] | None = None  # of the keypoints file, when it does not say (or says wrong)
    fps: float | None = None  # of the keypoints file, when it does not say
    flip: bool | None = None  # None: as the checkpoint says
    resample: str = option("resample").default  # "none": lift frames as they come (the original procedure)
    workers: int | None = None  # detection processes for long videos; None: one per core
    trajectory: str = option("trajectory").default  # "model": the trajectory model's root as it is
    label_swaps: str = option("label_swaps").default  # "keep": the detector's left/right labels as they are
    # Share of MediaPipe's own 3D averaged into the lifted pose (vp3d_engine.lifters.blend); it
    # applies where MediaPipe detected the video, or to a vp3d result file that kept its 3D (not to
    # other keypoint files); 0: the lifter alone.
    mediapipe_3d: float = option("mediapipe_3d").default


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


def _pick_device(name: str) -> str:
    from vp3d_engine.device import pick_device

    return str(pick_device(name))


_QUEUE_BYTES = 256 << 20  # decoded frames waiting for the detector, at most


def _frames_in_background(path: Path, opts: PipelineOptions, report: DecodeReport,
                          frame_bytes: int = 0) -> Generator[Frame, None, None]:
    q: queue.Queue[Frame | BaseException | None] = queue.Queue(
        maxsize=max(2, min(16, _QUEUE_BYTES // max(frame_bytes, 1))))
    stop = threading.Event()

    def put(item: Frame | BaseException | None) -> bool:
        """Wait for room, unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in iter_frames(path, opts.start, opts.end, opts.stride, report):
                if not put(frame):
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    thread = threading.Thread(target=produce, daemon=True, name="vp3d-decode")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while True:  # free the frames still queued
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=5)


#: Parallel detection: each worker gets at least this much video, and starts this much earlier.
MIN_PART_S = 5.0
WARM_UP_S = 1.0


def _span(opts: PipelineOptions, info: VideoInfo) -> tuple[float, float | None]:
    """Seconds of video to detect: ``--start`` to ``--end`` or the end (None where unknown)."""
    start = opts.start or 0.0
    if not info.duration_s:
        return start, opts.end
    return start, min(opts.end, info.duration_s) if opts.end is not None else info.duration_s


def _parallel_parts(path: Path, opts: PipelineOptions, info: VideoInfo) -> list[Any]:
    """The parts to detect in worker processes, or [] to detect in this one: only MediaPipe (CPU,
    one core each), every frame (no --stride), and a long enough clip of known length."""
    from vp3d_engine.parallel_detect import default_workers, split_parts

    workers = opts.workers if opts.workers is not None else default_workers()
    if workers < 2 or opts.detector != "mediapipe" or opts.stride != 1 or not info.duration_s:
        return []
    start, end = _span(opts, info)
    if end is None:
        return []
    workers = min(workers, int((end - start) // MIN_PART_S))
    return split_parts(start, end, workers, WARM_UP_S, last_end=opts.end) if workers >= 2 else []


def detect_video(path: Path, opts: PipelineOptions, info: VideoInfo, report: DecodeReport,
                 progress: Callable[[float], None] | None = None,
                 detectors: DetectorPool | None = None) -> tuple[FrameDetections, dict[str, Any]]:
    """``detectors``: a pool that keeps the detector loaded for the next video (else one is made
    and closed here)."""
    from vp3d_engine.detectors.registry import DetectorPool

    options = {"max_people": opts.person + 1} if opts.detector == "mediapipe" and opts.person else {}
    parts = _parallel_parts(path, opts, info)
    if parts:
        from vp3d_engine.parallel_detect import detect_parts

        found, stamps, found_extras = detect_parts(path, parts, opts.detector, options, report, progress)
        if not found:
            raise InputFileError(f"{path}: no video frames could be decoded")
        mediapipe = opts.detector == "mediapipe"  # the only detector split across workers
        return FrameDetections(people=found, image_size=(info.width, info.height), fps=info.fps,
                               timestamps=np.asarray(stamps), source=str(path),
                               ranked=mediapipe, places_hidden=mediapipe), found_extras
    pool = detectors if detectors is not None else DetectorPool()
    detector = pool.acquire(opts.detector, device="cpu" if opts.device == "auto" else opts.device, **options)
    people: list[np.ndarray] = []
    times: list[float] = []
    batch: list[Frame] = []
    broken = True
    try:
        def flush() -> None:
            people.extend(detector.detect([f.image for f in batch]))
            times.extend(f.time for f in batch)
            if progress is not None:
                progress(batch[-1].time)
            batch.clear()

        with contextlib.closing(_frames_in_background(path, opts, report, 3 * info.width * info.height)) as frames:
            for frame in frames:
                batch.append(frame)
                if len(batch) >= detector.batch_size:
                    flush()
        if batch:
            flush()
        extras = detector.extras()
        broken = False
    finally:
        pool.release(detector, broken=broken or detectors is None)
    dets = FrameDetections(people=people, image_size=(info.width, info.height), fps=info.fps / opts.stride,
                           timestamps=np.asarray(times), source=str(path),
                           ranked=bool(getattr(detector, "ranks_people", False)),
                           places_hidden=bool(getattr(detector, "places_hidden_joints", False)))
    return dets, extras


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

    world = extras["blazepose_world"] if person == 0 else _followed_world(dets, extras, kp)
    return blazepose_world_pose(world, kp.timestamps, kp.fps)


def _blend(pose: Pose3D, dets: FrameDetections, extras: dict[str, Any], kp: Keypoints2D, opts: PipelineOptions,
           relabelled: np.ndarray | None) -> tuple[Pose3D, Pose3D | None]:
    """The lifted pose with MediaPipe's own 3D blended in at ``opts.mediapipe_3d`` where there is
    one (the video detected by MediaPipe, or a result file that kept it), and that 3D."""
    from vp3d_engine.lifters.blend import blend_detector_3d, drop_frames

    detector: Pose3D | None = None
    if "blazepose_world" in extras:
        if len(extras["blazepose_world"]) != kp.num_frames:
            log.warning("MediaPipe's 3D covers %d frames of %d; the lifted pose is used alone",
                        len(extras["blazepose_world"]), kp.num_frames)
        else:
            try:
                found = _detector_pose(dets, extras, kp, opts.person)
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


def run_pipeline(source: str | Path, opts: PipelineOptions | None = None,
                 progress: Callable[[float], None] | None = None,
                 lifter: LoadedLifter | None = None, detectors: DetectorPool | None = None) -> PipelineResult:
    """Video (or, with ``opts.keypoints``, a keypoint file) to 2D keypoints and camera-space 3D.
    ``progress(fraction)``: share of the video's frames detected so far (0 to 1). ``lifter``: a
    checkpoint loaded earlier with :func:`load_lifter` (else loaded here); ``detectors``: a pool
    that keeps the detector loaded between videos."""
    from vp3d_engine.lifting import lift_keypoints

    opts = opts or PipelineOptions()
    path = Path(source)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    device = _pick_device(opts.device)
    if lifter is None:
        lifter = load_lifter(opts)
    timings["load_s"] = time.perf_counter() - t0
    extras: dict[str, Any] = {}
    info = report = None
    fps_assumed = False
    if opts.keypoints is not None:
        from vp3d_engine.detectors.files import read_keypoints_file

        if opts.start is not None or opts.end is not None or opts.stride != 1:
            raise ConfigurationError("--start/--end/--stride select video frames to detect; with --keypoints "
                                     "the frames come from the file: trim it instead")
        dets = read_keypoints_file(opts.keypoints)
        video = path if path.is_file() and path.resolve() != opts.keypoints.resolve() else None
        size, fps = opts.image_size or dets.image_size, opts.fps or dets.fps
        if (size is None or fps is None) and video is not None:
            info = probe_video(video)
            size, fps = size or (info.width, info.height), fps or info.fps
        if size is None:
            raise InputFileError(f"{opts.keypoints} does not record the image size the keypoints are measured in; "
                                 "give it with --image-size WIDTHxHEIGHT (pixels), or give the video too")
        if fps is None:
            fps, fps_assumed = DEFAULT_FPS, True
            log.info("%s does not record its frame rate; %g fps assumed (give --fps)", opts.keypoints, fps)
        dets = check_keypoints_fit_image(dets, size, opts.keypoints)
    else:
        info = probe_video(path)
        report = DecodeReport()
        t1 = time.perf_counter()
        start, end = _span(opts, info)
        span = (end - start) if end is not None else None

        def detected(t: float) -> None:
            if progress is not None and span:
                progress(min(1.0, max(0.0, (t - start) / span)))

        dets, extras = detect_video(path, opts, info, report, detected, detectors)
        timings["decode_detect_s"] = time.perf_counter() - t1
        size, fps = (info.width, info.height), info.fps / opts.stride
    if dets.num_frames < MIN_FRAMES:
        raise InputFileError(f"{source}: only {dets.num_frames} frames; vp3d needs at least {MIN_FRAMES} "
                             "(about a third of a second) to estimate motion")
    t2 = time.perf_counter()
    track = track_person(dets, size, fps, person=opts.person)
    keypoints = track.keypoints
    if report is not None and report.damaged:
        log.warning("%s: the video is damaged; %d packets could not be decoded, %d frames were",
                    source, report.damaged_packets, report.yielded)
    detector_3d: Pose3D | None = None
    if lifter is None:
        pose = _detector_pose(dets, extras, track.keypoints, opts.person)
    else:
        def lift(kp: Keypoints2D) -> Pose3D:
            return lift_keypoints(kp, lifter, device=device, flip=opts.flip, resample=opts.resample,
                                  trajectory=opts.trajectory)

        pose = lift(keypoints)
        relabelled = None
        if opts.label_swaps == "fix":
            keypoints, pose, relabelled = _fix_label_swaps(keypoints, pose, lift)
        pose, detector_3d = _blend(pose, dets, extras, track.keypoints, opts, relabelled)
    timings["track_lift_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    if fps_assumed:
        pose.meta["fps_assumed"] = True
    if not np.isfinite(pose.joints).all():
        raise ConversionError(f"{source}: the lifter produced non-finite joints")
    return PipelineResult(source=str(source), keypoints=keypoints, pose=pose, track=track, info=info,
                          decode=report, timings=timings, detector_3d=detector_3d)
