"""The video's camera in the GLB and FBX files (issue "moving camera", the camera as output): read
back by readers vp3d did not write (Blender's own glTF and FBX importers, three.js's GLTFLoader, the
Khronos validator), the camera is where the engine placed it on every frame, turned as it was, with
the video's focal length.

The camera path is known: a pan of 40 degrees through the camera facing -Z (the quaternion's sign
flips on the way, as a glTF camera looking back at the subject has w near 0), a tilt of 25 degrees
and a roll of 15, while it moves about a metre."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gltf_tools import issue_lines, three_load, validate_gltf
from scipy.spatial.transform import Rotation

from converters.errors import ConversionError
from converters.motion import Motion, Rig, forward_kinematics
from converters.motion_file import MotionCamera

FRAMES, FPS = 30, 30.0
#: Blender world (Z up) to vp3d's (Y up): ``(x, y, z) -> (x, z, -y)``, written out here, not imported.
FROM_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
VIEW = np.diag([1.0, -1.0, -1.0])  # a viewer camera's axes (y up, looking down -z) to the picture's


def _motion(shift: float = 0.0) -> Motion:
    """A two-bone figure bending and walking along +X (so the armature's keys are not all the same)."""
    rig = Rig(names=("root", "tip"), parents=np.array([-1, 0]), rest_offsets=np.array([[0, 1, 0], [0, 0.5, 0.0]]),
              preset="test")
    k = np.arange(FRAMES) / (FRAMES - 1)
    bend = np.stack([np.cos(k / 2), np.zeros(FRAMES), np.zeros(FRAMES), np.sin(k / 2)], -1)  # about z, w x y z
    rotations = np.stack([np.tile([1.0, 0, 0, 0], (FRAMES, 1)), bend], 1)
    root = np.stack([k + shift, np.full(FRAMES, 1.0), np.zeros(FRAMES)], -1)
    return Motion(rig=rig, rotations=rotations, root_translation=root, fps=FPS)


def _camera(size: tuple[int, int] = (1280, 720), focal: float = 1000.0) -> MotionCamera:
    """Facing the figure from 4 m in front (the picture's z along world -Z), panning, tilting, rolling."""
    k = np.arange(FRAMES) / (FRAMES - 1)
    yaw, pitch, roll = np.radians(160 + 40 * k), np.radians(-10 + 25 * k), np.radians(15 * k)
    rotations = Rotation.from_euler("YXZ", np.stack([yaw, pitch, roll], -1)).as_matrix()
    positions = np.stack([0.5 * k, 1.5 + 0.2 * k, 4.0 - 0.8 * k], -1)
    return MotionCamera(rotations, positions, focal, size)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation between two rotation matrices, degrees (from their distance,
    ``|a - b| = 2 sqrt(2) sin(angle / 2)``: exact for small angles, where the trace's arccos is not)."""
    return float(np.degrees(2 * np.arcsin(min(1.0, np.linalg.norm(a - b) / (2 * np.sqrt(2))))))


def _glb_json(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    length, _ = struct.unpack_from("<II", data, 12)
    bin_length, _ = struct.unpack_from("<II", data, 20 + length)
    return json.loads(data[20:20 + length]), data[28 + length:28 + length + bin_length]


def _accessor(doc: dict[str, Any], blob: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    values = np.frombuffer(blob, "<f4", acc["count"] * width, view.get("byteOffset", 0))
    return values.reshape(acc["count"], width).astype(np.float64)


@pytest.mark.parametrize("people", [False, True])
def test_glb_holds_an_animated_perspective_camera_valid_and_played_back_by_three_js(tmp_path: Path,
                                                                                    people: bool) -> None:
    from converters.gltf_writer import write_gltf

    camera = _camera()
    motion = [("p0", _motion()), ("p1", _motion(1.0))] if people else _motion()
    path = write_gltf(motion, tmp_path / "take.glb", camera=camera)
    report = validate_gltf(path)
    assert report["issues"]["numErrors"] == 0, issue_lines(report)
    assert report["issues"]["numWarnings"] == 0, issue_lines(report, worst=1)

    doc, blob = _glb_json(path)
    (lens,) = doc["cameras"]
    assert lens["type"] == "perspective"
    assert lens["perspective"]["aspectRatio"] == pytest.approx(1280 / 720)
    assert lens["perspective"]["yfov"] == pytest.approx(2 * np.arctan(360 / 1000.0))
    assert (lens["perspective"]["znear"], lens["perspective"]["zfar"]) == (0.05, 1000.0)
    node = next(i for i, n in enumerate(doc["nodes"]) if n.get("camera") == 0)
    assert doc["nodes"][node]["name"] == "take camera" and node in doc["scenes"][0]["nodes"]  # top level
    targets = {c["target"]["path"]: doc["animations"][0]["samplers"][c["sampler"]]
               for c in doc["animations"][0]["channels"] if c["target"]["node"] == node}
    assert sorted(targets) == ["rotation", "translation"]
    times = _accessor(doc, blob, targets["rotation"]["input"])[:, 0]
    assert np.allclose(times, np.arange(FRAMES) / FPS, atol=1e-6)
    quats = _accessor(doc, blob, targets["rotation"]["output"])  # x, y, z, w
    written = Rotation.from_quat(quats).as_matrix()
    assert max(_angle_deg(written[k], camera.rotations[k] @ VIEW) for k in range(FRAMES)) < 1e-3
    assert (np.sum(quats[1:] * quats[:-1], axis=1) > 0).all()  # one hemisphere: interpolators take the short way
    assert np.abs(_accessor(doc, blob, targets["translation"]["output"]) - camera.positions).max() < 1e-6

    frames = [0, 7, 15, 29]
    loaded = three_load(path, times=[k / FPS for k in frames])
    assert ("take_camera", "PerspectiveCamera") in {(n["name"], n["type"]) for n in loaded["nodes"]}
    for k, sample in zip(frames, loaded["samples"], strict=True):
        seen = Rotation.from_quat(sample["world_quaternions"]["take_camera"]).as_matrix()
        assert _angle_deg(seen @ VIEW, camera.rotations[k]) < 1e-3
        assert np.abs(np.array(sample["world_positions"]["take_camera"]) - camera.positions[k]).max() < 1e-5


def test_without_a_camera_the_glb_has_none_and_a_bad_camera_is_refused(tmp_path: Path) -> None:
    from converters.gltf_writer import write_gltf

    doc, _ = _glb_json(write_gltf(_motion(), tmp_path / "plain.glb"))
    assert "cameras" not in doc and not any("camera" in n for n in doc["nodes"])
    bad = _camera()
    bad.positions = bad.positions.copy()
    bad.positions[3, 1] = np.nan
    with pytest.raises(ConversionError, match="NaN"):
        write_gltf(_motion(), tmp_path / "bad.glb", camera=bad)
    short = _camera()
    short.rotations = short.rotations[:-1]
    with pytest.raises(ConversionError, match="rotations"):
        write_gltf(_motion(), tmp_path / "short.glb", camera=short)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.glb"]


def test_write_people_files_gives_the_main_persons_camera_to_the_glb(tmp_path: Path) -> None:
    from vp3d_engine.outputs import write_people_files
    from vp3d_engine.world_stage import WorldCamera, WorldMotion

    camera = _camera()
    placed = WorldCamera(camera.rotations, camera.positions, camera.focal_px, camera.image_size, "rotating", True)
    people: list[tuple[Any, WorldMotion]] = [
        (None, WorldMotion(m, np.zeros((FRAMES, 17, 3)), np.zeros((FRAMES, 2), bool), c))
        for m, c in ((_motion(), placed), (_motion(1.0), None))]
    (path,) = write_people_files(tmp_path / "clip", ["glb"], people, everyone=True)
    doc, _ = _glb_json(path)
    assert [n["name"] for n in doc["nodes"] if "camera" in n] == ["clip camera"]
    assert doc["extras"]["vp3d"]["camera"] == {"focal_px": 1000.0, "image_size": [1280, 720]}


# Blender's importers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """Blender's module, imported with its user folder in a temporary directory (never ~/.config)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLENDER_USER_RESOURCES", str(tmp_path_factory.mktemp("blender-user")))
        yield pytest.importorskip("bpy", exc_type=ModuleNotFoundError)


def _focal_px(data: Any, size: tuple[int, int], fit: str) -> float:
    """The focal length in pixels of a Blender camera's lens and sensor for a picture of ``size``,
    the sensor fitted to the picture's width or height (``fit``)."""
    w, h = size
    return float(data.lens / data.sensor_width * w if fit == "HORIZONTAL" else data.lens / data.sensor_height * h)


def _blender_camera_path(bpy: ModuleType, path: Path) -> tuple[Any, np.ndarray, np.ndarray, list[str]]:
    """Import ``path`` with Blender's own importer into an empty scene; the camera object, its
    picture-axes rotation ``(T,3,3)`` and position ``(T,3)`` in vp3d's world at each frame time
    ``k / FPS``, and the names of the scene's armatures."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    if path.suffix == ".fbx":
        assert bpy.ops.import_scene.fbx(filepath=str(path), use_anim=True, anim_offset=0.0) == {"FINISHED"}
        offset = 1.0  # the exporter placed frame k at Blender frame k + 1, at the file's rate
    else:
        assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
        offset = 0.0  # glTF times in seconds, placed at the scene's rate
    (camera,) = [ob for ob in scene.objects if ob.type == "CAMERA"]
    rate = scene.render.fps / scene.render.fps_base
    rotations, positions = np.empty((FRAMES, 3, 3)), np.empty((FRAMES, 3))
    for k in range(FRAMES):
        frame = offset + k / FPS * rate
        scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
        world = np.array(camera.matrix_world)
        axes = world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0)  # an FBX in cm comes scaled by 0.01
        rotations[k] = FROM_BLENDER @ axes @ VIEW
        positions[k] = FROM_BLENDER @ world[:3, 3]
    return camera, rotations, positions, sorted(ob.name for ob in scene.objects if ob.type == "ARMATURE")


@pytest.mark.blender
@pytest.mark.parametrize(("kind", "people", "size"), [
    ("glb", False, (1280, 720)), ("glb", True, (720, 1280)),
    ("fbx-cm", False, (1280, 720)), ("fbx-m", True, (1280, 720)), ("fbx-cm", False, (720, 1280))])
def test_blenders_own_importers_see_the_camera_where_it_was_written(bpy: ModuleType, tmp_path: Path, kind: str,
                                                                    people: bool, size: tuple[int, int]) -> None:
    from converters.blender_adapter import read_all_armature_positions, write_fbx
    from converters.gltf_writer import write_gltf

    camera = _camera(size, focal=900.0)
    motion: Motion | list[tuple[str, Motion]] = [("p0", _motion()), ("p1", _motion(1.0))] if people else _motion()
    if kind == "glb":
        path = write_gltf(motion, tmp_path / "take.glb", camera=camera)
    else:
        path = write_fbx(motion, tmp_path / "take.fbx", units=kind[4:], camera=camera)
    seen, rotations, positions, armatures = _blender_camera_path(bpy, path)
    assert seen.name == "take camera"
    angle = max(_angle_deg(rotations[k], camera.rotations[k]) for k in range(FRAMES))
    assert angle < 0.1, f"the camera turned {angle:.4f} degrees off"
    assert np.abs(positions - camera.positions).max() < 1e-3
    if kind == "glb":  # Blender's glTF importer fits the sensor to the height, from yfov
        assert seen.data.sensor_fit == "VERTICAL"
        assert _focal_px(seen.data, size, "VERTICAL") == pytest.approx(900.0, rel=0.01)
    else:  # an FBX from Blender's exporter says GateFit horizontal, which Blender's importer leaves out
        assert _focal_px(seen.data, size, "HORIZONTAL") == pytest.approx(900.0, rel=0.01)
        # ... so the film has the picture's shape: either fit gives the same view.
        assert seen.data.sensor_width / seen.data.sensor_height == pytest.approx(size[0] / size[1], rel=1e-3)
        assert _focal_px(seen.data, size, "VERTICAL") == pytest.approx(900.0, rel=0.01)
    assert len(armatures) == (2 if people else 1)
    # The armatures are read back as they were without the camera.
    found = read_all_armature_positions(path)
    for (_, each), animation in zip(motion if isinstance(motion, list) else [("", motion)], found.values(),
                                    strict=True):
        expected, _ = forward_kinematics(each)
        assert np.abs(animation.positions - expected).max() < 1e-3
