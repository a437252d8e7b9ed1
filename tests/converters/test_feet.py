"""Foot locking on a real walk made noisy the way a monocular lifter is: planted feet stay put,
bones keep their lengths, nothing goes through the floor, nothing pops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.bvh import read_bvh
from converters.contacts import foot_contacts
from converters.feet import FootLocking, lock_feet, rigid_joints
from converters.joints import H36M17
from converters.motion import forward_kinematics
from converters.skeleton_maps import mocap_joints
from converters.solve import solve

WALK = "mocap/bandai-namco-1/dataset-1_walk_normal_001.bvh"
ANKLES = [H36M17.index("left_ankle"), H36M17.index("right_ankle")]
LEGS = [(H36M17.index(f"{s}_hip"), H36M17.index(f"{s}_knee"), H36M17.index(f"{s}_ankle")) for s in ("left", "right")]


def _floor(joints: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """Shifted so the ankles in contact sit at 8 cm, as vp3d's world step leaves them."""
    return joints + [0.0, 0.08 - float(np.median(joints[:, ANKLES, 1][contacts])), 0.0]


@pytest.fixture(scope="module")
def noisy_walk(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real walk (world, Y up) with its true contacts, and the same walk with lifter-like noise:
    the whole body wobbles in depth and every joint jitters; rigid bones, floor under the feet."""
    bvh = read_bvh(shared_data / WALK)
    truth = rigid_joints(mocap_joints(bvh).h36m, bvh.fps)
    contacts = foot_contacts(truth, bvh.fps)
    rng = np.random.default_rng(3)
    t = np.arange(len(truth)) / bvh.fps
    wobble = np.stack([0.02 * np.sin(2 * np.pi * 1.3 * t), 0.01 * np.sin(2 * np.pi * 0.7 * t),
                       0.04 * np.sin(2 * np.pi * 0.9 * t + 1)], axis=1)
    noisy = truth + wobble[:, None] + rng.normal(0, 0.008, truth.shape)
    noisy = rigid_joints(noisy, bvh.fps)
    return _floor(truth, contacts), _floor(noisy, contacts), contacts


def _step_mm(ankles: np.ndarray) -> np.ndarray:
    """Horizontal movement per frame ``(T-1,2)`` in millimetres."""
    return np.linalg.norm(np.diff(ankles[..., [0, 2]], axis=0), axis=-1) * 1000


@pytest.mark.shared_data
def test_planted_feet_stay_put_and_bones_keep_their_lengths(noisy_walk: tuple[np.ndarray, ...]) -> None:
    truth, noisy, contacts = noisy_walk
    locked, figures = lock_feet(noisy, contacts, 30.0)
    both = contacts[1:] & contacts[:-1]
    before, after = _step_mm(noisy[:, ANKLES]), _step_mm(locked[:, ANKLES])
    assert before[both].mean() > 5.0  # the noise makes the planted foot slide ...
    assert after[both].mean() < 0.5  # ... locking holds it
    for hip, knee, ankle in LEGS:
        for a, b in ((hip, knee), (knee, ankle)):
            np.testing.assert_allclose(np.linalg.norm(locked[:, a] - locked[:, b], axis=-1),
                                       np.linalg.norm(noisy[:, a] - noisy[:, b], axis=-1), atol=1e-9)
    assert locked[:, ANKLES, 1].min() >= 0.08 - 1e-9  # no ankle below its height over the floor
    # Blended in and out: no frame jumps further than the walk itself does.
    assert after.max() <= before.max() + 5.0
    # The upper body is untouched but for the root's reach correction (small on a walk).
    assert figures["root_shift_m"] < 0.01
    np.testing.assert_allclose(locked[:, H36M17.index("head_top")], noisy[:, H36M17.index("head_top")], atol=0.05)
    # Where the foot is held, it is held where the noisy foot was on average: near the truth.
    held = np.linalg.norm(locked[:, ANKLES][contacts][:, [0, 2]] - truth[:, ANKLES][contacts][:, [0, 2]], axis=-1)
    assert np.median(held) < 0.03


@pytest.mark.shared_data
def test_the_locked_joints_survive_solving(noisy_walk: tuple[np.ndarray, ...]) -> None:
    """The rig solved from locked joints puts its ankles where the lock put them."""
    _, noisy, contacts = noisy_walk
    locked, _ = lock_feet(noisy, contacts, 30.0)
    motion = solve(locked, 30.0, "h36m")
    np.testing.assert_allclose(forward_kinematics(motion)[0][:, ANKLES], locked[:, ANKLES], atol=1e-6)


def test_a_target_out_of_reach_moves_the_root() -> None:
    """A foot planted further away than the leg reaches: the body follows, the knee does not flip."""
    from tests.converters.poses import t_pose

    pose = t_pose(arms_down=True)
    joints = np.repeat(pose[None], 30, axis=0)
    joints[:, :, 1] -= 0.02  # ankles at 8 cm
    contacts = np.zeros((30, 2), dtype=bool)
    contacts[:, 0] = True
    joints[15:, :, 0] += 0.4  # the body steps sideways while the left foot is held where it stood
    locked, figures = lock_feet(rigid_joints(joints, 30.0), contacts, 30.0, FootLocking(blend_s=0.1))
    hip, knee, ankle = LEGS[0]
    leg = np.linalg.norm(locked[:, knee] - locked[:, hip], axis=-1) + np.linalg.norm(
        locked[:, ankle] - locked[:, knee], axis=-1)
    reach = np.linalg.norm(locked[:, ankle] - locked[:, hip], axis=-1)
    assert (reach <= leg + 1e-9).all() and figures["root_shift_m"] > 0.01
    assert np.ptp(locked[:, ankle, 0]) < 0.01  # held in place
