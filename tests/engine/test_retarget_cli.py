"""``vp3d-convert take.bvh --rig ue``: motion capture from another tool retargeted onto a preset."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gltf_tools import issue_lines, validate_gltf

from converters.bvh import forward_kinematics as bvh_fk
from converters.bvh import read_bvh
from converters.joints import H36M17
from converters.skeleton_maps import mocap_joints
from vp3d_engine.convert_cli import main


@pytest.mark.shared_data
def test_mocap_bvh_is_retargeted_onto_the_unreal_rig(shared_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    source_path = shared_data / "mocap" / "cmu" / "02_01.bvh"
    assert main([str(source_path), "--out", str(tmp_path), "--bvh", "--glb", "--rig", "ue"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02_01.bvh", "02_01.glb"]
    source = read_bvh(source_path)
    out = read_bvh(tmp_path / "02_01.bvh")
    assert out.names[:3] == ("pelvis", "spine_01", "spine_02") and out.num_frames == source.num_frames
    assert out.fps == pytest.approx(source.fps, rel=1e-6)
    pos, _ = bvh_fk(out, scale=0.01)
    joints = mocap_joints(source).h36m
    for ue, h36m in (("hand_l", "left_wrist"), ("calf_r", "right_knee"), ("foot_l", "left_ankle")):
        err = np.linalg.norm(pos[:, out.names.index(ue)] - joints[:, H36M17.index(h36m)], axis=-1)
        assert err.mean() < 0.03, ue  # where the source had it, up to constant bone lengths
    report = validate_gltf(tmp_path / "02_01.glb")
    assert report["issues"]["numErrors"] == 0, issue_lines(report)
    # Written next to itself it would overwrite the input: refused, the input untouched.
    copy = tmp_path / "in" / "take.bvh"
    copy.parent.mkdir()
    shutil.copy(source_path, copy)
    capsys.readouterr()
    assert main([str(copy), "--bvh"]) == 2
    assert "overwrite" in capsys.readouterr().err and copy.read_bytes() == source_path.read_bytes()
    upper = copy.with_name("Take2.BVH")
    shutil.copy(source_path, upper)
    assert main([str(upper), "--bvh"]) == 2  # the same file where case does not count
    assert "overwrite" in capsys.readouterr().err and not (upper.parent / "Take2.bvh").exists()
    assert main([str(copy), "--json"]) == 2
    assert "only --motion, --bvh, --glb and --fbx" in capsys.readouterr().err
    assert main([str(copy)]) == 2
    err = capsys.readouterr().err
    assert "say which files to write" in err and str(copy) in err


@pytest.mark.shared_data
def test_vp3d_own_h36m_bvh_is_retargeted_too(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "mocap" / "cmu" / "02_01.bvh"
    assert main([str(source), "--out", str(tmp_path / "h36m"), "--bvh"]) == 0
    assert main([str(tmp_path / "h36m" / "02_01.bvh"), "--out", str(tmp_path / "mixamo"), "--bvh",
                 "--rig", "mixamo"]) == 0
    direct = tmp_path / "direct"
    assert main([str(source), "--out", str(direct), "--bvh", "--rig", "mixamo"]) == 0
    via_h36m, _ = bvh_fk(read_bvh(tmp_path / "mixamo" / "02_01.bvh"), scale=0.01)
    straight, _ = bvh_fk(read_bvh(direct / "02_01.bvh"), scale=0.01)
    # The same motion either way, up to the h36m step's bone-length normalisation.
    assert np.linalg.norm(via_h36m - straight, axis=-1).mean() < 0.02
