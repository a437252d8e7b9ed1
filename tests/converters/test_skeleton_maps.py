"""Tests for converters.skeleton_maps (rig maps, derived H36M/COCO joints) and converters.joints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bvh_text import ROOT6, ROT3, JointSpec, render_bvh

from converters.bvh import UNIT_SCALES, Bvh, forward_kinematics, read_bvh
from converters.errors import ConfigurationError, InputFileError
from converters.joints import COCO17, H36M17, joint_set
from converters.skeleton_maps import (
    _HEAD_POINTS,
    _HEAD_REFERENCE_M,
    BANDAI_NAMCO,
    CMU_CGSPEED,
    SKELETON_MAPS,
    guess_skeleton_map,
    mocap_joints,
    skeleton_map_for,
)


def names_only_bvh(joints: list[tuple[str, str | None]]) -> Bvh:
    """A one-frame rest-pose Bvh with the given (name, parent name) joints, no channels."""
    names = tuple(n for n, _ in joints)
    parents = np.array([-1 if p is None else names.index(p) for _, p in joints], dtype=np.int64)
    return Bvh(
        names=names,
        parents=parents,
        offsets=np.ones((len(names), 3)),
        channels=((),) * len(names),
        end_site_parents=np.zeros(0, dtype=np.int64),
        end_site_offsets=np.zeros((0, 3)),
        frame_time=1 / 30,
        motion=np.zeros((1, 0)),
        path="names-only.bvh",
    )


def h(name: str) -> int:
    return H36M17.index(name)


def c(name: str) -> int:
    return COCO17.index(name)


UP = np.array([0.0, 1.0, 0.0])


def facing_of(h36m: np.ndarray) -> np.ndarray:
    """Unit horizontal facing direction cross(left_shoulder - right_shoulder, up), per frame."""
    f = np.cross(h36m[..., h("left_shoulder"), :] - h36m[..., h("right_shoulder"), :], UP)
    return f / np.linalg.norm(f, axis=-1, keepdims=True)


def ry(deg: float) -> np.ndarray:
    cs, sn = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[cs, 0, sn], [0, 1, 0], [-sn, 0, cs]])


# --------------------------------------------------------------------------------------------
# A synthetic Mixamo rig (centimetres, T-pose, facing +Z, Y up, subject's left = +X)
# --------------------------------------------------------------------------------------------

M = "mixamorig:"
MIXAMO: list[JointSpec] = [
    (f"{M}Hips", None, (0.0, 0.0, 0.0), ROOT6, None),
    (f"{M}Spine", f"{M}Hips", (0.0, 10.0, 0.0), ROT3, None),
    (f"{M}Neck", f"{M}Spine", (0.0, 40.0, 0.0), ROT3, None),
    (f"{M}Head", f"{M}Neck", (0.0, 10.0, 0.0), ROT3, (0.0, 20.0, 0.0)),
    (f"{M}LeftArm", f"{M}Spine", (18.0, 35.0, 0.0), ROT3, None),
    (f"{M}LeftForeArm", f"{M}LeftArm", (28.0, 0.0, 0.0), ROT3, None),
    (f"{M}LeftHand", f"{M}LeftForeArm", (26.0, 0.0, 0.0), ROT3, (10.0, 0.0, 0.0)),
    (f"{M}RightArm", f"{M}Spine", (-18.0, 35.0, 0.0), ROT3, None),
    (f"{M}RightForeArm", f"{M}RightArm", (-28.0, 0.0, 0.0), ROT3, None),
    (f"{M}RightHand", f"{M}RightForeArm", (-26.0, 0.0, 0.0), ROT3, (-10.0, 0.0, 0.0)),
    (f"{M}LeftUpLeg", f"{M}Hips", (10.0, -5.0, 0.0), ROT3, None),
    (f"{M}LeftLeg", f"{M}LeftUpLeg", (0.0, -42.0, 0.0), ROT3, None),
    (f"{M}LeftFoot", f"{M}LeftLeg", (0.0, -43.0, 0.0), ROT3, (0.0, -5.0, 12.0)),
    (f"{M}RightUpLeg", f"{M}Hips", (-10.0, -5.0, 0.0), ROT3, None),
    (f"{M}RightLeg", f"{M}RightUpLeg", (0.0, -42.0, 0.0), ROT3, None),
    (f"{M}RightFoot", f"{M}RightLeg", (0.0, -43.0, 0.0), ROT3, (0.0, -5.0, 12.0)),
]
MIXAMO_NAMES = [j[0] for j in MIXAMO]
HEAD_COL = 6 + 3 * (MIXAMO_NAMES.index(f"{M}Head") - 1)  # first of the head's (z, x, y) columns


def mixamo_rows() -> np.ndarray:
    """Frames 0-1 rest pose at (0,100,0); frame 2 the head turned 90 deg to the subject's left
    (Yrotation +90); frame 3 the whole body turned around (root Yrotation 180) at (50,100,20)."""
    rows = np.zeros((4, 6 + 3 * (len(MIXAMO) - 1)))
    rows[:, 1] = 100.0
    rows[2, HEAD_COL + 2] = 90.0
    rows[3, [0, 2]] = [50.0, 20.0]
    rows[3, 5] = 180.0
    return rows


@pytest.fixture
def mixamo_path(tmp_path) -> Path:
    path = tmp_path / "mixamo.bvh"
    path.write_text(render_bvh(MIXAMO, mixamo_rows(), frame_time=1 / 30))
    return path


@pytest.fixture
def mixamo(mixamo_path) -> Bvh:
    return read_bvh(mixamo_path)


def test_guess_skeleton_map_mixamo_names(mixamo):
    smap = guess_skeleton_map(mixamo)
    expected = {
        "pelvis": "Hips",
        "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_ankle": "LeftFoot",
        "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot",
        "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm", "left_wrist": "LeftHand",
        "right_shoulder": "RightArm", "right_elbow": "RightForeArm", "right_wrist": "RightHand",
    }
    assert smap.body == {k: M + v for k, v in expected.items()}
    assert smap.head == f"{M}Head"
    assert smap.neck == f"{M}Neck"
    assert smap.spine_chain == (f"{M}Hips", f"{M}Spine", f"{M}Neck")
    assert smap.joint_names() <= set(mixamo.names)


def test_skeleton_map_for_falls_back_to_names(mixamo):
    smap = skeleton_map_for(mixamo)
    assert smap.name == "by_name"
    assert smap == guess_skeleton_map(mixamo)


def test_mocap_joints_on_mixamo_rig_hand_computed(mixamo, mixamo_path):
    mj = mocap_joints(mixamo)
    assert mj.unit == "cm"
    assert mj.skeleton == "by_name"
    assert mj.fps == pytest.approx(30.0)
    assert mj.source == str(mixamo_path)
    assert mj.h36m.shape == (4, 17, 3)
    assert mj.coco.shape == (4, 17, 3)

    body = {
        "pelvis": (0, 1.0, 0), "left_hip": (0.1, 0.95, 0), "left_knee": (0.1, 0.53, 0), "left_ankle": (0.1, 0.10, 0),
        "right_hip": (-0.1, 0.95, 0), "right_knee": (-0.1, 0.53, 0), "right_ankle": (-0.1, 0.10, 0),
        "left_shoulder": (0.18, 1.45, 0), "left_elbow": (0.46, 1.45, 0), "left_wrist": (0.72, 1.45, 0),
        "right_shoulder": (-0.18, 1.45, 0), "right_elbow": (-0.46, 1.45, 0), "right_wrist": (-0.72, 1.45, 0),
        # midpoint of the shoulders
        "thorax": (0, 1.45, 0),
        # halfway along Hips(1.0) -> Spine(1.1) -> Neck(1.5) -> thorax(1.45): arc 0.55, half at 1.275
        "spine": (0, 1.275, 0),
    }
    for name, expected in body.items():
        np.testing.assert_allclose(mj.h36m[0, h(name)], expected, atol=1e-12, err_msg=name)

    # Head points: offsets (up, forward, left) in the head frame, up = +Y, forward = +Z, left = +X,
    # scaled by |head - pelvis| / reference = 0.60 m / 0.47 m.
    head = np.array([0.0, 1.6, 0.0])
    size = 0.6 / _HEAD_REFERENCE_M
    axes = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)  # up, forward, left

    def head_point(key: str, turn_deg: float = 0.0) -> np.ndarray:
        return head + ry(turn_deg) @ (size * np.asarray(_HEAD_POINTS[key]) @ axes)

    for key in ("head_top", "neck_nose"):
        np.testing.assert_allclose(mj.h36m[0, h(key)], head_point(key), atol=1e-12, err_msg=key)
    for key in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        np.testing.assert_allclose(mj.coco[0, c(key)], head_point(key), atol=1e-12, err_msg=key)
    # Frame 2: the head turned to the subject's left; the face points follow it.
    for key in ("nose", "left_eye", "right_ear"):
        np.testing.assert_allclose(mj.coco[2, c(key)], head_point(key, 90.0), atol=1e-12, err_msg=key)
    assert mj.coco[2, c("nose"), 0] > 0.1  # nose now towards +X, the subject's left
    np.testing.assert_allclose(mj.h36m[2, :9], mj.h36m[0, :9], atol=1e-12)  # body unchanged

    # Frame 3: everything turned around the root by 180 degrees and moved.
    root0, root3 = np.array([0, 1.0, 0]), np.array([0.5, 1.0, 0.2])
    np.testing.assert_allclose(mj.h36m[3], root3 + (mj.h36m[0] - root0) @ ry(180).T, atol=1e-12)
    np.testing.assert_allclose(mj.coco[3], root3 + (mj.coco[0] - root0) @ ry(180).T, atol=1e-12)


def test_mocap_joints_sanity_on_mixamo_rig(mixamo):
    mj = mocap_joints(mixamo)
    # Y up, left is +X (facing +Z) on frame 0
    assert mj.h36m[0, h("head_top"), 1] > mj.h36m[0, h("neck_nose"), 1] > mj.h36m[0, h("thorax"), 1]
    assert mj.coco[0, c("left_eye"), 0] > 0 > mj.coco[0, c("right_eye"), 0]
    assert mj.coco[0, c("left_ear"), 0] > 0 > mj.coco[0, c("right_ear"), 0]
    assert mj.coco[0, c("nose"), 2] > mj.h36m[0, h("head_top"), 2] > 0
    np.testing.assert_allclose(facing_of(mj.h36m)[[0, 1, 2]], [[0, 0, 1]] * 3, atol=1e-12)
    np.testing.assert_allclose(facing_of(mj.h36m)[3], [0, 0, -1], atol=1e-12)
    # COCO body points are the H36M ones.
    for name in ("left_shoulder", "right_elbow", "left_wrist", "right_hip", "left_knee", "right_ankle"):
        np.testing.assert_array_equal(mj.coco[:, c(name)], mj.h36m[:, h(name)])


def test_mocap_joints_unit_override_scales_everything(mixamo):
    cm = mocap_joints(mixamo)
    as_m = mocap_joints(mixamo, unit="m")
    assert as_m.unit == "m"
    np.testing.assert_allclose(as_m.h36m, 100 * cm.h36m, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(as_m.coco, 100 * cm.coco, rtol=1e-12, atol=1e-12)


def test_mocap_joints_explicit_map_missing_joints(mixamo):
    with pytest.raises(InputFileError) as info:
        mocap_joints(mixamo, CMU_CGSPEED)
    message = str(info.value)
    assert "'LeftUpLeg'" in message
    assert "cmu_cgspeed" in message


def test_mocap_joints_no_frames(tmp_path):
    path = tmp_path / "empty.bvh"
    path.write_text(render_bvh(MIXAMO, np.zeros((0, 6 + 3 * (len(MIXAMO) - 1))), frame_time=1 / 30))
    with pytest.raises(InputFileError, match="no frames"):
        mocap_joints(read_bvh(path))


def test_guess_skeleton_map_unrecognisable_names():
    bvh = names_only_bvh([("Bone000", None)] + [(f"Bone{i:03d}", f"Bone{i - 1:03d}") for i in range(1, 16)])
    with pytest.raises(InputFileError) as info:
        guess_skeleton_map(bvh)
    message = str(info.value)
    for need in ("left_hip", "left_knee", "right_ankle", "left_shoulder", "right_wrist", "pelvis", "head"):
        assert need in message, need
    assert "Bone000" in message  # shows what the names look like
    assert "SkeletonMap" in message  # says what to do
    with pytest.raises(InputFileError):
        skeleton_map_for(bvh)


def _mixamo_names_with(old: str, new: str) -> Bvh:
    renamed = [(n.replace(old, new), None if p is None else p.replace(old, new)) for n, p, *_ in MIXAMO]
    return names_only_bvh(renamed)


def test_guess_skeleton_map_names_only_the_missing_part():
    with pytest.raises(InputFileError) as info:
        guess_skeleton_map(_mixamo_names_with("LeftHand", "LeftPaw"))
    message = str(info.value)
    assert "for left_wrist from" in message
    assert "right_wrist" not in message


def test_guess_skeleton_map_missing_head():
    with pytest.raises(InputFileError) as info:
        guess_skeleton_map(_mixamo_names_with("Head", "Skull"))
    assert "for head from" in str(info.value)


def test_guess_skeleton_map_missing_pelvis():
    with pytest.raises(InputFileError) as info:
        guess_skeleton_map(_mixamo_names_with("Hips", "Waist"))
    assert "for pelvis from" in str(info.value)


def test_guess_skeleton_map_head_outside_pelvis_subtree():
    # The "Hips" joint is a side branch of the root; the head hangs off another branch.
    joints = [("Base", None), ("Hips", "Base"), ("Torso", "Base"), ("Neck", "Torso"), ("Head", "Neck")]
    for side in ("Left", "Right"):
        joints += [(f"{side}UpLeg", "Hips"), (f"{side}Leg", f"{side}UpLeg"), (f"{side}Foot", f"{side}Leg")]
        joints += [(f"{side}Arm", "Torso"), (f"{side}ForeArm", f"{side}Arm"), (f"{side}Hand", f"{side}ForeArm")]
    with pytest.raises(InputFileError, match="does not descend"):
        guess_skeleton_map(names_only_bvh(joints))


@pytest.mark.parametrize(
    ("joints", "expected"),
    [
        (
            [("joint_Root", None), ("Hips", "joint_Root"), ("Spine", "Hips"), ("Chest", "Spine"),
             ("Neck", "Chest"), ("Head", "Neck"),
             ("Shoulder_L", "Chest"), ("UpperArm_L", "Shoulder_L"), ("LowerArm_L", "UpperArm_L"),
             ("Hand_L", "LowerArm_L"),
             ("Shoulder_R", "Chest"), ("UpperArm_R", "Shoulder_R"), ("LowerArm_R", "UpperArm_R"),
             ("Hand_R", "LowerArm_R"),
             ("UpperLeg_L", "Hips"), ("LowerLeg_L", "UpperLeg_L"), ("Foot_L", "LowerLeg_L"), ("Toes_L", "Foot_L"),
             ("UpperLeg_R", "Hips"), ("LowerLeg_R", "UpperLeg_R"), ("Foot_R", "LowerLeg_R"), ("Toes_R", "Foot_R")],
            BANDAI_NAMCO,
        ),
        (
            [("Hips", None), ("LHipJoint", "Hips"), ("LeftUpLeg", "LHipJoint"), ("LeftLeg", "LeftUpLeg"),
             ("LeftFoot", "LeftLeg"), ("LeftToeBase", "LeftFoot"),
             ("RHipJoint", "Hips"), ("RightUpLeg", "RHipJoint"), ("RightLeg", "RightUpLeg"),
             ("RightFoot", "RightLeg"), ("RightToeBase", "RightFoot"),
             ("LowerBack", "Hips"), ("Spine", "LowerBack"), ("Spine1", "Spine"), ("Neck", "Spine1"),
             ("Neck1", "Neck"), ("Head", "Neck1"),
             ("LeftShoulder", "Spine1"), ("LeftArm", "LeftShoulder"), ("LeftForeArm", "LeftArm"),
             ("LeftHand", "LeftForeArm"), ("LeftFingerBase", "LeftHand"), ("LeftHandIndex1", "LeftFingerBase"),
             ("LThumb", "LeftHand"),
             ("RightShoulder", "Spine1"), ("RightArm", "RightShoulder"), ("RightForeArm", "RightArm"),
             ("RightHand", "RightForeArm"), ("RightFingerBase", "RightHand"),
             ("RightHandIndex1", "RightFingerBase"), ("RThumb", "RightHand")],
            CMU_CGSPEED,
        ),
    ],
    ids=["bandai", "cmu"],
)
def test_guess_skeleton_map_on_shipped_rig_names(joints, expected):
    bvh = names_only_bvh(joints)
    smap = guess_skeleton_map(bvh)
    # Clavicles (Shoulder_L, LeftShoulder), hip joints, toes and fingers are not mistaken for body joints.
    assert smap.body == expected.body
    assert smap.head == "Head"
    assert skeleton_map_for(bvh) is expected


def test_guess_skeleton_map_unreal_names_prefers_pelvis_over_root():
    joints = [("root", None), ("pelvis", "root"), ("spine_01", "pelvis"), ("spine_02", "spine_01"),
              ("neck_01", "spine_02"), ("head", "neck_01")]
    for s in ("l", "r"):
        joints += [(f"thigh_{s}", "pelvis"), (f"calf_{s}", f"thigh_{s}"), (f"foot_{s}", f"calf_{s}"),
                   (f"clavicle_{s}", "spine_02"), (f"upperarm_{s}", f"clavicle_{s}"),
                   (f"lowerarm_{s}", f"upperarm_{s}"), (f"hand_{s}", f"lowerarm_{s}")]
    smap = guess_skeleton_map(names_only_bvh(joints))
    assert smap.body["left_hip"] == "thigh_l"
    assert smap.body["right_wrist"] == "hand_r"
    assert smap.body["pelvis"] == "pelvis"
    assert smap.spine_chain[0] == "pelvis"


def test_shipped_maps_registry():
    assert SKELETON_MAPS == {"bandai_namco": BANDAI_NAMCO, "cmu_cgspeed": CMU_CGSPEED}
    for smap in SKELETON_MAPS.values():
        assert set(smap.body) == {"pelvis"} | {
            f"{s}_{p}" for s in ("left", "right") for p in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
        }
        assert smap.spine_chain[0] == smap.body["pelvis"]
        assert smap.spine_chain[-1] == smap.neck


# --------------------------------------------------------------------------------------------
# Real takes (shared data)
# --------------------------------------------------------------------------------------------

REAL = {
    "bandai": ("mocap/bandai-namco-1/dataset-1_bow_active_001.bvh", BANDAI_NAMCO, "cm", 30.0, ("Toes_L", "Toes_R")),
    "cmu": ("mocap/cmu/02_01.bvh", CMU_CGSPEED, "cmu", 120.0, ("LeftToeBase", "RightToeBase")),
}


@pytest.fixture(scope="module", params=sorted(REAL))
def real(request, shared_data):
    rel, smap, unit, fps, toes = REAL[request.param]
    bvh = read_bvh(shared_data / rel)
    return {"bvh": bvh, "smap": smap, "unit": unit, "fps": fps, "toes": toes, "mj": mocap_joints(bvh)}


@pytest.mark.shared_data
def test_skeleton_map_for_real_files(real):
    assert skeleton_map_for(real["bvh"]) is real["smap"]
    mj = real["mj"]
    assert mj.skeleton == real["smap"].name
    assert mj.unit == real["unit"]
    assert mj.fps == pytest.approx(real["fps"], rel=1e-3)
    assert mj.h36m.shape == (real["bvh"].num_frames, 17, 3)
    assert mj.coco.shape == (real["bvh"].num_frames, 17, 3)
    assert np.all(np.isfinite(mj.h36m))
    assert np.all(np.isfinite(mj.coco))


@pytest.mark.shared_data
def test_guess_skeleton_map_reproduces_shipped_map(real):
    guessed = guess_skeleton_map(real["bvh"])
    assert guessed.body == real["smap"].body
    assert guessed.head == real["smap"].head
    by_name = mocap_joints(real["bvh"], guessed)
    assert np.abs(by_name.h36m - real["mj"].h36m).max() < 1e-9
    assert np.abs(by_name.coco - real["mj"].coco).max() < 1e-9


@pytest.mark.shared_data
def test_real_takes_are_upright_in_metres(real):
    f0 = real["mj"].h36m[0]
    y = f0[:, 1]
    assert y[h("head_top")] > y[h("neck_nose")] > y[h("thorax")] > y[h("spine")] > y[h("pelvis")]
    for side in ("left", "right"):
        assert y[h("pelvis")] > y[h(f"{side}_knee")] > y[h(f"{side}_ankle")]
        assert y[h(f"{side}_hip")] > y[h(f"{side}_knee")]
    height = y[h("head_top")] - min(y[h("left_ankle")], y[h("right_ankle")])
    assert 1.3 < height < 2.0


@pytest.mark.shared_data
def test_real_takes_limb_lengths(real):
    f0 = real["mj"].h36m[0]
    for side in ("left", "right"):
        thigh = np.linalg.norm(f0[h(f"{side}_knee")] - f0[h(f"{side}_hip")])
        shin = np.linalg.norm(f0[h(f"{side}_ankle")] - f0[h(f"{side}_knee")])
        assert 0.3 < thigh < 0.55, (side, thigh)
        assert 0.3 < shin < 0.55, (side, shin)
    hips = np.linalg.norm(f0[h("left_hip")] - f0[h("right_hip")])
    shoulders = np.linalg.norm(f0[h("left_shoulder")] - f0[h("right_shoulder")])
    assert 0.1 < hips < 0.4
    assert 0.2 < shoulders < 0.5


@pytest.mark.shared_data
def test_real_takes_left_is_the_subjects_left(real):
    mj, bvh = real["mj"], real["bvh"]
    facing = facing_of(mj.h36m[0])  # from the shoulders: forward only if left/right are right
    left_dir = np.cross(UP, facing)
    # Independent of the map's head model: the toes point forward from the ankles.
    pos, _ = forward_kinematics(bvh, scale=UNIT_SCALES[real["unit"]])
    for toe, ankle in zip(real["toes"], ("left_ankle", "right_ankle"), strict=True):
        assert np.dot(pos[0, bvh.index(toe)] - mj.h36m[0, h(ankle)], facing) > 0.05, toe
    # The face points forward, and the left eye, ear and hip are on the left.
    nose = mj.coco[0, c("nose")]
    assert np.dot(nose - mj.h36m[0, h("thorax")], facing) > 0.02
    assert np.dot(nose - mj.h36m[0, h("head_top")], facing) > 0.02
    assert np.dot(nose - mj.h36m[0, h("neck_nose")], facing) > 0.02
    assert np.dot(mj.coco[0, c("left_eye")] - mj.coco[0, c("right_eye")], left_dir) > 0.03
    assert np.dot(mj.coco[0, c("left_ear")] - mj.coco[0, c("right_ear")], left_dir) > 0.08
    assert np.dot(mj.h36m[0, h("left_hip")] - mj.h36m[0, h("right_hip")], left_dir) > 0.08


@pytest.mark.shared_data
def test_real_takes_bone_lengths_stable(real):
    h36m = real["mj"].h36m
    child = np.arange(1, 17)
    parents = np.array(H36M17.parents)[child]
    lengths = np.linalg.norm(h36m[:, child] - h36m[:, parents], axis=-1)
    assert lengths.min() > 0.02
    std = lengths.std(axis=0)
    assert std.max() < 0.01, dict(zip(np.array(H36M17.names)[child], std.round(4), strict=True))


# --------------------------------------------------------------------------------------------
# Joint sets
# --------------------------------------------------------------------------------------------


def _swap_side(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


@pytest.mark.parametrize("jset", [H36M17, COCO17], ids=lambda s: s.name)
def test_flip_permutation_swaps_left_and_right_names(jset):
    perm = jset.flip_permutation()
    assert perm.shape == (17,)
    assert sorted(perm.tolist()) == list(range(17))
    for i, name in enumerate(jset.names):
        assert jset.names[perm[i]] == _swap_side(name), name
    np.testing.assert_array_equal(perm[perm], np.arange(17))
    sided = {i for i, n in enumerate(jset.names) if n.startswith(("left_", "right_"))}
    assert set(jset.left) | set(jset.right) == sided
    assert not set(jset.left) & set(jset.right)


def test_coco_flip_permutation_values():
    perm = COCO17.flip_permutation()
    assert perm[c("nose")] == c("nose")
    assert perm[c("left_eye")] == c("right_eye")
    assert perm[c("right_ankle")] == c("left_ankle")
    np.testing.assert_array_equal(perm, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])


def test_h36m_flip_permutation_values():
    np.testing.assert_array_equal(
        H36M17.flip_permutation(), [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]
    )


@pytest.mark.parametrize("jset", [H36M17, COCO17], ids=lambda s: s.name)
def test_mirror_then_flip_is_an_involution_and_keeps_symmetric_poses(jset):
    perm = jset.flip_permutation()
    mirror = np.array([-1.0, 1.0, 1.0])
    rng = np.random.default_rng(3)
    pose = rng.normal(size=(5, 17, 3))
    flipped = (pose * mirror)[:, perm]
    np.testing.assert_array_equal((flipped * mirror)[:, perm], pose)
    # The flipped left wrist/ankle is the mirrored right one.
    for i in jset.left:
        np.testing.assert_array_equal(flipped[:, i], pose[:, perm[i]] * mirror)
    # A left/right symmetric pose is unchanged.
    sym = pose.copy()
    centre = [i for i in range(17) if i not in jset.left and i not in jset.right]
    sym[:, centre, 0] = 0.0
    sym[:, list(jset.right)] = sym[:, list(jset.left)] * mirror
    np.testing.assert_array_equal((sym * mirror)[:, perm], sym)


def test_h36m_parents_are_a_tree_with_sided_limbs():
    parents = H36M17.parents
    assert parents[0] == -1
    assert all(0 <= p < j for j, p in enumerate(parents) if j)
    for i in H36M17.left:
        p = parents[i]
        assert p not in H36M17.right, H36M17.names[i]
    perm = H36M17.flip_permutation()
    # The skeleton is symmetric: flipping a joint and its parent keeps the parent relation.
    for j in range(1, 17):
        assert parents[perm[j]] == perm[parents[j]]


def test_joint_set_lookup():
    assert joint_set("h36m17") is H36M17
    assert joint_set("coco17") is COCO17
    with pytest.raises(ConfigurationError, match="coco17, h36m17"):
        joint_set("mpii16")
