"""The world stage measured as an animator sees it: the shipped lifter on the validation takes,
filmed by seeded cameras with detector noise, scored in world space against the mocap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vp3d_engine.evaluation import WorldSettings, evaluate


@pytest.fixture(scope="module")
def figures(shared_data: Path) -> dict[str, dict[str, Any]]:
    data = [shared_data / "mocap"]
    return {name: evaluate(data, "default", noise="detector", seed=0, views=1, world=settings)
            for name, settings in (("default", WorldSettings()),
                                   ("raw", WorldSettings(trajectory="model", smoothing="none", feet="off")))}


@pytest.mark.shared_data
def test_default_world_stage_meets_the_motion_targets(figures: dict[str, dict[str, Any]]) -> None:
    done = figures["default"]
    assert done["world"] == {"trajectory": "image", "smoothing": "auto", "feet": "lock"}
    assert done["foot_skating_mm"] < 5.0  # per frame, while the mocap has the foot planted
    assert done["jitter_ratio"] <= 1.2
    assert done["penetration_mm"] < 5.0
    assert done["frames"] > 10_000


@pytest.mark.shared_data
def test_the_clean_up_beats_the_raw_lifter_output(figures: dict[str, dict[str, Any]]) -> None:
    done, raw = figures["default"], figures["raw"]
    assert done["world_mpjpe_mm"] < raw["world_mpjpe_mm"]
    assert done["root_drift_mm"] < raw["root_drift_mm"]
    assert done["foot_skating_mm"] < 0.5 * raw["foot_skating_mm"]
    assert done["penetration_share"] < 0.5 * raw["penetration_share"]
    assert done["mpjpe_mm"] == pytest.approx(raw["mpjpe_mm"])  # the camera-space figures are the lifter's own
