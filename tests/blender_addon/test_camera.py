"""The video's camera into Blender (issue "moving camera", the camera as output): when the Motion
file holds the camera, the add-on makes a camera object that moves and turns as the video's camera
did, with its focal length and the video behind it, so that the camera view shows the armature over
the footage.

The Motion file is made here (a real mocap walk solved onto the Mixamo rig, with a known camera path:
a pan, a tilt and a roll while it moves); the imports run the add-on's real local job with a
stand-in vp3d-convert that writes that file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from converters.bvh import read_bvh
from converters.motion_file import MotionCamera, load_motion_file, save_motion_file
from converters.skeleton_maps import mocap_joints
from converters.solve import solve
from tests.blender_addon.conftest import CONVERT
from tests.blender_addon.test_addon import _a_pose_mixamo

pytestmark = [pytest.mark.blender, pytest.mark.shared_data]
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # vp3d (Y up) to Blender (Z up)
VIEW = np.diag([1.0, -1.0, -1.0])  # a Blender camera's axes (y up, looking down -z) to the picture's
VIDEO = Path("videos") / "dance_ball_480p.mp4"  # 864x480 at 25.05 fps
SIZE, FOCAL = (864, 480), 700.0


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation between two rotation matrices, degrees (from their distance,
    ``|a - b| = 2 sqrt(2) sin(angle / 2)``: exact for small angles, where the trace's arccos is not)."""
    return float(np.degrees(2 * np.arcsin(min(1.0, np.linalg.norm(a - b) / (2 * np.sqrt(2))))))


@pytest.fixture(scope="module")
def camera_motion(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Motion file (60 frames at 25 fps of a walk, Mixamo rig) holding a camera 4 m in front of the
    walker looking back at them, panning 40 degrees (through facing -Z), tilting 25, rolling 15,
    moving a metre."""
    joints = mocap_joints(read_bvh(shared_data / "mocap" / "bandai-namco-1" / "dataset-1_walk_normal_001.bvh")).h36m
    motion = solve(joints[:60], 25.0, "mixamo")
    k = np.arange(60) / 59
    rotations = Rotation.from_euler("YXZ", np.stack([np.radians(160 + 40 * k), np.radians(-10 + 25 * k),
                                                     np.radians(15 * k)], -1)).as_matrix()
    positions = np.stack([0.5 * k, 1.5 + 0.2 * k, 4.0 - 0.8 * k], -1)
    path = tmp_path_factory.mktemp("camera") / "take.motion.npz"
    return save_motion_file(motion, path, camera=MotionCamera(rotations, positions, FOCAL, SIZE))


@pytest.fixture
def engine_writing(bpy: ModuleType, camera_motion: Path, tmp_path: Path) -> Iterator[None]:
    """The add-on set to run a vp3d-convert that writes :func:`camera_motion` for the video it is given."""
    program = tmp_path / "vp3d-convert"
    program.write_text(f"""#!{sys.executable}
import shutil, sys
from pathlib import Path
args = sys.argv[1:]
shutil.copy({str(camera_motion)!r}, Path(args[args.index("--out") + 1]) / (Path(args[0]).stem + ".motion.npz"))
""")
    program.chmod(0o755)
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    prefs.convert_path = str(program)
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for clip in list(bpy.data.movieclips):
        bpy.data.movieclips.remove(clip)
    bpy.context.scene.camera = None
    yield
    prefs.convert_path = CONVERT


def _camera_at(bpy: ModuleType, obj: Any, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """The camera object's picture axes (x right, y down, z forward) and position in vp3d's world."""
    bpy.context.scene.frame_set(frame)
    world = np.array(obj.matrix_world)
    return C.T @ world[:3, :3] @ VIEW, C.T @ world[:3, 3]


@pytest.mark.parametrize("start", [0.0, 2.0])
def test_a_new_armature_comes_with_the_videos_camera_and_the_video_behind_it(
        bpy: ModuleType, engine_writing: None, camera_motion: Path, shared_data: Path, start: float) -> None:
    video = shared_data / VIDEO
    assert bpy.ops.vp3d.import_video(filepath=str(video), engine="LOCAL", start=start, frame_start=5) == {"FINISHED"}
    written = load_motion_file(camera_motion).camera
    assert written is not None
    scene = bpy.context.scene
    armature, camera = bpy.data.objects["dance_ball_480p"], bpy.data.objects["dance_ball_480p camera"]
    assert armature.type == "ARMATURE" and bpy.context.active_object == armature  # the armature stays active
    assert camera.type == "CAMERA" and scene.camera == camera
    assert (scene.render.resolution_x, scene.render.resolution_y) == SIZE
    # The lens on a 36 mm sensor fitted to the picture's width sees as the video's focal length does.
    assert camera.data.sensor_fit == "HORIZONTAL"
    assert camera.data.lens / camera.data.sensor_width * SIZE[0] == pytest.approx(FOCAL, rel=1e-3)
    for k in (0, 1, 17, 30, 59):  # Motion frame k on scene frame 5 + k
        rotation, position = _camera_at(bpy, camera, 5 + k)
        assert _angle_deg(rotation, written.rotations[k]) < 0.1, k
        assert np.abs(position - written.positions[k]).max() < 1e-3, k
    # The video is the camera's background, its first frame on the Motion's (the conversion's start).
    assert camera.data.show_background_images
    (background,) = camera.data.background_images
    assert background.source == "MOVIE_CLIP" and Path(background.clip.filepath).resolve() == video.resolve()
    assert background.clip.frame_start == 5 - round(start * background.clip.fps)


def test_a_selected_character_gets_the_camera_that_frames_it_as_the_video_framed_the_person(
        bpy: ModuleType, engine_writing: None, camera_motion: Path, shared_data: Path) -> None:
    """Retargeted onto a 1.3x larger character standing elsewhere, turned: the camera moves with the
    character's root as the retarget places it, so its hips are seen where the video's camera saw the
    walker's (same picture position). The scene's render size is the user's; the scene's camera is
    set only because it had none."""
    found = load_motion_file(camera_motion)
    assert found.camera is not None
    hero = _a_pose_mixamo(bpy, found.motion, 1.3)
    hero.location, hero.rotation_euler = (2.0, -1.0, 0.0), (0.0, 0.0, np.radians(30))
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = hero
    hero.select_set(True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1000, 1000
    result = bpy.ops.vp3d.import_video(filepath=str(shared_data / VIDEO), engine="LOCAL", target="SELECTED")
    assert result == {"FINISHED"}
    camera = bpy.data.objects["dance_ball_480p camera"]
    assert sorted(o.name for o in bpy.data.objects) == ["dance_ball_480p camera", "hero"]
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1000, 1000) and scene.camera == camera
    hips_source = found.motion.root_translation  # vp3d's world
    for k in (0, 29, 59):
        rotation, position = _camera_at(bpy, camera, 1 + k)
        assert _angle_deg(rotation, found.camera.rotations[k]) < 0.1
        hips = C.T @ np.array(hero.matrix_world @ hero.pose.bones["mixamorig:Hips"].head)
        seen = rotation.T @ (hips - position)
        expected = found.camera.rotations[k].T @ (hips_source[k] - found.camera.positions[k])
        assert np.abs(seen[:2] / seen[2] - expected[:2] / expected[2]).max() < 1e-3  # picture position
        assert seen[2] == pytest.approx(expected[2] * 1.3, rel=1e-3)  # 1.3x as far from the 1.3x larger body


def test_a_motion_file_alone_gets_the_camera_without_a_background_and_a_bad_video_only_warns(
        bpy: ModuleType, engine_writing: None, camera_motion: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    assert bpy.ops.vp3d.import_motion(filepath=str(camera_motion)) == {"FINISHED"}
    camera = bpy.data.objects["take camera"]
    assert camera.type == "CAMERA" and len(camera.data.background_images) == 0
    not_a_video = tmp_path / "clip.mp4"
    not_a_video.write_bytes(b"not a video")
    capfd.readouterr()
    assert bpy.ops.vp3d.import_video(filepath=str(not_a_video), engine="LOCAL") == {"FINISHED"}
    out = capfd.readouterr().out
    assert "the camera clip camera has no video behind it" in out, out
    assert len(bpy.data.objects["clip camera"].data.background_images) == 0 and not list(bpy.data.movieclips)
