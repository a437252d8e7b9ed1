"""Foot contacts from world-space joints, measured on motion capture walks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.bvh import read_bvh
from converters.contacts import foot_contacts
from converters.joints import H36M17
from converters.skeleton_maps import mocap_joints

ANKLES = [H36M17.index("left_ankle"), H36M17.index("right_ankle")]


@pytest.mark.shared_data
@pytest.mark.parametrize("take", ["bandai-namco-1/dataset-1_walk-back_active_001.bvh",
                                  "bandai-namco-1/dataset-1_walk-back_angry_001.bvh", "cmu/02_01.bvh"])
def test_a_walk_has_alternating_stance_phases_where_the_foot_is_still(shared_data: Path, take: str) -> None:
    bvh = read_bvh(shared_data / "mocap" / take)
    joints = mocap_joints(bvh).h36m
    contacts = foot_contacts(joints, bvh.fps)
    assert contacts.shape == (len(joints), 2) and contacts.dtype == bool
    speed = np.linalg.norm(np.gradient(joints[:, ANKLES][..., [0, 2]], axis=0), axis=-1) * bvh.fps
    assert 0.3 < contacts.mean(axis=0).min() and contacts.mean(axis=0).max() < 0.75  # a stance phase per step
    assert speed[contacts].mean() < 0.2 and speed[~contacts].mean() > 1.0  # still in contact, moving out of it
    assert (~contacts.any(axis=1)).mean() < 0.1  # a walk has (almost) no flight phase
    runs = np.flatnonzero(np.diff(contacts[:, 0].astype(int)))
    assert len(runs) >= 4  # the left foot lands and lifts several times


def test_hysteresis_keeps_a_noisy_stance_in_one_piece() -> None:
    fps = 30.0
    t = np.arange(90)
    joints = np.zeros((90, 17, 3))
    joints[:, :, 1] = 0.5
    joints[:, ANKLES, 1] = 0.08
    rng = np.random.default_rng(0)
    # The left ankle stands still for frames 0-59 (with height noise), then swings forward and up.
    joints[:60, ANKLES[0], 1] += 0.055 + rng.normal(0, 0.008, 60)
    joints[60:, ANKLES[0], 2] = (t[60:] - 60) * 0.06
    joints[60:, ANKLES[0], 1] += 0.15
    contacts = foot_contacts(joints, fps)
    assert contacts[5:55, 0].all() and not contacts[65:, 0].any()
    assert contacts[:, 1].all()  # the other foot never moves
