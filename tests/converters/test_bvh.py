"""Tests for converters.bvh: parsing, forward kinematics, unit inference and error reporting."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
from bvh_text import ROOT6, ROT3, JointSpec, render_bvh
from scipy.spatial.transform import Rotation

from converters.bvh import UNIT_SCALES, Bvh, forward_kinematics, infer_unit_scale, read_bvh
from converters.errors import InputFileError


def write(tmp_path: Path, text: str | bytes, name: str = "take.bvh") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


#: A hand-written file: a 3-joint chain with an End Site, two frames.
SIMPLE = """HIERARCHY
ROOT Hips
{
  OFFSET 0.0 0.0 0.0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Knee
  {
    OFFSET 1.0 0.0 0.0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Ankle
    {
      OFFSET 0.0 -2.0 0.0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0.0 0.0 0.5
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
1.0 2.0 3.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0
1.0 2.0 3.0 90.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0
"""

#: The Knee's CHANNELS line in SIMPLE and the start of the next line, for targeted corruption.
KNEE_CHANNELS = "CHANNELS 3 Zrotation Xrotation Yrotation\n    JOINT"


def with_knee_channels(channels: str) -> str:
    """SIMPLE with the Knee's CHANNELS line replaced by ``channels``."""
    assert SIMPLE.count(KNEE_CHANNELS) == 1
    return SIMPLE.replace(KNEE_CHANNELS, f"{channels}\n    JOINT")


#: Line numbers in SIMPLE (1-based).
SIMPLE_MOTION_LINE = 21
SIMPLE_FIRST_DATA_LINE = 24

#: Hips -> Knee (1,0,0) -> Ankle (1,0,0) -> End Site (0,0,1), rotations ZXY everywhere.
CHAIN: list[JointSpec] = [
    ("Hips", None, (0.0, 0.0, 0.0), ROOT6, None),
    ("Knee", "Hips", (1.0, 0.0, 0.0), ROT3, None),
    ("Ankle", "Knee", (1.0, 0.0, 0.0), ROT3, (0.0, 0.0, 1.0)),
]


def chain_row(pos=(0, 0, 0), hips=(0, 0, 0), knee=(0, 0, 0), ankle=(0, 0, 0)) -> list[float]:
    """One motion row for CHAIN; rotation triples are (z, x, y) degrees, the channel order."""
    return [*pos, *hips, *knee, *ankle]


def human_cm() -> list[JointSpec]:
    """A standing human rig in centimetres (longest root-to-leaf chain about 1.09 m)."""
    return [
        ("Hips", None, (0.0, 0.0, 0.0), ROOT6, None),
        ("Spine", "Hips", (0.0, 15.0, 0.0), ROT3, None),
        ("Neck", "Spine", (0.0, 45.0, 0.0), ROT3, None),
        ("Head", "Neck", (0.0, 10.0, 0.0), ROT3, (0.0, 18.0, 0.0)),
        ("LeftArm", "Spine", (18.0, 35.0, 0.0), ROT3, None),
        ("LeftForeArm", "LeftArm", (28.0, 0.0, 0.0), ROT3, (26.0, 0.0, 0.0)),
        ("RightArm", "Spine", (-18.0, 35.0, 0.0), ROT3, None),
        ("RightForeArm", "RightArm", (-28.0, 0.0, 0.0), ROT3, (-26.0, 0.0, 0.0)),
        ("LeftUpLeg", "Hips", (10.0, -5.0, 0.0), ROT3, None),
        ("LeftLeg", "LeftUpLeg", (0.0, -42.0, 0.0), ROT3, None),
        ("LeftFoot", "LeftLeg", (0.0, -43.0, 0.0), ROT3, (0.0, -5.0, 12.0)),
        ("RightUpLeg", "Hips", (-10.0, -5.0, 0.0), ROT3, None),
        ("RightLeg", "RightUpLeg", (0.0, -42.0, 0.0), ROT3, None),
        ("RightFoot", "RightLeg", (0.0, -43.0, 0.0), ROT3, (0.0, -5.0, 12.0)),
    ]


def scaled(joints: list[JointSpec], factor: float) -> list[JointSpec]:
    def mul(v):
        return None if v is None else tuple(factor * x for x in v)

    return [(n, p, mul(o), c, mul(e)) for n, p, o, c, e in joints]


def num_channels(joints: list[JointSpec]) -> int:
    return sum(len(j[3].split()) for j in joints)


def read_error(path: Path) -> str:
    """Read ``path`` expecting InputFileError (and nothing else); return its message."""
    with pytest.raises(InputFileError) as info:
        read_bvh(path)
    message = str(info.value)
    assert str(path) in message, f"message does not name the file: {message}"
    return message


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def test_parses_hand_written_file(tmp_path):
    path = write(tmp_path, SIMPLE)
    bvh = read_bvh(path)
    assert isinstance(bvh, Bvh)
    assert bvh.names == ("Hips", "Knee", "Ankle")
    np.testing.assert_array_equal(bvh.parents, [-1, 0, 1])
    np.testing.assert_array_equal(bvh.offsets, [[0, 0, 0], [1, 0, 0], [0, -2, 0]])
    assert bvh.channels == (tuple(ROOT6.split()), tuple(ROT3.split()), tuple(ROT3.split()))
    np.testing.assert_array_equal(bvh.channel_starts, [0, 6, 9])
    np.testing.assert_array_equal(bvh.end_site_parents, [2])
    np.testing.assert_array_equal(bvh.end_site_offsets, [[0, 0, 0.5]])
    assert bvh.num_frames == 2
    assert bvh.motion.shape == (2, 12)
    assert bvh.motion.dtype == np.float64
    np.testing.assert_array_equal(bvh.motion[1, :4], [1, 2, 3, 90])
    assert bvh.frame_time == pytest.approx(0.04)
    assert bvh.fps == pytest.approx(25.0)
    assert bvh.path == str(path)
    assert bvh.index("Ankle") == 2


def test_branching_hierarchy_is_depth_first_with_end_sites_in_file_order(tmp_path):
    joints: list[JointSpec] = [
        ("Root", None, (0, 0, 0), ROOT6, None),
        ("A", "Root", (1, 0, 0), ROT3, None),
        ("A1", "A", (1, 0, 0), ROT3, (1, 0, 0)),
        ("B", "Root", (-1, 0, 0), ROT3, None),
        ("B1", "B", (-1, 0, 0), "", (0, 0, 2)),
        ("B2", "B", (0, -1, 0), "Yrotation", (0, -3, 0)),
    ]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[0.0] * num_channels(joints)])))
    assert bvh.names == ("Root", "A", "A1", "B", "B1", "B2")
    np.testing.assert_array_equal(bvh.parents, [-1, 0, 1, 0, 3, 3])
    assert all(p < j for j, p in enumerate(bvh.parents))
    assert bvh.channels[4] == ()
    assert bvh.channels[5] == ("Yrotation",)
    np.testing.assert_array_equal(bvh.channel_starts, [0, 6, 9, 12, 15, 15])
    np.testing.assert_array_equal(bvh.end_site_parents, [2, 4, 5])
    np.testing.assert_array_equal(bvh.end_site_offsets, [[1, 0, 0], [0, 0, 2], [0, -3, 0]])


@pytest.mark.parametrize(
    ("frame_time", "fps"), [("0.0333333", 30.0), ("0.008333", 120.0), ("0.04", 25.0), ("1", 1.0)]
)
def test_frame_time_and_fps(tmp_path, frame_time, fps):
    text = SIMPLE.replace("Frame Time: 0.04", f"Frame Time: {frame_time}")
    bvh = read_bvh(write(tmp_path, text))
    assert bvh.frame_time == float(frame_time)
    assert bvh.fps == pytest.approx(fps, rel=1e-3)


def test_crlf_line_endings_and_tabs_parse_the_same(tmp_path):
    rows = [chain_row((1, 2, 3), (10, 20, 30), (-5, 7, 0), (3, 0, -9))]
    unix = read_bvh(write(tmp_path, render_bvh(CHAIN, rows), "unix.bvh"))
    dos_text = render_bvh(CHAIN, rows, newline="\r\n", indent="\t")
    assert "\r\n\t" in dos_text
    # Tabs between values in the motion data and after keywords, too.
    dos_text = dos_text.replace("Frame Time: ", "Frame Time:\t").replace(" ", "\t")
    dos = read_bvh(write(tmp_path, dos_text, "dos.bvh"))
    assert dos.names == unix.names
    assert dos.channels == unix.channels
    np.testing.assert_array_equal(dos.parents, unix.parents)
    np.testing.assert_array_equal(dos.offsets, unix.offsets)
    np.testing.assert_array_equal(dos.end_site_offsets, unix.end_site_offsets)
    np.testing.assert_array_equal(dos.motion, unix.motion)
    assert dos.frame_time == unix.frame_time
    np.testing.assert_array_equal(forward_kinematics(dos)[0], forward_kinematics(unix)[0])


def test_zero_frames(tmp_path):
    text = SIMPLE.split("Frames:")[0] + "Frames: 0\nFrame Time: 0.04\n"
    bvh = read_bvh(write(tmp_path, text))
    assert bvh.num_frames == 0
    assert bvh.motion.shape == (0, 12)
    pos, rot = forward_kinematics(bvh, with_end_sites=True)
    assert pos.shape == (0, 4, 3)
    assert rot.shape == (0, 3, 3, 3)


# --------------------------------------------------------------------------------------------
# Forward kinematics against hand-computed answers
# --------------------------------------------------------------------------------------------


def test_forward_kinematics_hand_computed_chain(tmp_path):
    rows = [
        chain_row(),  # rest pose
        chain_row(pos=(5, 6, 7), hips=(90, 0, 0)),  # root moved, Zrotation 90 on the root
        chain_row(knee=(90, 0, 0)),  # Zrotation 90 on the middle joint only
        chain_row(hips=(90, 0, 0), knee=(90, 0, 0)),  # rotations accumulate down the chain
        chain_row(hips=(0, 90, 0)),  # Xrotation 90 on the root
        chain_row(hips=(0, 0, 90)),  # Yrotation 90 on the root
    ]
    bvh = read_bvh(write(tmp_path, render_bvh(CHAIN, rows)))
    pos, rot = forward_kinematics(bvh, with_end_sites=True)
    expected = np.array(
        [
            # Hips, Knee, Ankle, End Site
            [[0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 0, 1]],
            [[5, 6, 7], [5, 7, 7], [5, 8, 7], [5, 8, 8]],
            [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]],
            [[0, 0, 0], [0, 1, 0], [-1, 1, 0], [-1, 1, 1]],
            [[0, 0, 0], [1, 0, 0], [2, 0, 0], [2, -1, 0]],
            [[0, 0, 0], [0, 0, -1], [0, 0, -2], [1, 0, -2]],
        ],
        dtype=float,
    )
    assert pos.shape == (6, 4, 3)
    np.testing.assert_allclose(pos, expected, atol=1e-12)
    assert rot.shape == (6, 3, 3, 3)
    # World rotations: root, root @ knee, root @ knee @ ankle.
    np.testing.assert_allclose(rot[3, 0], rz(90), atol=1e-12)
    np.testing.assert_allclose(rot[3, 1], rz(180), atol=1e-12)
    np.testing.assert_allclose(rot[3, 2], rz(180), atol=1e-12)
    np.testing.assert_allclose(rot[4, 2], rx(90), atol=1e-12)
    np.testing.assert_allclose(rot[0], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)


def test_zrotation_90_maps_child_offset_x_to_y(tmp_path):
    joints: list[JointSpec] = [
        ("Root", None, (0, 0, 0), "Zrotation", None),
        ("Child", "Root", (1, 0, 0), "Zrotation", None),
    ]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[90, 0], [-90, 0], [180, 0]])))
    pos, _ = forward_kinematics(bvh)
    np.testing.assert_allclose(pos[:, 1], [[0, 1, 0], [0, -1, 0], [-1, 0, 0]], atol=1e-12)


def test_channel_order_matters_zxy_vs_xyz(tmp_path):
    # Same values (z=90, x=90, y=0) under two channel orders give different results: ZXY reads
    # Rz @ Rx @ Ry and XYZ reads Rx @ Ry @ Rz (intrinsic, in the listed order).
    zxy: list[JointSpec] = [("Root", None, (0, 0, 0), "Zrotation Xrotation Yrotation", None),
                            ("Child", "Root", (0, 1, 0), "", None)]
    xyz: list[JointSpec] = [("Root", None, (0, 0, 0), "Xrotation Yrotation Zrotation", None),
                            ("Child", "Root", (0, 1, 0), "", None)]
    pos_zxy, _ = forward_kinematics(read_bvh(write(tmp_path, render_bvh(zxy, [[90, 90, 0]]), "zxy.bvh")))
    pos_xyz, _ = forward_kinematics(read_bvh(write(tmp_path, render_bvh(xyz, [[90, 0, 90]]), "xyz.bvh")))
    # Rz(90) @ Rx(90) @ (0,1,0) = Rz(90) @ (0,0,1) = (0,0,1)
    np.testing.assert_allclose(pos_zxy[0, 1], [0, 0, 1], atol=1e-12)
    # Rx(90) @ Rz(90) @ (0,1,0) = Rx(90) @ (-1,0,0) = (-1,0,0)
    np.testing.assert_allclose(pos_xyz[0, 1], [-1, 0, 0], atol=1e-12)


@pytest.mark.parametrize(
    ("order", "compose"),
    [
        ("ZXY", lambda z, x, y: rz(z) @ rx(x) @ ry(y)),
        ("XYZ", lambda z, x, y: rx(x) @ ry(y) @ rz(z)),
        ("ZYX", lambda z, x, y: rz(z) @ ry(y) @ rx(x)),
        ("YXZ", lambda z, x, y: ry(y) @ rx(x) @ rz(z)),
        ("XZY", lambda z, x, y: rx(x) @ rz(z) @ ry(y)),
        ("YZX", lambda z, x, y: ry(y) @ rz(z) @ rx(x)),
    ],
)
def test_rotation_is_product_of_channels_in_listed_order(tmp_path, order, compose):
    angles = {"Z": 30.0, "X": -50.0, "Y": 70.0}
    chans = " ".join(f"{axis}rotation" for axis in order)
    joints: list[JointSpec] = [("Root", None, (0, 0, 0), chans, None), ("Child", "Root", (0.3, -0.7, 1.1), "", None)]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[angles[a] for a in order]])))
    pos, rot = forward_kinematics(bvh)
    expected = compose(angles["Z"], angles["X"], angles["Y"])
    np.testing.assert_allclose(rot[0, 0], expected, atol=1e-12)
    np.testing.assert_allclose(rot[0, 1], expected, atol=1e-12)  # no channels: inherits the parent's
    np.testing.assert_allclose(pos[0, 1], expected @ [0.3, -0.7, 1.1], atol=1e-12)


def test_root_position_channels_replace_offset(tmp_path):
    joints: list[JointSpec] = [("Root", None, (10, 20, 30), ROOT6, None), ("Child", "Root", (1, 0, 0), "", None)]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[1, 2, 3, 0, 0, 0]])))
    pos, _ = forward_kinematics(bvh)
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [2, 2, 3]], atol=1e-12)


def test_partial_position_channels_replace_only_their_components(tmp_path):
    joints: list[JointSpec] = [
        ("Root", None, (10, 20, 30), "Yposition", None),
        ("Child", "Root", (1, 0, 0), "Zposition Zrotation", (1, 0, 0)),
    ]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[2, 5, 0], [2, 5, 90]])))
    pos, _ = forward_kinematics(bvh, with_end_sites=True)
    # Root: (10, 2, 30); child local translation (1, 0, 5); end site rotated by the child's Z.
    np.testing.assert_allclose(pos[0], [[10, 2, 30], [11, 2, 35], [12, 2, 35]], atol=1e-12)
    np.testing.assert_allclose(pos[1], [[10, 2, 30], [11, 2, 35], [11, 3, 35]], atol=1e-12)


def test_position_channels_on_non_root_joint_replace_offset(tmp_path):
    joints: list[JointSpec] = [
        ("Root", None, (0, 0, 0), ROOT6, None),
        ("Mid", "Root", (1, 0, 0), ROOT6, None),
        ("Tip", "Mid", (1, 0, 0), "", None),
    ]
    rows = [
        [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0],  # Mid at (0,3,0), not (1,3,0)
        [0, 0, 0, 90, 0, 0, 0, 3, 0, 0, 0, 0],  # ... and the translation is rotated by the parent
        [0, 0, 0, 0, 0, 0, 1, 0, 0, 90, 0, 0],  # the joint's own rotation does not move itself
    ]
    pos, _ = forward_kinematics(read_bvh(write(tmp_path, render_bvh(joints, rows))))
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [0, 3, 0], [1, 3, 0]], atol=1e-12)
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [-3, 0, 0], [-3, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(pos[2], [[0, 0, 0], [1, 0, 0], [1, 1, 0]], atol=1e-12)


def test_end_sites_only_with_flag(tmp_path):
    joints: list[JointSpec] = [
        ("Root", None, (0, 0, 0), ROOT6, None),
        ("L", "Root", (1, 0, 0), ROT3, (0, 2, 0)),
        ("R", "Root", (-1, 0, 0), ROT3, (0, 0, 3)),
    ]
    rows = [[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 90, 0, 0, 0, 90, 0]]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, rows)))
    bare, rot = forward_kinematics(bvh)
    full, rot2 = forward_kinematics(bvh, with_end_sites=True)
    assert bare.shape == (2, 3, 3)
    assert full.shape == (2, 5, 3)
    np.testing.assert_array_equal(full[:, :3], bare)
    np.testing.assert_array_equal(rot, rot2)
    assert rot.shape == (2, 3, 3, 3)  # end sites have no rotation
    np.testing.assert_allclose(full[0, 3:], [[1, 3, 0], [-1, 1, 3]], atol=1e-12)
    # Frame 1: L has Zrotation 90 ((0,2,0) -> (-2,0,0)), R has Xrotation 90 ((0,0,3) -> (0,-3,0)).
    np.testing.assert_allclose(full[1, 3:], [[-1, 1, 0], [-1, -2, 0]], atol=1e-12)


def test_with_end_sites_on_rig_without_end_sites(tmp_path):
    joints: list[JointSpec] = [("Root", None, (0, 0, 0), ROOT6, None), ("C", "Root", (1, 0, 0), "", None)]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[0] * 6])))
    pos, _ = forward_kinematics(bvh, with_end_sites=True)
    assert pos.shape == (1, 2, 3)


def test_scale_multiplies_positions_not_rotations(tmp_path):
    rows = [chain_row((1, 2, 3), (10, 20, 30), (40, -50, 60), (0, 0, 15))]
    bvh = read_bvh(write(tmp_path, render_bvh(CHAIN, rows)))
    pos1, rot1 = forward_kinematics(bvh, with_end_sites=True)
    pos2, rot2 = forward_kinematics(bvh, scale=0.01, with_end_sites=True)
    np.testing.assert_allclose(pos2, 0.01 * pos1, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(rot1, rot2)


def test_world_rotations_are_proper_rotations(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.uniform(-180, 180, size=(20, num_channels(CHAIN)))
    _, rot = forward_kinematics(read_bvh(write(tmp_path, render_bvh(CHAIN, rows))))
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


ORDERS = ["XYZ", "ZYX", "ZXY", "YXZ", "XZY", "YZX"]


def _random_chain_motion(
    order: str, rotations: list[Rotation], root_pos: np.ndarray
) -> tuple[list[JointSpec], np.ndarray]:
    """CHAIN with every joint's rotation channels in ``order``, describing ``rotations``."""
    chans = " ".join(f"{a}rotation" for a in order)
    joints: list[JointSpec] = [
        ("Hips", None, (0.0, 0.0, 0.0), f"Xposition Yposition Zposition {chans}", None),
        ("Knee", "Hips", (1.0, 0.5, 0.0), chans, None),
        ("Ankle", "Knee", (0.0, -2.0, 0.3), chans, (0.2, 0.0, 1.0)),
    ]
    # Uppercase = intrinsic in scipy: angles such that R = R_a1 @ R_a2 @ R_a3 for order a1 a2 a3.
    eulers = [r.as_euler(order, degrees=True) for r in rotations]
    return joints, np.concatenate([root_pos, *eulers], axis=1)


def test_xyz_and_zyx_channels_describing_same_rotations_agree(tmp_path):
    rng = np.random.default_rng(42)
    rotations = [Rotation.random(16, random_state=rng) for _ in range(3)]
    root_pos = rng.normal(size=(16, 3))
    positions = {}
    for order in ("XYZ", "ZYX"):
        joints, rows = _random_chain_motion(order, rotations, root_pos)
        text = render_bvh(joints, rows)
        assert {"XYZ": "Xrotation Yrotation Zrotation", "ZYX": "Zrotation Yrotation Xrotation"}[order] in text
        positions[order] = forward_kinematics(read_bvh(write(tmp_path, text, f"{order}.bvh")), with_end_sites=True)[0]
    # The raw channel values differ, the motion they describe does not.
    assert not np.allclose(
        _random_chain_motion("XYZ", rotations, root_pos)[1], _random_chain_motion("ZYX", rotations, root_pos)[1]
    )
    np.testing.assert_allclose(positions["XYZ"], positions["ZYX"], atol=1e-9)


@pytest.mark.parametrize("order", ORDERS)
def test_any_channel_order_gives_the_described_motion(tmp_path, order):
    rng = np.random.default_rng(7)
    rotations = [Rotation.random(12, random_state=rng) for _ in range(3)]
    root_pos = rng.normal(size=(12, 3))
    joints, rows = _random_chain_motion(order, rotations, root_pos)
    pos, rot = forward_kinematics(read_bvh(write(tmp_path, render_bvh(joints, rows))), with_end_sites=True)
    # Reference: compose the rotation matrices directly.
    r0, r1, r2 = (r.as_matrix() for r in rotations)
    w1, w2 = r0 @ r1, r0 @ r1 @ r2
    knee = root_pos + np.einsum("fab,b->fa", r0, [1.0, 0.5, 0.0])
    ankle = knee + np.einsum("fab,b->fa", w1, [0.0, -2.0, 0.3])
    end = ankle + np.einsum("fab,b->fa", w2, [0.2, 0.0, 1.0])
    np.testing.assert_allclose(pos, np.stack([root_pos, knee, ankle, end], axis=1), atol=1e-9)
    np.testing.assert_allclose(rot[:, 2], w2, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


def test_unit_scales_table():
    assert UNIT_SCALES["m"] == 1.0
    assert UNIT_SCALES["cm"] == pytest.approx(0.01)
    assert UNIT_SCALES["mm"] == pytest.approx(0.001)
    assert UNIT_SCALES["inch"] == pytest.approx(0.0254)
    assert UNIT_SCALES["cmu"] == pytest.approx(0.0254 / 0.45)


@pytest.mark.parametrize(
    ("factor", "unit"),
    [(1.0, "cm"), (0.01, "m"), (10.0, "mm"), (1 / 2.54, "inch"), (0.01 / (0.0254 / 0.45), "cmu")],
)
def test_infer_unit_scale(tmp_path, factor, unit):
    joints = scaled(human_cm(), factor)
    rows = np.zeros((3, num_channels(joints)))
    rows[:, 1] = 95.0 * factor
    bvh = read_bvh(write(tmp_path, render_bvh(joints, rows)))
    assert infer_unit_scale(bvh) == (unit, UNIT_SCALES[unit])


def test_infer_unit_scale_cm_and_m_versions_of_same_skeleton_scale_alike(tmp_path):
    rows = np.zeros((2, num_channels(human_cm())))
    cm = read_bvh(write(tmp_path, render_bvh(human_cm(), rows), "cm.bvh"))
    m = read_bvh(write(tmp_path, render_bvh(scaled(human_cm(), 0.01), rows), "m.bvh"))
    (u_cm, s_cm), (u_m, s_m) = infer_unit_scale(cm), infer_unit_scale(m)
    assert (u_cm, u_m) == ("cm", "m")
    np.testing.assert_allclose(forward_kinematics(cm, s_cm)[0], forward_kinematics(m, s_m)[0], atol=1e-12)


def test_infer_unit_scale_ignores_root_motion(tmp_path):
    # A metre rig whose root walks 40 m: the root translation is not a bone.
    joints = scaled(human_cm(), 0.01)
    rows = np.zeros((50, num_channels(joints)))
    rows[:, 0] = np.linspace(0, 40, 50)
    rows[:, 1] = 0.95
    assert infer_unit_scale(read_bvh(write(tmp_path, render_bvh(joints, rows))))[0] == "m"


def test_infer_unit_scale_ignores_moving_translation_below_root(tmp_path):
    # Bandai-like: a ground "Root" with a "Hips" child whose position channels carry root motion.
    # If that moving translation (median about 20 m) counted as a bone, "cm" would win.
    joints = [("Root", None, (0.0, 0.0, 0.0), ROOT6, None)]
    joints += [(n, "Root" if p is None else p, o, ROOT6 if p is None else c, e) for n, p, o, c, e in
               scaled(human_cm(), 0.01)]
    rows = np.zeros((50, num_channels(joints)))
    rows[:, 6] = np.linspace(0, 40, 50)  # Hips Xposition
    rows[:, 7] = 0.95  # Hips Yposition
    bvh = read_bvh(write(tmp_path, render_bvh(joints, rows)))
    assert bvh.parents[bvh.index("Hips")] == 0
    assert infer_unit_scale(bvh)[0] == "m"


def test_infer_unit_scale_uses_constant_position_channels(tmp_path):
    # All OFFSETs zero; the bones live in constant position channels (as in Bandai Namco files).
    base = human_cm()
    joints = [(n, p, (0.0, 0.0, 0.0), "Xposition Yposition Zposition " + ROT3, e) for n, p, _, _, e in base]
    row = np.concatenate([[*o, 0.0, 0.0, 0.0] for _, _, o, _, _ in base])
    row[1] = 95.0
    bvh = read_bvh(write(tmp_path, render_bvh(joints, np.stack([row, row, row]))))
    assert np.all(bvh.offsets == 0)
    assert infer_unit_scale(bvh) == ("cm", 0.01)


def test_infer_unit_scale_without_bones_raises(tmp_path):
    joints: list[JointSpec] = [("Root", None, (0, 0, 0), ROOT6, None), ("C", "Root", (0, 0, 0), ROT3, (0, 0, 0))]
    bvh = read_bvh(write(tmp_path, render_bvh(joints, [[0] * 9])))
    with pytest.raises(InputFileError, match="units"):
        infer_unit_scale(bvh)


# --------------------------------------------------------------------------------------------
# Malformed input: always InputFileError, with a useful message
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    message = read_error(tmp_path / "nope.bvh")
    assert "no such" in message


def test_directory_instead_of_file(tmp_path):
    message = read_error(tmp_path)
    assert "cannot read" in message


def test_empty_file(tmp_path):
    message = read_error(write(tmp_path, b""))
    assert "HIERARCHY" in message


def test_whitespace_only_file(tmp_path):
    read_error(write(tmp_path, "\n \r\n\t\n"))


def test_binary_garbage_with_nul_bytes(tmp_path):
    garbage = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\x00"
    message = read_error(write(tmp_path, garbage))
    assert "binary" in message


def test_binary_garbage_without_nul_bytes(tmp_path):
    garbage = np.random.default_rng(2).integers(1, 256, 4096, dtype=np.uint8).tobytes()
    read_error(write(tmp_path, garbage))


def test_png_header_is_rejected(tmp_path):
    message = read_error(write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)))
    assert "binary" in message


@pytest.mark.parametrize(
    "text",
    [
        "hello, world\n",
        '{"frames": [1, 2, 3]}\n',
        "v 0 0 0\nv 1 0 0\nf 1 2 3\n",
        "Some notes\nMOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n",
    ],
    ids=["prose", "json", "obj", "motion-without-hierarchy"],
)
def test_text_that_is_not_bvh(tmp_path, text):
    message = read_error(write(tmp_path, text))
    assert "HIERARCHY" in message


def test_missing_motion_section(tmp_path):
    message = read_error(write(tmp_path, SIMPLE.split("MOTION")[0]))
    assert "MOTION" in message


def test_truncated_in_hierarchy_at_every_line(tmp_path):
    lines = SIMPLE.splitlines(keepends=True)
    for cut in range(1, SIMPLE_MOTION_LINE - 1):
        path = write(tmp_path, "".join(lines[:cut]), f"cut{cut}.bvh")
        message = read_error(path)
        assert "truncated" in message, (cut, message)


def test_truncated_hierarchy_followed_by_motion(tmp_path):
    # Closing braces lost but the MOTION block is there: the hierarchy reader runs out of tokens.
    text = SIMPLE.replace("    }\n  }\n}\nMOTION", "MOTION")
    message = read_error(write(tmp_path, text))
    assert "truncated" in message
    assert re.search(r"line \d+", message)


@pytest.mark.parametrize(
    "cut",
    [
        lambda t: t[: t.rindex("\n1.0 2.0 3.0 90.0")] + "\n",  # last frame missing
        lambda t: t[: t.rindex(" 0.0 0.0 0.0")] + "\n",  # last frame cut short
        lambda t: t[: t.index("Frame Time")],  # motion header cut
    ],
    ids=["whole-frame", "mid-frame", "header"],
)
def test_truncated_motion_data(tmp_path, cut):
    message = read_error(write(tmp_path, cut(SIMPLE)))
    assert "truncated" in message


def test_motion_data_cut_at_every_byte_raises_input_file_error(tmp_path):
    # Every cut from the frame-time line up to the start of the last value (a cut inside the last
    # value leaves a shorter but valid number, which no reader can tell apart).
    start = SIMPLE.index("Frame Time")
    last_value_at = SIMPLE.rstrip().rindex(" ") + 1
    for cut in range(start, last_value_at + 1):
        read_error(write(tmp_path, SIMPLE[:cut], f"cut{cut}.bvh"))


def test_extra_motion_values(tmp_path):
    message = read_error(write(tmp_path, SIMPLE + "0.0 0.0\n"))
    assert "extra values" in message


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_non_numeric_motion_value_names_its_line(tmp_path, newline):
    lines = SIMPLE.splitlines()
    lines[SIMPLE_FIRST_DATA_LINE] = lines[SIMPLE_FIRST_DATA_LINE].replace("90.0", "9O.0")  # letter O
    message = read_error(write(tmp_path, newline.join(lines) + newline))
    assert f"line {SIMPLE_FIRST_DATA_LINE + 1}" in message
    assert "non-number" in message


def test_non_numeric_motion_value_line_after_blank_line_before_motion(tmp_path):
    lines = SIMPLE.splitlines()
    lines[SIMPLE_FIRST_DATA_LINE] = lines[SIMPLE_FIRST_DATA_LINE].replace("90.0", "9O.0")
    lines.insert(SIMPLE_MOTION_LINE - 1, "")  # a blank line before MOTION; the bad value moves down one
    message = read_error(write(tmp_path, "\n".join(lines) + "\n"))
    assert f"line {SIMPLE_FIRST_DATA_LINE + 2}" in message


def test_fewer_channel_names_than_declared(tmp_path):
    text = with_knee_channels("CHANNELS 3 Zrotation Xrotation")
    message = read_error(write(tmp_path, text))
    assert "'Knee'" in message
    assert "channels" in message


def test_more_channel_names_than_declared(tmp_path):
    text = with_knee_channels("CHANNELS 2 Zrotation Xrotation Yrotation")
    message = read_error(write(tmp_path, text))
    assert "Yrotation" in message


def test_frames_with_fewer_values_than_channels(tmp_path):
    # Each motion line one value short: the data holds fewer values than frames x channels.
    text = SIMPLE.replace(" 0.0\n1.0", "\n1.0").rstrip("\n").rsplit(" ", 1)[0] + "\n"
    message = read_error(write(tmp_path, text))
    assert "2 frames x 12 channels" in message
    assert "truncated" in message


@pytest.mark.parametrize("bad", ["Wrotation", "xrotation", "Xrot", "Rotation"])
def test_unknown_channel_name(tmp_path, bad):
    text = with_knee_channels(f"CHANNELS 3 Zrotation {bad} Yrotation")
    message = read_error(write(tmp_path, text))
    assert bad in message


def test_repeated_channel(tmp_path):
    text = with_knee_channels("CHANNELS 3 Zrotation Zrotation Yrotation")
    message = read_error(write(tmp_path, text))
    assert "repeated" in message


@pytest.mark.parametrize("count", ["three", "-3", "3.0", ""])
def test_channel_count_not_an_integer(tmp_path, count):
    text = with_knee_channels(f"CHANNELS {count} Zrotation Xrotation Yrotation")
    read_error(write(tmp_path, text))


def test_channel_count_unicode_digit(tmp_path):
    text = with_knee_channels("CHANNELS ³ Zrotation Xrotation Yrotation")
    read_error(write(tmp_path, text))


def test_duplicate_joint_names(tmp_path):
    message = read_error(write(tmp_path, SIMPLE.replace("JOINT Ankle", "JOINT Knee")))
    assert "'Knee'" in message
    assert "twice" in message


def test_joint_without_name(tmp_path):
    message = read_error(write(tmp_path, SIMPLE.replace("JOINT Ankle", "JOINT")))
    assert "without a name" in message


def test_two_roots(tmp_path):
    hierarchy, motion = SIMPLE.split("MOTION")
    second = "ROOT Other\n{\n  OFFSET 0 0 0\n  CHANNELS 0\n}\n"
    message = read_error(write(tmp_path, hierarchy + second + "MOTION" + motion))
    assert "several roots" in message


def test_unexpected_keyword_inside_joint(tmp_path):
    message = read_error(write(tmp_path, SIMPLE.replace("JOINT Ankle", "BONE Ankle")))
    assert "'BONE'" in message
    assert "line 10" in message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_non_finite_motion_values(tmp_path, value):
    message = read_error(write(tmp_path, SIMPLE.replace("90.0", value)))
    assert "NaN or infinite" in message


@pytest.mark.parametrize("value", ["nan", "inf", "abc"])
def test_bad_offset_value(tmp_path, value):
    message = read_error(write(tmp_path, SIMPLE.replace("OFFSET 0.0 -2.0 0.0", f"OFFSET 0.0 {value} 0.0")))
    assert "Ankle OFFSET" in message
    assert "line 12" in message


@pytest.mark.parametrize("frame_time", ["-0.04", "0", "0.0", "nan", "inf", "fast"])
def test_invalid_frame_time(tmp_path, frame_time):
    message = read_error(write(tmp_path, SIMPLE.replace("Frame Time: 0.04", f"Frame Time: {frame_time}")))
    assert "frame time" in message


@pytest.mark.parametrize("frames", ["-2", "2.5", "two"])
def test_invalid_frame_count(tmp_path, frames):
    message = read_error(write(tmp_path, SIMPLE.replace("Frames: 2", f"Frames: {frames}")))
    assert "frame count" in message


def test_missing_frame_time_line(tmp_path):
    message = read_error(write(tmp_path, SIMPLE.replace("Frame Time: 0.04\n", "")))
    assert "Frame Time" in message


def test_missing_frames_line(tmp_path):
    message = read_error(write(tmp_path, SIMPLE.replace("Frames: 2\n", "")))
    assert "Frames" in message


def test_deeply_nested_hierarchy_does_not_escape_as_recursion_error(tmp_path):
    depth = 3000
    parts = ["HIERARCHY\nROOT J0\n{\nOFFSET 0 0 0\nCHANNELS 0\n"]
    parts += [f"JOINT J{i}\n{{\nOFFSET 0 1 0\nCHANNELS 0\n" for i in range(1, depth)]
    parts += ["}\n" * depth, "MOTION\nFrames: 1\nFrame Time: 0.1\n\n"]
    path = write(tmp_path, "".join(parts))
    try:
        bvh = read_bvh(path)
    except InputFileError:
        return  # rejecting it cleanly is fine
    assert len(bvh.names) == depth


def test_utf8_byte_order_mark(tmp_path):
    bvh = read_bvh(write(tmp_path, b"\xef\xbb\xbf" + SIMPLE.encode()))
    assert bvh.names == ("Hips", "Knee", "Ankle")


def test_latin1_joint_names_are_read(tmp_path):
    bvh = read_bvh(write(tmp_path, SIMPLE.replace("Knee", "Genou_é").encode("latin-1")))
    assert bvh.names[1] == "Genou_é"


# --------------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------------

CMU = "mocap/cmu/02_01.bvh"
BANDAI = "mocap/bandai-namco-1/dataset-1_bow_active_001.bvh"


@pytest.fixture(scope="module")
def cmu_bytes(shared_data) -> bytes:
    return (shared_data / CMU).read_bytes()


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("rel", "num_joints", "num_frames", "unit", "fps", "root"),
    [(BANDAI, 22, 128, "cm", 30.0, "joint_Root"), (CMU, 31, 343, "cmu", 120.0, "Hips")],
    ids=["bandai", "cmu"],
)
def test_real_files_parse(shared_data, rel, num_joints, num_frames, unit, fps, root):
    bvh = read_bvh(shared_data / rel)
    assert len(bvh.names) == num_joints
    assert len(set(bvh.names)) == num_joints
    assert bvh.names[0] == root
    assert bvh.num_frames == num_frames
    assert bvh.motion.shape == (num_frames, sum(len(c) for c in bvh.channels))
    assert np.all(np.isfinite(bvh.motion))
    assert bvh.fps == pytest.approx(fps, rel=1e-3)
    assert infer_unit_scale(bvh) == (unit, UNIT_SCALES[unit])
    assert bvh.parents[0] == -1
    assert all(0 <= p < j for j, p in enumerate(bvh.parents) if j)
    pos, _ = forward_kinematics(bvh, scale=UNIT_SCALES[unit], with_end_sites=True)
    assert pos.shape == (num_frames, num_joints + len(bvh.end_site_parents), 3)
    assert np.all(np.isfinite(pos))
    # Metres: the subject fits in a 2.5 m tall box on every frame.
    assert np.all(np.ptp(pos[..., 1], axis=1) < 2.5)
    assert np.all(np.ptp(pos[..., 1], axis=1) > 0.5)


@pytest.mark.shared_data
def test_cmu_bone_lengths_constant_over_all_frames(shared_data):
    bvh = read_bvh(shared_data / CMU)
    # Only the root carries position channels.
    assert all(not any(c.endswith("position") for c in chans) for chans in bvh.channels[1:])
    assert any(c.endswith("position") for c in bvh.channels[0])
    pos, _ = forward_kinematics(bvh, with_end_sites=True)
    parents = np.concatenate([bvh.parents, bvh.end_site_parents])
    offsets = np.concatenate([bvh.offsets, bvh.end_site_offsets])
    child = np.arange(1, len(parents))
    lengths = np.linalg.norm(pos[:, child] - pos[:, parents[child]], axis=-1)  # (F, bones)
    expected = np.linalg.norm(offsets[child], axis=-1)
    assert expected.max() > 5  # not a degenerate rig
    np.testing.assert_allclose(lengths, np.broadcast_to(expected, lengths.shape), rtol=1e-6, atol=1e-9)


@pytest.mark.shared_data
def test_real_file_cut_at_60_percent(tmp_path, cmu_bytes):
    path = write(tmp_path, cmu_bytes[: int(0.6 * len(cmu_bytes))])
    message = read_error(path)
    assert "truncated" in message


@pytest.mark.shared_data
def test_real_file_cut_in_middle_of_hierarchy(tmp_path, cmu_bytes):
    motion_at = cmu_bytes.index(b"MOTION")
    path = write(tmp_path, cmu_bytes[: motion_at // 2])
    message = read_error(path)
    assert "truncated" in message


@pytest.mark.shared_data
@pytest.mark.parametrize("seed", range(6))
def test_real_file_with_bytes_flipped_to_letters(tmp_path, cmu_bytes, seed):
    rng = np.random.default_rng(seed)
    data_start = cmu_bytes.index(b"\n", cmu_bytes.index(b"Frame Time")) + 1
    count = 1 if seed < 3 else 25
    # Any byte of the frame data but the line breaks (a CR turned into a letter would leave a lone
    # CR or LF and make "which line" ambiguous).
    candidates = [i for i in range(data_start, len(cmu_bytes)) if cmu_bytes[i] not in b"\r\n"]
    where = np.sort(rng.choice(candidates, size=count, replace=False))
    # Letters that can never complete a number: no e/E (exponent), no letters of nan/inf.
    letters = np.frombuffer(b"ghjkmpqrsuvwxzGHJKMPQRSUVWXZ", dtype=np.uint8)
    corrupt = np.frombuffer(cmu_bytes, dtype=np.uint8).copy()
    corrupt[where] = rng.choice(letters, size=count)
    path = write(tmp_path, corrupt.tobytes())
    message = read_error(path)
    first_bad_line = cmu_bytes[: where[0]].count(b"\n") + 1
    assert f"line {first_bad_line}:" in message


@pytest.mark.shared_data
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 0.999])
def test_real_file_cut_anywhere_raises_input_file_error(tmp_path, cmu_bytes, fraction):
    read_error(write(tmp_path, cmu_bytes[: int(fraction * len(cmu_bytes))]))
