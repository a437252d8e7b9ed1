"""Video decoding with PyAV: streaming, rotation-aware, keeping real timestamps.

Frames come out one at a time (never the whole video in memory) as RGB ``uint8 (H,W,3)`` arrays
in display orientation: the display-matrix rotation that phones write is applied, so ``H`` and
``W`` are what a player shows. Each frame carries its presentation time in seconds from the
start of the stream, so variable-frame-rate clips keep their real timing.

Broken input gives one :class:`InputFileError` that says what is wrong: a missing file, a file
FFmpeg cannot read, a container without a video stream (audio only), a stream with no frames.
Damaged packets in the middle of a stream are skipped and counted in :class:`DecodeReport`, so a
truncated or partly corrupt file still yields what can be decoded and the caller can say how much
was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import BackendUnavailableError, ConfigurationError, InputFileError

if TYPE_CHECKING:
    import av

__all__ = ["DecodeReport", "Frame", "VideoInfo", "count_frames", "in_background", "iter_frames", "probe_video"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says. ``width``/``height`` are display sizes (after rotation);
    ``rotation`` is the counter-clockwise turn in degrees applied to decoded frames; ``fps`` the
    average frame rate; ``frames`` the container's frame count when it knows one."""

    path: str
    width: int
    height: int
    rotation: int
    fps: float
    duration_s: float | None
    frames: int | None
    codec: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index among the frames yielded from the start of the video
    (before ``stride``), presentation time in seconds, and RGB pixels ``(H,W,3) uint8``."""

    index: int
    time: float
    image: np.ndarray


@dataclass
class DecodeReport:
    """Filled in while frames are decoded: frames yielded and packets that failed to decode."""

    decoded: int = 0
    yielded: int = 0
    damaged_packets: int = 0
    first_error: str = ""

    @property
    def damaged(self) -> bool:
        return self.damaged_packets > 0


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise BackendUnavailableError("video decoding needs PyAV: pip install av (see README setup)") from None
    return av


def _open(path: str | Path) -> tuple[Any, Any]:
    av = _av()
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    if p.is_dir():
        raise InputFileError(f"{p}: is a folder, not a video file")
    try:
        container = av.open(str(p))
    except av.error.EOFError:
        raise InputFileError(f"{p}: the file ends before any video frame (empty or truncated); "
                             "re-export or re-copy the video") from None
    except av.error.FFmpegError as exc:
        raise InputFileError(f"{p}: not a video FFmpeg can read ({exc.strerror or exc}); "
                             "is the file complete and really a video?") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        container.close()
        raise InputFileError(f"{p}: has no video stream (it holds {', '.join(kinds)}); give a video file")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _rotation_of(stream: av.video.stream.VideoStream, first_frame: Any | None) -> int:
    """Counter-clockwise display rotation in degrees, a multiple of 90."""
    angle = 0.0
    if first_frame is not None:
        angle = float(getattr(first_frame, "rotation", 0) or 0)
    if not angle:
        tag = stream.metadata.get("rotate")  # older files: a clockwise angle in a tag
        if tag:
            try:
                angle = -float(tag)
            except ValueError:
                angle = 0.0
    return round(angle / 90.0) * 90 % 360


#: Largest frame vp3d decodes: 8K UHD (7680x4320) with some room. Pose detection needs far less,
#: and each queued frame of that size is about 100 MB.
MAX_PIXELS = 8192 * 4352


def probe_video(path: str | Path) -> VideoInfo:
    """Read the container header and the first frame (for rotation and to prove it decodes)."""
    container, stream = _open(path)
    try:
        first = None
        try:
            first = next(container.decode(stream), None)
        except _av().error.FFmpegError as exc:
            raise InputFileError(f"{path}: the video stream cannot be decoded ({exc.strerror or exc})") from None
        if first is None:
            raise InputFileError(f"{path}: the video stream has no frames")
        rotation = _rotation_of(stream, first)
        w, h = _display_width(stream, first.width), first.height
        if w * h > MAX_PIXELS:
            raise InputFileError(f"{path}: frames of {w}x{h} pixels are larger than vp3d reads (8K, {MAX_PIXELS:,} "
                                 "pixels); scale the video down first (a person needs far fewer pixels)")
        if rotation in (90, 270):
            w, h = h, w
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if not fps and duration and stream.frames:
            fps = stream.frames / duration
        return VideoInfo(path=str(path), width=w, height=h, rotation=rotation, fps=fps or 30.0,
                         duration_s=duration, frames=stream.frames or None, codec=stream.codec_context.name)
    finally:
        container.close()


def count_frames(path: str | Path, limit: int) -> tuple[int, float]:
    """The video's frames counted from its packets (read, not decoded: fast even for a long video)
    and the seconds they span by their timestamps, for a container that does not say (a raw
    stream) or may lie. Stops once past ``limit`` frames (then ``limit + 1`` and the span so far)."""
    av = _av()
    container, stream = _open(path)
    frames, first, last = 0, None, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            frames += 1
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is not None and stream.time_base is not None:
                t = float(ts * stream.time_base)
                first = t if first is None else min(first, t)
                last = t if last is None else max(last, t)
            if frames > limit:
                break
    except av.error.FFmpegError:
        pass  # damaged data: what was counted so far stands (decoding skips it too)
    finally:
        container.close()
    span = (last - first) if first is not None and last is not None else 0.0
    return frames, span


def _display_width(stream: Any, coded_width: int) -> int:
    """Width with square pixels: anamorphic video (sample aspect ratio not 1, e.g. HDV 1440x1080
    shown at 1920x1080) is stretched to its display width."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sar and sar.numerator and sar != 1:
        return max(2, round(coded_width * float(sar)))
    return coded_width


def _rgb(frame: Any, width: int) -> np.ndarray:
    if width != frame.width:
        return frame.reformat(width=width, height=frame.height, format="rgb24").to_ndarray()
    return frame.to_ndarray(format="rgb24")


def _to_display(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))


@dataclass
class _DecodeState:
    index: int = -1
    rotation: int | None = None
    width: int = 0
    last_time: float | None = None
    done: bool = False


def iter_frames(path: str | Path, start: float | None = None, end: float | None = None, stride: int = 1,
                report: DecodeReport | None = None) -> Iterator[Frame]:
    """Decode frames with ``start <= time < end`` (seconds), every ``stride``-th one.

    Damaged packets are skipped and counted in ``report``; a stream that yields nothing raises
    :class:`InputFileError`.
    """
    if stride < 1:
        raise ConfigurationError(f"stride must be 1 or more, got {stride}")
    if start is not None and end is not None and end <= start:
        raise ConfigurationError(f"--end ({end}) must be after --start ({start})")
    av = _av()
    report = report if report is not None else DecodeReport()
    container, stream = _open(path)
    try:
        time_base = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate
        frame_step = 1.0 / float(rate) if rate else 1.0 / 30.0
        start_pts = stream.start_time or 0
        if start:
            # Seek to the keyframe before start, then decode forward to it.
            container.seek(int(start / time_base) + start_pts, stream=stream, backward=True)
        state = _DecodeState()

        def emit(frames: Any) -> Iterator[Frame]:
            for frame in frames:
                ts = frame.pts if frame.pts is not None else frame.dts
                if ts is not None:
                    t = float((ts - start_pts) * time_base)
                elif state.last_time is not None:  # no timestamp at all: assume the nominal rate
                    t = state.last_time + frame_step
                else:
                    t = 0.0
                state.last_time = t
                if start is not None and t < start - 1e-6:
                    continue
                if end is not None and t >= end:
                    state.done = True
                    return
                report.decoded += 1
                state.index += 1
                if state.index % stride:
                    continue
                if state.rotation is None:
                    state.rotation = _rotation_of(stream, frame)
                    state.width = _display_width(stream, frame.width)
                report.yielded += 1
                image = _to_display(_rgb(frame, state.width), state.rotation)
                yield Frame(index=state.index, time=t, image=image)

        demux = container.demux(stream)
        while not state.done:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # damaged container data: stop reading, keep what we have
                report.damaged_packets += 1
                report.first_error = report.first_error or str(exc)
                try:  # frames the decoder still holds (reordering, threads)
                    yield from emit(stream.codec_context.decode(None))
                except av.error.FFmpegError:
                    pass
                break
            try:
                yield from emit(packet.decode())
            except av.error.FFmpegError as exc:
                report.damaged_packets += 1
                report.first_error = report.first_error or str(exc)
    finally:
        container.close()
        if report.damaged:
            log.warning("%s: %d damaged packets skipped (%s)", path, report.damaged_packets, report.first_error)
    if report.yielded == 0:
        where = "" if start is None and end is None else f" between {start or 0:g}s and {end or 'the end'}"
        raise InputFileError(f"{path}: no video frames could be decoded{where}")


def in_background(frames: Iterator[Frame], depth: int = 8, name: str = "vp3d-decode") -> Generator[Frame, None, None]:
    """``frames`` decoded on a thread, at most ``depth`` ahead (PyAV releases the GIL, so decoding
    hides behind the consumer's work); a decoding error is raised to the consumer, and stopping
    early (closing this generator) stops the thread and frees the frames still queued."""
    import queue
    import threading

    q: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=max(2, depth))
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
            for frame in frames:
                if not put(frame):
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    thread = threading.Thread(target=produce, daemon=True, name=name)
    thread.start()
    try:
        while (item := q.get()) is not None:
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
