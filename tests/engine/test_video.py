"""Video decoding on real clips and on synthetic edge cases written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from converters.errors import ConfigurationError, InputFileError
from vp3d_engine.video import DecodeReport, iter_frames, probe_video


def write_video(path: Path, frames: int = 20, size: tuple[int, int] = (96, 64), rotation: int = 0,
                times_ms: list[int] | None = None, codec: str = "libx264") -> np.ndarray | None:
    """Encode ``frames`` frames (white block at the top-left corner, brightness rising with the
    frame number); ``times_ms`` sets irregular presentation times. Returns the first image."""
    w, h = size
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=30)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if times_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    if rotation:
        stream.set_display_rotation(rotation)
    container.start_encoding()  # writes the header even when no frame follows
    first = None
    for i in range(frames):
        img = np.full((h, w, 3), 40 + 8 * (i % 20), np.uint8)
        img[: h // 4, : w // 6] = 255
        first = img if first is None else first
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        if times_ms is not None:
            frame.pts = times_ms[i]
            frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return first


@pytest.mark.shared_data
def test_real_clip_streams_every_frame_in_order(shared_data: Path) -> None:
    path = shared_data / "videos" / "dance_ball_480p.mp4"
    info = probe_video(path)
    # Stored 864x480 with non-square pixels (display aspect 16:9): shown, and analysed, at 853x480.
    assert (info.width, info.height, info.rotation, info.codec) == (853, 480, 0, "h264")
    assert info.fps == pytest.approx(25.05, abs=0.01)
    report = DecodeReport()
    times = [f.time for f in iter_frames(path, report=report)]
    assert len(times) == info.frames == 338 and not report.damaged
    assert times[0] == pytest.approx(0.0, abs=1e-6) and np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(info.duration_s, abs=0.1)


@pytest.mark.parametrize(("rotation", "marker"), [(0, "top-left"), (90, "bottom-left"), (-90, "top-right"),
                                                  (180, "bottom-right")])
def test_display_rotation_is_applied(tmp_path: Path, rotation: int, marker: str) -> None:
    path = tmp_path / "rot.mp4"
    write_video(path, rotation=rotation)
    info = probe_video(path)
    frame = next(iter_frames(path))
    h, w = frame.image.shape[:2]
    assert (w, h) == (info.width, info.height) == ((64, 96) if rotation in (90, -90) else (96, 64))
    ys, xs = np.nonzero(frame.image[..., 0] > 200)
    where = ("top" if ys.mean() < h / 2 else "bottom") + "-" + ("left" if xs.mean() < w / 2 else "right")
    assert where == marker


def test_variable_frame_rate_keeps_real_timestamps(tmp_path: Path) -> None:
    times_ms = [0, 33, 66, 150, 183, 400, 433, 466, 900, 933]
    path = tmp_path / "vfr.mp4"
    write_video(path, frames=len(times_ms), times_ms=times_ms)
    got = [round(f.time * 1000) for f in iter_frames(path)]
    assert got == times_ms


def test_time_range_and_stride(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, frames=60)  # 2 s at 30 fps
    frames = list(iter_frames(path, start=0.5, end=1.5, stride=2))
    times = [f.time for f in frames]
    assert times[0] == pytest.approx(0.5, abs=1 / 30 + 1e-6)
    assert all(0.5 - 1e-6 <= t < 1.5 for t in times)
    assert len(frames) == 15 and np.allclose(np.diff(times), 2 / 30, atol=1e-3)
    with pytest.raises(ConfigurationError, match="after --start"):
        list(iter_frames(path, start=1.0, end=0.5))
    with pytest.raises(ConfigurationError, match="stride"):
        list(iter_frames(path, stride=0))
    with pytest.raises(InputFileError, match=r"no video frames could be decoded between 5s"):
        list(iter_frames(path, start=5.0))


def test_bad_inputs_give_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(InputFileError, match="not a video FFmpeg can read"):
        probe_video(text)
    with pytest.raises(InputFileError, match="is a folder"):
        list(iter_frames(tmp_path))
    audio = tmp_path / "voice.m4a"
    container = av.open(str(audio), "w")
    stream = container.add_stream("aac", rate=16000)
    samples = np.zeros((1, 16000), np.float32)
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = 16000
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with pytest.raises(InputFileError, match="has no video stream"):
        probe_video(audio)
    empty = tmp_path / "empty.mkv"
    write_video(empty, frames=0)
    assert empty.stat().st_size > 0  # a valid container whose video stream has no frames
    with pytest.raises(InputFileError, match=r"ends before any video frame|has no frames"):
        probe_video(empty)
    with pytest.raises(InputFileError, match=r"ends before any video frame|no video frames could be decoded"):
        list(iter_frames(empty))


def test_truncated_file_decodes_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"
    write_video(path, frames=90, size=(160, 120))
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    report = DecodeReport()
    frames = list(iter_frames(cut, report=report))
    assert 10 < len(frames) < 90
    assert report.yielded == len(frames)


def test_odd_frame_sizes_decode_at_their_true_size(tmp_path: Path) -> None:
    path = tmp_path / "odd.mkv"
    write_video(path, frames=5, size=(161, 121), codec="ffv1")
    info = probe_video(path)
    frames = list(iter_frames(path))
    assert (info.width, info.height) == (161, 121)
    assert len(frames) == 5 and frames[0].image.shape == (121, 161, 3)
