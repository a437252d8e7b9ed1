"""Fixtures shared by the engine tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: A few real mocap takes of different kinds (walk, bow, wave, gesture, run, dash; one CMU rig).
TRAINING_TAKES = [
    "bandai-namco-1/dataset-1_walk_normal_001.bvh",
    "bandai-namco-1/dataset-1_bow_normal_001.bvh",
    "bandai-namco-1/dataset-1_bye_happy_001.bvh",
    "bandai-namco-1/dataset-1_guide_proud_001.bvh",
    "bandai-namco-1/dataset-1_run_normal_001.bvh",
    "bandai-namco-1/dataset-1_dash_sad_001.bvh",
    "cmu/02_01.bvh",
]


@pytest.fixture(scope="module")
def takes_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding copies of :data:`TRAINING_TAKES`: a small training set for the tiny test lifter."""
    folder = tmp_path_factory.mktemp("takes")
    for rel in TRAINING_TAKES:
        shutil.copy(shared_data / "mocap" / rel, folder / Path(rel).name)
    return folder
