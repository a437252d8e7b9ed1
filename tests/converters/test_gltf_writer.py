"""glTF/GLB: valid by the Khronos glTF Validator, and read back by three.js's GLTFLoader with every
joint where vp3d's forward kinematics puts it, at the right times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gltf_tools import issue_lines, three_load, validate_gltf

from converters.bvh import read_bvh
from converters.errors import ConversionError
from converters.motion import Motion, forward_kinematics
from converters.skeleton_maps import mocap_joints
from converters.solve import solve


def _motion(shared_data: Path, preset: str, frames: int = 90) -> Motion:
    joints = mocap_joints(read_bvh(shared_data / "mocap" / "bandai-namco-1" / "dataset-1_walk_musical_001.bvh")).h36m
    return solve(joints[:frames], 30.0, preset)


def _three_name(name: str) -> str:
    return "".join(ch for ch in name if ch not in "[]./:").replace(" ", "_")


@pytest.mark.shared_data
@pytest.mark.parametrize(("preset", "suffix"), [("mixamo", ".glb"), ("ue", ".gltf"), ("h36m", ".glb")])
def test_gltf_is_valid_and_three_js_plays_it_back(shared_data: Path, tmp_path: Path, preset: str,
                                                  suffix: str) -> None:
    from converters.gltf_writer import write_gltf

    motion = _motion(shared_data, preset)
    path = write_gltf(motion, tmp_path / f"dash{suffix}")
    report = validate_gltf(path)
    assert report["issues"]["numErrors"] == 0, issue_lines(report)
    assert report["issues"]["numWarnings"] == 0, issue_lines(report, worst=1)
    assert report["info"]["animationCount"] == 1 and report["info"]["hasSkins"]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["dash.bin", "dash.gltf"] if suffix == ".gltf"
                                                          else ["dash.glb"])  # nothing half-written left

    frames = [0, 1, 37, 89]
    loaded = three_load(path, times=[k / motion.fps for k in frames])
    clip = loaded["animations"][0]
    assert clip["duration"] == pytest.approx((motion.num_frames - 1) / motion.fps, abs=1e-5)
    assert {tr["times_length"] for tr in clip["tracks"]} == {motion.num_frames}
    bones = {n["name"] for n in loaded["nodes"] if n["type"] == "Bone"}
    assert bones == {_three_name(n) for n in motion.rig.names}
    expected, _ = forward_kinematics(motion)
    for k, sample in zip(frames, loaded["samples"], strict=True):
        got = np.array([sample["world_positions"][_three_name(n)] for n in motion.rig.names])
        assert np.abs(got - expected[k]).max() < 1e-4  # float32 storage
    # The rest pose (no animation applied) is the T-pose, standing: arms level, head up.
    rest = loaded["rest"]["world_positions"]
    names = {n: _three_name(n) for n in motion.rig.names}
    if preset == "mixamo":
        hand, arm = rest[names["mixamorig:LeftHand"]], rest[names["mixamorig:LeftArm"]]
        assert abs(hand[1] - arm[1]) < 1e-6 and hand[0] > arm[0] + 0.3
        assert rest[names["mixamorig:Head"]][1] > rest[names["mixamorig:Hips"]][1] + 0.4


def test_bad_names_and_values_are_refused(tmp_path: Path) -> None:
    from converters.gltf_writer import write_gltf
    from converters.solve import build_rig

    joints = np.zeros((2, 17, 3))
    joints[:, :, 1] = np.linspace(0, 1.7, 17)
    joints[:, :, 0] = np.linspace(-0.3, 0.3, 17)
    rig = build_rig(joints, "h36m")
    bad = Motion(rig=rig, rotations=np.full((2, 17, 4), np.nan), root_translation=np.zeros((2, 3)), fps=30)
    with pytest.raises(ConversionError, match="NaN"):
        write_gltf(bad, tmp_path / "x.glb")
    with pytest.raises(ConversionError, match=r"\.glb or \.gltf"):
        write_gltf(bad, tmp_path / "x.fbx")
    assert list(tmp_path.iterdir()) == []
