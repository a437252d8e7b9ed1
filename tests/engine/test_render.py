"""The rendered preview: one frame per input frame at its rate, the 2D keypoints drawn over the
video, and a 3D skeleton that moves."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vp3d_engine.convert import ConvertOptions, convert
from vp3d_engine.pipeline import PipelineOptions
from vp3d_engine.render import RenderOptions
from vp3d_engine.video import iter_frames, probe_video


@pytest.mark.shared_data
def test_a_real_clip_renders_frame_for_frame_with_a_moving_skeleton(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    info = probe_video(video)
    options = ConvertOptions(pipeline=PipelineOptions(start=1.0, end=4.0, workers=1), formats=["render"],
                             render=RenderOptions(trail=True))
    done = convert(video, options, tmp_path / "ball")
    assert [p.name for p in done.files] == ["ball_preview.mp4"]
    source = [f.image for f in iter_frames(video, 1.0, 4.0)]
    with av.open(str(done.files[0])) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = float(stream.average_rate)
    assert len(frames) == len(source) and rate == pytest.approx(info.fps, rel=1e-3)
    h, w = source[0].shape[:2]
    assert frames[0].shape == (h, (w + h) // 2 * 2, 3)
    video_part = np.stack([f[:, :w].astype(int) for f in frames])
    panel = np.stack([f[:, w:].astype(int) for f in frames])
    # The keypoints are drawn over the video: the picture differs from the source where the bones are.
    drawn = np.abs(video_part - np.stack(source)).max(axis=-1) > 80
    assert drawn.mean() > 0.002
    # The 3D skeleton (coloured pixels on the dark panel) is there in every frame and moves.
    coloured = (panel.max(axis=-1) - panel.min(axis=-1)) > 60
    assert (coloured.reshape(len(frames), -1).sum(axis=1) > 100).all()
    assert np.mean([(coloured[i] ^ coloured[i + 10]).sum() for i in range(0, len(frames) - 10, 10)]) > 100


def test_render_needs_the_video(tmp_path: Path) -> None:
    from converters.errors import ConfigurationError

    joints = np.zeros((10, 17, 3))
    joints[:, :, 1] = np.linspace(0, 1.7, 17)
    joints[:, 4:7, 0] = 0.2
    np.save(tmp_path / "pose.npy", joints)
    with pytest.raises(ConfigurationError, match="--render draws the preview over the video"):
        convert(tmp_path / "pose.npy", ConvertOptions(formats=["render"]), tmp_path / "pose")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.npy"]
