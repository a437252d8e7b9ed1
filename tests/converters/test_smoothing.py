"""Smoothing filters chosen by name: they remove jitter, keep the motion, and refuse bad specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.errors import ConfigurationError
from converters.smoothing import FILTERS, parse_smooth, smooth


def _jerk(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, n=2, axis=0)).mean())


@pytest.mark.parametrize("name", [n for n in FILTERS if n != "none"])
def test_each_filter_removes_jitter_and_keeps_the_motion(name: str) -> None:
    fps = 30.0
    t = np.arange(300) / fps
    clean = np.stack([np.sin(2 * np.pi * 0.5 * t), 0.3 * np.cos(2 * np.pi * 1.0 * t)], axis=-1)[:, None, :]
    noisy = clean + np.random.default_rng(0).normal(0, 0.02, clean.shape)
    out = smooth(noisy, fps, name)
    assert out.shape == noisy.shape
    assert _jerk(out) < 0.5 * _jerk(noisy)  # jitter (second differences) at least halved
    assert np.abs(out - clean)[15:-15].mean() < np.abs(noisy - clean)[15:-15].mean()  # closer to the motion
    assert np.abs(out - clean)[15:-15].max() < 0.08  # no lag or overshoot worth a joint's size


def test_none_changes_nothing_and_specs_are_checked() -> None:
    x = np.random.default_rng(1).normal(size=(20, 17, 3))
    np.testing.assert_array_equal(smooth(x, 30.0, "none"), x)
    spec = parse_smooth("oneeuro:mincutoff=1.5,beta=0.1")
    assert spec.params == {"mincutoff": 1.5, "beta": 0.1, "dcutoff": 1.0}  # dcutoff from the defaults
    assert str(spec) == "oneeuro:beta=0.1,dcutoff=1,mincutoff=1.5"
    for bad, needle in (("kalman", "unknown smoothing 'kalman'"), ("savgol:order=9", "order must be from 1 to 5"),
                        ("butter:cutoff=nan", "cutoff must be"), ("oneeuro:speed=2", "takes mincutoff, beta"),
                        ("savgol:window=x", "is not a number")):
        with pytest.raises(ConfigurationError, match=needle):
            parse_smooth(bad)


@pytest.mark.shared_data
def test_the_cli_records_the_filter_in_the_motion_file(shared_data: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from converters.motion_file import load_motion_file
    from vp3d_engine.convert_cli import main

    source = shared_data / "mocap" / "cmu" / "02_01.bvh"
    assert main([str(source), "--out", str(tmp_path), "--motion", "--smooth", "butter:cutoff=4", "--quiet"]) == 0
    assert load_motion_file(tmp_path / "02_01.motion.npz").motion.meta["smoothing"] == "butter:cutoff=4,order=4"
    with pytest.raises(SystemExit):
        main([str(source), "--out", str(tmp_path), "--motion", "--smooth", "butter:cutoff=0"])
    assert "cutoff must be from 0.1 to 100" in capsys.readouterr().err.splitlines()[-1]
