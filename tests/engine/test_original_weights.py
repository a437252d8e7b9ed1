"""Original VideoPose3D .bin files: architecture inference, safe loading, explicit conversion."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.errors import CheckpointError
from vp3d_engine.checkpoints import load_checkpoint
from vp3d_engine.lifters.temporal import TemporalModel
from vp3d_engine.original_weights import convert_original, infer_architecture, load_original_bin


def write_original_bin(path: Path, widths: list[int], channels: int, *, traj: bool = True, dense: bool = False,
                       extra: dict | None = None) -> tuple[TemporalModel, TemporalModel | None]:
    """A file in exactly the layout of the released checkpoints (random weights)."""
    torch.manual_seed(1)
    pos = TemporalModel(17, 2, 17, widths, channels=channels, dense=dense)
    model_traj = TemporalModel(17, 2, 1, widths, channels=channels, dense=dense) if traj else None
    params = list(pos.parameters()) + (list(model_traj.parameters()) if model_traj else [])
    optimizer = torch.optim.Adam(params, lr=0.001, amsgrad=True)
    loss = pos(torch.randn(2, pos.receptive_field, 17, 2)).sum()
    loss.backward()
    optimizer.step()
    blob = {
        "epoch": 80,
        "lr": 0.00052,
        "random_state": np.random.RandomState(1234).get_state(),
        "optimizer": optimizer.state_dict(),
        "model_pos": pos.state_dict(),
    }
    if model_traj is not None:
        blob["model_traj"] = model_traj.state_dict()
    blob.update(extra or {})
    torch.save(blob, path)
    return pos.eval(), model_traj.eval() if model_traj else None


@pytest.mark.parametrize(("widths", "dense"), [([3, 3, 3, 3, 3], False), ([3, 3, 3], True), ([5, 3], False),
                                               ([3, 3, 3, 3], True)])
def test_architecture_is_inferred_from_shapes(widths: list[int], dense: bool) -> None:
    # A dense model with only two widths is indistinguishable from a dilated one ([3, 7]); the
    # released models are all dilated, so that reading wins and is not tested here.
    model = TemporalModel(17, 2, 17, widths, channels=8, dense=dense)
    arch = infer_architecture(model.state_dict())
    assert arch["filter_widths"] == widths
    assert arch["dense"] == dense
    assert (arch["channels"], arch["num_joints_in"], arch["num_joints_out"]) == (8, 17, 17)


def test_original_layout_loads_safely_and_reproduces_outputs(tmp_path: Path) -> None:
    path = tmp_path / "pretrained_h36m_detectron_coco.bin"
    pos, traj = write_original_bin(path, [3, 3, 3, 3, 3], 16)
    lifter = load_checkpoint(path)
    assert lifter.receptive_field == 243
    assert lifter.config["input"]["joints"] == "coco17"
    assert "CC BY-NC" in lifter.config["license"]
    x = torch.randn(1, 250, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(lifter.pose(x), pos(x))
        assert lifter.trajectory is not None and traj is not None
        torch.testing.assert_close(lifter.trajectory(x), traj(x))


def test_known_file_names_set_the_input_format(tmp_path: Path) -> None:
    path = tmp_path / "pretrained_h36m_cpn.bin"
    write_original_bin(path, [3, 3], 8, traj=False)
    lifter = load_original_bin(path)
    assert lifter.config["input"]["joints"] == "h36m17"
    assert lifter.trajectory is None


def test_file_needing_full_unpickle_is_refused_then_converted_explicitly(tmp_path: Path) -> None:
    path = tmp_path / "custom.bin"
    pos, _ = write_original_bin(path, [3, 3], 8, extra={"args": argparse.Namespace(epochs=80)})
    with pytest.raises(CheckpointError, match=r"vp3d weights convert .*--trust-pickle") as info:
        load_checkpoint(path)
    assert "argparse.Namespace" in str(info.value)
    out = convert_original(path, tmp_path / "converted", trust_pickle=True)
    converted = load_checkpoint(out)
    assert (out / "MODEL_CARD.md").is_file()
    x = torch.randn(1, 12, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(converted.pose(x), pos(x))


def test_garbage_and_foreign_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_original_bin(junk)
    foreign = tmp_path / "foreign.bin"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="no 'model_pos'"):
        load_original_bin(foreign)
    wrong = tmp_path / "wrong.bin"
    torch.save({"model_pos": {"fc.weight": torch.zeros(2, 2)}}, wrong)
    with pytest.raises(CheckpointError, match="not a VideoPose3D state dict"):
        load_original_bin(wrong)


def test_convert_and_list_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from vp3d_engine.cli import main

    path = tmp_path / "pretrained_h36m_detectron_coco.bin"
    write_original_bin(path, [3, 3, 3], 8)
    out = tmp_path / "ckpts" / "vp3d-original"
    assert main(["weights", "convert", str(path), "--out", str(out)]) == 0
    assert load_checkpoint(out).receptive_field == 27
    monkeypatch.setenv("VP3D_CHECKPOINTS", str(out.parent))
    capsys.readouterr()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "videopose3d" in listing and "vp3d-original" in listing and "27 frames" in listing
    assert "mediapipe" in listing and "precomputed" in listing
    unsafe = tmp_path / "unsafe.bin"
    write_original_bin(unsafe, [3, 3], 8, extra={"args": argparse.Namespace(x=1)})
    assert main(["weights", "convert", str(unsafe), "--out", str(tmp_path / "u")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
