"""Blender adapter: Blender's own importers see exactly the motion vp3d wrote (BVH, FBX, glTF).

Tests that need ``bpy`` skip only when it is not installed (``pip install "vp3d[blender]"``); the
missing-``bpy`` error is checked in a subprocess that hides the module.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from converters.blender_adapter import BLENDER_TO_VP3D, read_armature_positions, write_fbx
from converters.bvh import read_bvh
from converters.bvh_writer import write_bvh
from converters.errors import ConfigurationError, ConversionError, InputFileError
from converters.joints import H36M17
from converters.motion import Motion, Rig, forward_kinematics
from converters.skeleton_maps import mocap_joints
from converters.solve import solve

REPO = Path(__file__).resolve().parents[2]
WALK = "mocap/bandai-namco-1/dataset-1_walk_normal_001.bvh"  # 195 frames at 30 fps
MM = 1e-3


@pytest.fixture(scope="module")
def bpy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """Blender's module, imported with its user folder in a temporary directory (never ~/.config)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLENDER_USER_RESOURCES", str(tmp_path_factory.mktemp("blender-user")))
        yield pytest.importorskip("bpy", exc_type=ModuleNotFoundError)


@pytest.fixture(scope="module")
def walk_joints(shared_data: Path) -> np.ndarray:
    """H36M-17 joints (195,17,3) of a real walk, world Y up, metres."""
    return mocap_joints(read_bvh(shared_data / WALK)).h36m


def _tiny_motion() -> Motion:
    rig = Rig(names=("root", "tip"), parents=np.array([-1, 0]), rest_offsets=np.array([[0, 1, 0], [0, 0.5, 0.0]]),
              preset="test")
    return Motion(rig=rig, rotations=np.tile([1.0, 0, 0, 0], (3, 2, 1)), root_translation=np.zeros((3, 3)), fps=30)


def _fbx_unit_scale_factor(data: bytes) -> float:
    """GlobalSettings' UnitScaleFactor (centimetres per file unit) from a binary FBX."""
    found = re.search(rb"UnitScaleFactorS\x06\0\0\0doubleS\x06\0\0\0NumberS\0\0\0\0D(.{8})", data, re.DOTALL)
    assert found, "no UnitScaleFactor property"
    return float(struct.unpack("<d", found.group(1))[0])


@pytest.mark.blender
@pytest.mark.shared_data
def test_blender_bvh_importer_reproduces_forward_kinematics(bpy: ModuleType, walk_joints: np.ndarray,
                                                             tmp_path: Path) -> None:
    motion = solve(walk_joints, 30.0)
    path = write_bvh(motion, tmp_path / "walk.bvh")  # Y up, centimetres
    got = read_armature_positions(path, space="blender")
    expected, _ = forward_kinematics(motion)
    assert got.bone_names == list(motion.rig.names)
    assert got.frame_range == (1, motion.num_frames) and got.positions.shape == expected.shape
    assert got.fps == pytest.approx(30.0, rel=1e-6)
    # Upright in Blender's Z-up world: head above pelvis above both ankles on every frame.
    z = got.positions[..., 2]
    head, pelvis = motion.rig.index("head_top"), motion.rig.index("pelvis")
    ankles = [motion.rig.index("left_ankle"), motion.rig.index("right_ankle")]
    assert (z[:, head] > z[:, pelvis]).all() and (z[:, pelvis, None] > z[:, ankles]).all()
    # Blender's (x, y, z) is vp3d's (x, -z, y): the subject faces -Y, Blender's front view.
    in_blender = np.stack([expected[..., 0], -expected[..., 2], expected[..., 1]], axis=-1)
    assert np.linalg.norm(got.positions - in_blender, axis=-1).max() < 1 * MM  # measured: 0.0013 mm
    assert np.allclose(in_blender @ BLENDER_TO_VP3D.T, expected)


@pytest.mark.blender
@pytest.mark.shared_data
@pytest.mark.parametrize(("preset", "fps", "units", "unit_scale_factor"),
                         [("h36m", 30.0, "cm", 1.0), ("mixamo", 29.97, "m", 100.0)])
def test_fbx_round_trip_keeps_bones_frames_and_positions(bpy: ModuleType, walk_joints: np.ndarray, tmp_path: Path,
                                                         preset: str, fps: float, units: str,
                                                         unit_scale_factor: float) -> None:
    motion = solve(walk_joints, fps, preset)  # mixamo: names like "mixamorig:Hips"; 29.97 fps needs fps_base
    path = write_fbx(motion, tmp_path / "out" / "walk.fbx", units=units)
    assert [p.name for p in path.parent.iterdir()] == ["walk.fbx"]  # the temporary file was renamed
    data = path.read_bytes()
    assert data.startswith(b"Kaydara FBX Binary")
    assert _fbx_unit_scale_factor(data) == unit_scale_factor
    got = read_armature_positions(path)
    assert got.bone_names == list(motion.rig.names)
    assert got.frame_range == (1, motion.num_frames)
    assert got.fps == pytest.approx(fps, rel=1e-5)  # 29.97 is stored as NTSC, 30/1.001
    expected, _ = forward_kinematics(motion)
    assert np.linalg.norm(got.positions - expected, axis=-1).max() < 1 * MM  # measured: under 0.05 mm


def _blender_glb(bpy: ModuleType, bvh: Path, glb: Path, frames: int) -> Path:
    """Blender's own BVH import and GLB export, at 30 fps (a glTF made by another tool)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # Blender's BVH importer leaves its file open
        bpy.ops.import_anim.bvh(filepath=str(bvh), global_scale=0.01)
    scene.frame_start, scene.frame_end = 1, frames
    bpy.ops.export_scene.gltf(filepath=str(glb), export_format="GLB", export_animations=True,
                              export_force_sampling=True)
    return glb


@pytest.mark.blender
@pytest.mark.shared_data
def test_gltf_from_blender_is_read_back_in_vp3d_space(bpy: ModuleType, walk_joints: np.ndarray,
                                                      tmp_path: Path) -> None:
    motion = solve(walk_joints, 30.0)
    glb = _blender_glb(bpy, write_bvh(motion, tmp_path / "walk.bvh"), tmp_path / "walk.glb", motion.num_frames)
    got = read_armature_positions(glb)
    assert got.bone_names == list(motion.rig.names)
    assert got.fps == pytest.approx(30.0) and got.frame_range == (1, motion.num_frames)
    expected, _ = forward_kinematics(motion)
    assert np.linalg.norm(got.positions - expected, axis=-1).max() < 1 * MM


@pytest.mark.blender
@pytest.mark.shared_data
@pytest.mark.parametrize("preset", ["mixamo", "ue"])
def test_vp3d_glb_imports_into_blender_as_an_armature_with_the_same_joints(bpy: ModuleType, walk_joints: np.ndarray,
                                                                           tmp_path: Path, preset: str) -> None:
    from converters.gltf_writer import write_gltf

    motion = solve(walk_joints, 30.0, preset)
    got = read_armature_positions(write_gltf(motion, tmp_path / "walk.glb"))
    assert got.bone_names == list(motion.rig.names)  # the skin's joints became bones
    assert got.fps == pytest.approx(30.0) and got.positions.shape[0] == motion.num_frames
    expected, _ = forward_kinematics(motion)
    assert np.linalg.norm(got.positions - expected, axis=-1).max() < 1 * MM  # measured: under 0.001 mm


@pytest.mark.blender
@pytest.mark.shared_data
def test_field_check_cmu_file_retargeted_onto_mixamo_opens_right_in_blender(bpy: ModuleType, shared_data: Path,
                                                                             tmp_path: Path) -> None:
    # A BVH written by another tool (CMU, cgspeed's conversion: its own names, rest pose, 120 fps),
    # through vp3d's solver onto the mixamo preset, written as BVH and opened by Blender's importer.
    source = read_bvh(shared_data / "mocap" / "cmu" / "02_01.bvh")
    joints = mocap_joints(source).h36m
    motion = solve(joints, source.fps, "mixamo")
    got = read_armature_positions(write_bvh(motion, tmp_path / "02_01_mixamo.bvh"))
    assert got.bone_names == list(motion.rig.names) and got.bone_names[0] == "mixamorig:Hips"
    assert got.fps == pytest.approx(source.fps, rel=1e-5) and got.positions.shape[0] == source.num_frames
    expected, _ = forward_kinematics(motion)
    assert np.linalg.norm(got.positions - expected, axis=-1).max() < 1 * MM
    # The joints Blender shows are the source file's: limbs and hips on its own joints, up to the
    # bone lengths made constant and symmetric (CMU's hip joints move inside its pelvis).
    names = {n: i for i, n in enumerate(got.bone_names)}
    pairs = {"LeftArm": "left_shoulder", "LeftForeArm": "left_elbow", "LeftHand": "left_wrist",
             "RightArm": "right_shoulder", "RightForeArm": "right_elbow", "RightHand": "right_wrist",
             "LeftUpLeg": "left_hip", "LeftLeg": "left_knee", "LeftFoot": "left_ankle", "RightUpLeg": "right_hip",
             "RightLeg": "right_knee", "RightFoot": "right_ankle", "Hips": "pelvis"}
    for mixamo, h36m in pairs.items():
        err = np.linalg.norm(got.positions[:, names[f"mixamorig:{mixamo}"]] - joints[:, H36M17.index(h36m)], axis=-1)
        assert err.mean() < 0.03, (mixamo, err.mean())
    # Upright: the head above the hips above the toes on every frame (vp3d space, Y up).
    y = got.positions[..., 1]
    assert (y[:, names["mixamorig:Head"]] > y[:, names["mixamorig:Hips"]]).all()
    assert (y[:, names["mixamorig:Hips"], None] > y[:, [names["mixamorig:LeftToeBase"],
                                                         names["mixamorig:RightToeBase"]]]).all()


@pytest.mark.blender
def test_other_threads_are_refused_rather_than_crashing(bpy: ModuleType, tmp_path: Path) -> None:
    # bpy segfaults when used from a thread other than the one that imported it.
    errors: list[BaseException] = []

    def export() -> None:
        try:
            write_fbx(_tiny_motion(), tmp_path / "x.fbx")
        except BaseException as err:
            errors.append(err)

    worker = threading.Thread(target=export)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], ConversionError) and "main thread" in str(errors[0])
    assert list(tmp_path.iterdir()) == []


def test_missing_bpy_names_the_blender_extra(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import converters.blender_adapter as adapter
        from converters.errors import BackendUnavailableError
        from converters.motion import Motion, Rig
        assert "bpy" not in sys.modules, "the adapter imported bpy at import time"
        sys.modules["bpy"] = None  # what an environment without Blender's module looks like
        rig = Rig(names=("root",), parents=np.array([-1]), rest_offsets=np.zeros((1, 3)), preset="test")
        motion = Motion(rig=rig, rotations=np.tile([1.0, 0, 0, 0], (2, 1, 1)), root_translation=np.zeros((2, 3)),
                        fps=30)
        try:
            adapter.write_fbx(motion, {str(tmp_path / "out.fbx")!r})
        except BackendUnavailableError as err:
            print(err)
        else:
            sys.exit("no error")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert 'pip install "vp3d[blender]"' in done.stdout and "bpy==5.0.1" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_are_refused_before_blender_starts(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="units"):
        write_fbx(_tiny_motion(), tmp_path / "x.fbx", units="inch")
    with pytest.raises(InputFileError, match=r"\.obj"):
        read_armature_positions(tmp_path / "x.obj")
    with pytest.raises(InputFileError, match="no such file"):
        read_armature_positions(tmp_path / "missing.fbx")
    with pytest.raises(ConfigurationError, match="space"):
        read_armature_positions(tmp_path / "x.bvh", space="y-up")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
