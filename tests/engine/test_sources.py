"""2D and 3D files converted on their own, without a video: named after what they record, with
--image-size and --fps where they do not say, plain arrays told apart by shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converters.bvh import forward_kinematics, read_bvh
from vp3d_engine.convert_cli import main
from vp3d_engine.detectors.types import FrameDetections

pytestmark = pytest.mark.shared_data


def _xy(dets: FrameDetections) -> np.ndarray:
    return np.stack([p[0, :, :2] for p in dets.people])


def _custom_npz(path: Path, dets: FrameDetections, video: str) -> Path:
    """VideoPose3D's prepare_data_2d_custom.py output for one video (real MediaPipe keypoints)."""
    w, h = dets.image_size or (0, 0)
    meta = {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": [[1, 3], [2, 4]],
            "video_metadata": {video: {"w": w, "h": h}}}
    np.savez_compressed(path, positions_2d={video: {"custom": [_xy(dets).astype(np.float32)]}}, metadata=meta)
    return path


def test_a_keypoints_file_alone_is_named_after_the_video_it_records(dance_detections: FrameDetections, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = _custom_npz(tmp_path / "data_2d_custom_myvideos.npz", dance_detections, "ball_dance.mp4")
    assert main(["--keypoints", str(src), "--out", str(tmp_path / "out"), "--bvh", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ball_dance.bvh"]
    assert "30 fps assumed" in out and "give --fps" in out  # the file does not record its rate
    assert read_bvh(tmp_path / "out" / "ball_dance.bvh").fps == pytest.approx(30.0)
    assert main(["--keypoints", str(src), "--out", str(tmp_path / "out25"), "--fps", "25", "--quiet"]) == 0
    assert "assumed" not in capsys.readouterr().out
    with np.load(tmp_path / "out25" / "ball_dance.npz") as npz:
        assert json.loads(str(npz["meta"]))["fps"] == 25.0
        np.testing.assert_allclose(npz["keypoints_2d"], _xy(dance_detections), atol=1e-3)


def test_a_file_without_image_size_asks_for_it(dance_detections: FrameDetections, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    xy = _xy(dance_detections)
    np.save(tmp_path / "track.npy", xy)  # a plain (T,17,2) array: no image size, no frame rate
    assert main([str(tmp_path / "track.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "does not record the image size" in err and "--image-size WIDTHxHEIGHT" in err
    assert not (tmp_path / "track.npz").exists()
    w, h = dance_detections.image_size or (0, 0)
    assert main([str(tmp_path / "track.npy"), "--image-size", f"{w}x{h}", "--fps", "25", "--quiet"]) == 0
    with np.load(tmp_path / "track.npz") as npz:
        np.testing.assert_allclose(npz["keypoints_2d"], xy, atol=1e-3)
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "track.npy"), "--image-size", "640by480"])
    assert stop.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err.splitlines()[-1]


def _world_positions(bvh: Path) -> np.ndarray:
    data = read_bvh(bvh)
    positions, _ = forward_kinematics(data, scale=0.01)
    return positions


def test_plain_3d_joints_in_camera_metres_and_z_up_millimetres_give_the_same_animation(
        dance_detections: FrameDetections, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A VideoPose3D --viz-export array (camera axes, metres) and the same motion as video2bvh
    keeps it (Z-up world, millimetres, turned about the vertical) both become the same BVH."""
    w, h = dance_detections.image_size or (0, 0)
    np.save(tmp_path / "track.npy", _xy(dance_detections))
    assert main([str(tmp_path / "track.npy"), "--image-size", f"{w}x{h}", "--fps", "25", "--quiet"]) == 0
    with np.load(tmp_path / "track.npz") as npz:
        camera = npz["joints_3d"].astype(np.float64)  # camera space, metres, with root motion
    np.save(tmp_path / "viz_export.npy", camera)
    yaw = np.radians(35.0)
    to_z_up = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # camera y down -> world z up
    turn = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    np.savez(tmp_path / "3d_pose.npz", pose=(camera @ (turn @ to_z_up).T) * 1000.0 + [500.0, 200.0, 0.0])
    for name in ("viz_export.npy", "3d_pose.npz"):
        assert main([str(tmp_path / name), "--bvh", "--glb", "--rig", "mixamo", "--fps", "25", "--quiet"]) == 0
    a, b = _world_positions(tmp_path / "viz_export.bvh"), _world_positions(tmp_path / "3d_pose.bvh")
    assert a.shape == b.shape == (camera.shape[0], 22, 3)
    assert np.abs(a - b).max() < 1e-3  # metres and millimetres, camera and Z-up axes: one animation
    height = a[:, :, 1].max(axis=1) - a[:, :, 1].min(axis=1)
    assert np.median(height) > 1.2  # upright (Y up), whichever axes the file used
    assert (tmp_path / "3d_pose.glb").is_file()


def test_arrays_of_other_shapes_are_refused_naming_the_shapes_read(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "smpl.npy", np.zeros((40, 24, 3)))
    np.savez(tmp_path / "two.npz", a=np.zeros((40, 17, 3)), b=np.zeros(3))
    assert main([str(tmp_path / "smpl.npy"), str(tmp_path / "two.npz"), "--bvh", "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("(T,17,3) 3D joints in Human3.6M order" in line for line in err), err
    assert "shape (40, 24, 3)" in err[0] and "two.npz" in err[1]
