"""Project checkpoint folders: atomic save, strict and verified load, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from converters.errors import CheckpointError
from vp3d_engine.checkpoints import build_models, load_checkpoint, resolve_checkpoint, save_checkpoint

CONFIG = {
    "lifter": "test",
    "architecture": {"filter_widths": [3, 3], "channels": 16, "dropout": 0.0, "causal": False, "dense": False},
    "trajectory": {"filter_widths": [3, 3], "channels": 8, "dropout": 0.0, "causal": False, "dense": False},
    "input": {"joints": "coco17", "features": 2, "normalization": "screen"},
    "output": {"joints": "h36m17", "units": "m", "root_relative": True},
    "fps": 30.0,
    "test_time_flip": True,
    "license": "test",
    "origin": "test",
}


def _saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(3)
    pose, traj = build_models(CONFIG)
    assert traj is not None
    out = save_checkpoint(tmp_path / "ckpt", CONFIG, pose, traj, extra_files={"MODEL_CARD.md": "# card\n"})
    return out, pose, traj


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    out, pose, traj = _saved(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["receptive_field"] == 9 and len(cfg["sha256"]) == 64
    loaded = load_checkpoint(out)
    x = torch.randn(1, 30, 17, 2)
    pose.eval()
    traj.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.pose(x), pose(x))
        assert loaded.trajectory is not None
        torch.testing.assert_close(loaded.trajectory(x), traj(x))


def test_resave_replaces_folder_without_leftovers(tmp_path: Path) -> None:
    out, pose, _ = _saved(tmp_path)
    save_checkpoint(out, CONFIG, pose, None)
    assert load_checkpoint(out).trajectory is None
    assert (out / "MODEL_CARD.md").is_file()  # kept from the earlier save
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folders left


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    out, _, _ = _saved(tmp_path)
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (out / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256"):
        load_checkpoint(out)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    out, _, _ = _saved(tmp_path)
    cfg = json.loads((out / "config.json").read_text())
    cfg["architecture"]["channels"] = 32
    cfg.pop("sha256")
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(out)


def test_missing_and_malformed_checkpoints_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint 'nope'"):
        resolve_checkpoint("nope")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "broken")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_checkpoint(tmp_path / "empty")


def test_checkpoints_are_found_by_name_on_the_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _, _ = _saved(tmp_path)
    monkeypatch.setenv("VP3D_CHECKPOINTS", str(tmp_path))
    assert resolve_checkpoint("ckpt") == out
