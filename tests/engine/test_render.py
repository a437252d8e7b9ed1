"""The rendered preview: one frame per input frame at its rate, the 2D keypoints drawn over the
video, and a 3D skeleton that moves."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from camera_footage import path

from vp3d_engine.convert import ConvertOptions, convert
from vp3d_engine.pipeline import PipelineOptions
from vp3d_engine.render import RenderOptions, horizon_lines, render_preview
from vp3d_engine.video import iter_frames, probe_video
from vp3d_engine.world_stage import WorldCamera


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


# --- the horizon the video's camera saw -----------------------------------------------------------

LEVEL = np.diag([1.0, -1.0, -1.0])  # a level camera's axes (x right, y down, z forward) in the world, Y up


def _camera(turns: np.ndarray, focal: float, size: tuple[int, int]) -> WorldCamera:
    """A camera level with the floor turned by ``turns (T,3,3)`` (its own axes, as camera_footage's)."""
    return WorldCamera(rotations=LEVEL @ turns, positions=np.zeros((len(turns), 3)), focal_px=focal,
                       image_size=size, kind="rotating", applied=True)


def test_the_horizon_is_level_through_the_centre_turned_by_the_roll_and_lowered_by_looking_up() -> None:
    """Known answers: a level camera sees the horizon across the middle; a roll of r degrees (x
    turning towards y, clockwise as the camera sees it) tilts it by r the other way; looking up by p
    lowers it by ``focal tan(p)``; a yaw leaves it as it is; looking straight down it is nowhere."""
    focal, size = 500.0, (640, 480)
    centre = np.array([319.5, 239.5])
    angles = [(0, 0, 0), (0, 0, 20), (0, 0, -35), (0, 10, 0), (30, 0, 0), (0, -90, 0)]
    lines = horizon_lines(path(np.array(angles, float)), focal, size)
    assert lines.shape == (6, 3) and np.allclose(np.hypot(lines[:5, 0], lines[:5, 1]), 1.0)

    def through_centre(line: np.ndarray) -> float:
        return float(line[0] * centre[0] + line[1] * centre[1] + line[2])  # signed pixels from the centre

    def tilt_deg(line: np.ndarray) -> float:  # the line's angle in the picture, y down, within +-90
        return float((np.degrees(np.arctan2(-line[0], line[1])) + 90) % 180 - 90)

    level, rolled, rolled_back, up, yawed, down = lines
    assert abs(through_centre(level)) < 1e-9 and abs(tilt_deg(level)) < 1e-9
    assert abs(through_centre(rolled)) < 1e-9 and tilt_deg(rolled) == pytest.approx(-20.0)
    assert tilt_deg(rolled_back) == pytest.approx(35.0)
    assert abs(tilt_deg(up)) < 1e-9 and -up[2] / up[1] == pytest.approx(239.5 + focal * np.tan(np.radians(10)))
    np.testing.assert_allclose(yawed, level, atol=1e-12)
    np.testing.assert_allclose(down, [0.0, 0.0, 1.0])


def test_the_preview_draws_the_horizon_at_each_frames_roll(tmp_path: Path) -> None:
    """A plain grey clip rendered with a camera rolling 0, 12, -25 and 40 degrees over its frames
    (and looking 5 degrees up): the yellow line drawn over each frame lies at minus that roll, the
    distance ``focal tan(5)`` below the centre (fitted to the drawn pixels: within 1 degree and 3 px)."""
    from camera_footage import write_clip

    size, focal, fps = (480, 360), 400.0, 10
    rolls = [0.0, 12.0, -25.0, 40.0]
    clip = write_clip(tmp_path / "grey.mp4", [np.full((size[1], size[0], 3), 110, np.uint8)] * len(rolls), fps)
    times = np.array([f.time for f in iter_frames(clip)])
    joints = np.zeros((len(rolls), 17, 3))
    joints[:, :, 1] = np.linspace(0, 1.7, 17)
    camera = _camera(path(np.array([[0.0, 5.0, r] for r in rolls])), focal, size)
    out = render_preview(clip, tmp_path / "preview.mp4", np.full((len(rolls), 17, 2), 240.0),
                         np.zeros((len(rolls), 17), bool), times, joints, fps, camera=camera)
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24")[:, : size[0]].astype(int) for f in container.decode(video=0)]
    assert len(frames) == len(rolls)
    centre = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2])
    below = focal * np.tan(np.radians(5.0))
    for image, roll in zip(frames, rolls, strict=True):
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        ys, xs = np.nonzero((r > 180) & (g > 150) & (b < 90))
        assert len(xs) > 200, roll  # a line across the picture
        points = np.stack([xs, ys], axis=1).astype(float)
        mean = points.mean(axis=0)
        direction = np.linalg.svd(points - mean)[2][0]
        angle = (np.degrees(np.arctan2(direction[1], direction[0])) + 90) % 180 - 90
        normal = np.array([-direction[1], direction[0]])
        offset = float((mean - centre) @ normal) * np.sign(normal[1])  # along the picture's down
        print(f"roll {roll}: line at {angle:.2f} degrees, {offset:.1f} px below the centre (expected {below:.1f})")
        assert abs(angle + roll) < 1.0 and abs(offset - below) < 3.0


def test_no_camera_no_horizon(tmp_path: Path) -> None:
    from camera_footage import write_clip

    clip = write_clip(tmp_path / "grey.mp4", [np.full((120, 160, 3), 110, np.uint8)] * 3, 10)
    times = np.array([f.time for f in iter_frames(clip)])
    joints = np.zeros((3, 17, 3))
    joints[:, :, 1] = np.linspace(0, 1.7, 17)
    out = render_preview(clip, tmp_path / "preview.mp4", np.full((3, 17, 2), 60.0), np.zeros((3, 17), bool),
                         times, joints, 10)
    with av.open(str(out)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")[:, :160].astype(int)
    assert (np.abs(image - 110) < 12).all()  # the video as it was: nothing drawn over it
