"""Feet on the floor on real video: the lab recording of the man standing on one leg and stepping
on the platform (pose2sim-multiperson, cam02, --person 1), converted as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.motion import forward_kinematics
from converters.motion_file import load_motion_file
from converters.rigs import ankle_joints
from converters.world import ANKLE_HEIGHT_M


@pytest.mark.shared_data
@pytest.mark.parametrize("rig", ["h36m", "mixamo"])
def test_the_standing_foot_is_planted_on_the_floor(shared_data: Path, tmp_path: Path, rig: str) -> None:
    video = shared_data / "multiview" / "pose2sim-multiperson" / "cam02.mp4"
    command = [sys.executable, "-m", "vp3d_engine.convert_cli", str(video), "--person", "1", "--motion", "--rig", rig,
               "--out", str(tmp_path), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = load_motion_file(tmp_path / "cam02.motion.npz")
    motion, contacts = found.motion, found.foot_contacts
    assert contacts is not None and motion.meta["feet"] == "lock" and motion.meta["smoothing"].startswith("oneeuro")
    # He stands on his left leg while lifting the right (frames 20-35 at 60 fps, seen in the video).
    assert contacts[20:36, 0].all()
    assert contacts.any(axis=1).mean() > 0.5
    ankles = forward_kinematics(motion)[0][:, [motion.rig.index(n) for n in ankle_joints(rig)]]
    step = np.linalg.norm(np.diff(ankles[..., [0, 2]], axis=0), axis=-1) * 1000  # mm per frame
    planted = contacts[1:] & contacts[:-1]
    assert step[planted].mean() < 5.0
    # Lowest point (the lower ankle, less its height over the sole) while he stands: on the floor.
    lowest = ankles[..., 1].min(axis=1) - ANKLE_HEIGHT_M
    standing = contacts.any(axis=1)
    assert np.abs(lowest[standing]).max() < 0.03
    assert lowest.min() > -0.005  # never through the floor
