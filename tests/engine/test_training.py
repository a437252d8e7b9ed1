"""`vp3d train` and `vp3d evaluate` on real mocap takes with the tiny test lifter."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.errors import ConfigurationError
from vp3d_engine.checkpoints import build_models, save_checkpoint
from vp3d_engine.cli import main
from vp3d_engine.evaluation import evaluate
from vp3d_engine.training.train import TrainOptions, train

pytestmark = pytest.mark.shared_data

def _opts(data: Path, out: Path, epochs: int, schedule: str = "exponential") -> TrainOptions:
    return TrainOptions(data=[data], out=out, lifter="test", epochs=epochs, batch_size=128, val_fraction=0.3,
                        samples_per_epoch=2048, seed=7, lr=3e-3, val_views=1, lr_schedule=schedule, lr_final=0.1)


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_training_learns_and_resumes_exactly(takes_dir: Path, tmp_path: Path, schedule: str) -> None:
    full = train(_opts(takes_dir, tmp_path / "full", 3, schedule))
    history = full["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    # The learning rate each epoch: 3e-3 decayed by 0.95 per epoch, or a half cosine from 3e-3 to
    # 3e-4 (lr_final 0.1) over the three epochs, its midpoint halfway between.
    expected = [3e-3, 3e-3 * 0.95, 3e-3 * 0.95**2] if schedule == "exponential" else [3e-3, 1.65e-3, 3e-4]
    assert [h["lr"] for h in history] == pytest.approx(expected, rel=1e-9)
    assert history[-1]["val_mpjpe_mm"] < history[0]["val_mpjpe_mm"]
    assert history[-1]["train_mpjpe_mm"] < history[0]["train_mpjpe_mm"]
    # Interrupt (Ctrl-C) during the third epoch, then run again: it resumes after epoch two and
    # ends with the same figures as the uninterrupted run.
    def interrupt(event: dict) -> None:
        if event["kind"] == "batch" and event["epoch"] == 3 and event["batch"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_opts(takes_dir, tmp_path / "resumed", 3, schedule), interrupt)
    resumed = train(_opts(takes_dir, tmp_path / "resumed", 3, schedule))
    assert len(resumed["history"]) == 3
    assert [h["lr"] for h in resumed["history"]] == pytest.approx(expected, rel=1e-9)
    # Going on under another schedule is refused in one line: another --lr, a cosine stretched over
    # more epochs (its rate would climb back up), or, for a state saved before the schedule was,
    # a rate that does not follow on. More epochs of the same exponential decay go on.
    with pytest.raises(ConfigurationError, match="another learning-rate schedule"):
        train(replace(_opts(takes_dir, tmp_path / "resumed", 3, schedule), lr=1e-3))
    state_path = tmp_path / "resumed" / "training_state.pt"
    if schedule == "cosine":
        with pytest.raises(ConfigurationError, match="another learning-rate schedule"):
            train(_opts(takes_dir, tmp_path / "resumed", 4, schedule))
    else:
        assert len(train(_opts(takes_dir, tmp_path / "resumed", 4, schedule))["history"]) == 4
    state = torch.load(state_path, weights_only=True)
    del state["schedule"]
    torch.save(state, state_path)
    with pytest.raises(ConfigurationError, match="lr at epoch"):
        train(replace(_opts(takes_dir, tmp_path / "resumed", 5, schedule), lr=1e-3))
    assert resumed["history"][-1]["val_mpjpe_mm"] == pytest.approx(history[-1]["val_mpjpe_mm"], rel=1e-4)
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())
    held_out = set(cfg["training"]["val_take_names"])
    assert held_out and held_out < {p.stem for p in takes_dir.iterdir()}
    assert cfg["training"]["train_takes"] + cfg["training"]["val_takes"] == len(list(takes_dir.glob("*.bvh")))


def test_averaged_weights_are_validated_kept_and_resumed(takes_dir: Path, tmp_path: Path) -> None:
    from vp3d_engine.checkpoints import load_checkpoint

    opts = replace(_opts(takes_dir, tmp_path / "avg", 3), average_epochs=1.0)
    full = train(opts)
    history = full["history"]
    # Each epoch validates the average (what is kept) and the last weights, both recorded.
    for h in history:
        assert np.isfinite(h["val_last_mpjpe_mm"]) and h["val_last_mpjpe_mm"] != h["val_mpjpe_mm"]
    assert history[-1]["val_mpjpe_mm"] < history[0]["val_mpjpe_mm"]
    best = min(history, key=lambda h: h["val_mpjpe_mm"])
    cfg = json.loads((tmp_path / "avg" / "config.json").read_text())
    assert cfg["training"]["average_epochs"] == 1.0 and cfg["training"]["epoch"] == best["epoch"]
    # The checkpoint holds the averaged weights, not the last ones; the state keeps both.
    state = torch.load(tmp_path / "avg" / "training_state.pt", weights_only=True)
    assert state["average_steps"] == 3 * (2048 // 128)
    kept = load_checkpoint(tmp_path / "avg").pose.state_dict()
    name = next(k for k, v in state["pose"].items() if v.is_floating_point() and v.dim() > 1)
    if best["epoch"] == 3:
        assert torch.allclose(kept[name], state["average"]["0." + name])
    assert not torch.allclose(state["average"]["0." + name], state["pose"][name])
    # Interrupted in the third epoch and run again: the average goes on from where it was saved.
    def interrupt(event: dict) -> None:
        if event["kind"] == "batch" and event["epoch"] == 3 and event["batch"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(replace(opts, out=tmp_path / "again"), interrupt)
    resumed = train(replace(opts, out=tmp_path / "again"))
    assert resumed["history"][-1]["val_mpjpe_mm"] == pytest.approx(history[-1]["val_mpjpe_mm"], rel=1e-4)
    # Without averaging the figures are the last weights' alone.
    plain = train(_opts(takes_dir, tmp_path / "plain", 1))["history"][0]
    assert "val_last_mpjpe_mm" not in plain and plain["val_mpjpe_mm"] == pytest.approx(
        history[0]["val_last_mpjpe_mm"], rel=1e-4)
    with pytest.raises(ConfigurationError, match="--average-epochs"):
        train(replace(opts, average_epochs=-1.0, out=tmp_path / "bad"))


def test_bfloat16_training_learns_as_fp32_does(takes_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    exact = train(_opts(takes_dir, tmp_path / "fp32", 2))["history"]
    half = train(replace(_opts(takes_dir, tmp_path / "bf16", 2), precision="bf16"))["history"]
    assert half[-1]["val_mpjpe_mm"] < half[0]["val_mpjpe_mm"]
    # Same seed, same batches: the two runs stay within a few percent of each other.
    for a, b in zip(exact, half, strict=True):
        assert b["train_mpjpe_mm"] == pytest.approx(a["train_mpjpe_mm"], rel=0.05)
        assert b["val_mpjpe_mm"] == pytest.approx(a["val_mpjpe_mm"], rel=0.1)
    cfg = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert cfg["training"]["precision"] == "bf16"
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["training"]["precision"] == "fp32"
    with pytest.raises(ConfigurationError, match="--precision fp16: use fp32 or bf16"):
        train(replace(_opts(takes_dir, tmp_path / "bad", 1), precision="fp16"))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "bad"), "--lifter", "test",
              "--precision", "fp16", "--quiet"])
    assert exit_.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_fine_tuning_starts_from_a_checkpoint(takes_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    base = train(_opts(takes_dir, tmp_path / "base", 2))
    tuned = train(replace(_opts(takes_dir, tmp_path / "tuned", 1), init=tmp_path / "base", lr=1e-4))
    scratch = train(_opts(takes_dir, tmp_path / "scratch", 1))
    # One epoch on top of two is far ahead of one epoch from scratch: the weights were taken over.
    assert tuned["history"][0]["train_mpjpe_mm"] < scratch["history"][0]["train_mpjpe_mm"]
    assert tuned["history"][0]["train_mpjpe_mm"] < base["history"][0]["train_mpjpe_mm"]
    cfg = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert cfg["training"]["init"] == str(tmp_path / "base") and cfg["training"]["body_shape"]["probability"] > 0
    # Another architecture: one line saying what to give.
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "bad"), "--lifter", "test",
                 "--channels", "24", "--init", str(tmp_path / "base"), "--quiet"]) == 2
    assert "do not fit this architecture" in capsys.readouterr().err
    # A checkpoint that is not there: one line, nothing written.
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "none"), "--lifter", "test",
                 "--init", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "none" / "config.json").exists()


def test_train_and_evaluate_commands(takes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ckpt"
    assert main(["train", "--data", str(takes_dir), "--out", str(out), "--lifter", "test", "--epochs", "2",
                 "--batch-size", "128", "--samples-per-epoch", "1024", "--val-fraction", "0.3",
                 "--camera-distance", "1.5", "9", "--frame-span", "4", "--quiet"]) == 0
    assert "best validation MPJPE" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["training"]["frame_span_s"] == 4.0
    # The training cameras' range is the one asked for, and recorded with the checkpoint.
    ranges = json.loads((out / "config.json").read_text())["training"]["camera_ranges"]
    assert ranges["distance_m"] == [1.5, 9.0]
    assert json.loads((out / "config.json").read_text())["training"]["body_shape"]["probability"] == 0.8
    # The share of windows given random body proportions, as asked; 0 gives none.
    for share, recorded in (("0.3", 0.3), ("0", None)):
        assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / f"shape{share}"), "--lifter", "test",
                     "--epochs", "1", "--batch-size", "128", "--samples-per-epoch", "256", "--val-fraction", "0.3",
                     "--body-shape-share", share, "--quiet"]) == 0
        shape = json.loads((tmp_path / f"shape{share}" / "config.json").read_text())["training"]["body_shape"]
        assert (shape and shape["probability"]) == recorded
    report = tmp_path / "eval.json"
    for noise in ("none", "detector"):
        assert main(["evaluate", "--data", str(takes_dir), "--checkpoint", str(out), "--noise", noise,
                     "--json", str(report)]) == 0
        table = capsys.readouterr().out
        assert "ALL" in table and "mpjpe" in table
        result = json.loads(report.read_text())
        for key in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "root_error_mm", "frames"):
            assert np.isfinite(result[key]) and result[key] > 0, key
        assert result["p_mpjpe_mm"] < result["mpjpe_mm"]
        assert sum(t["frames"] for t in result["per_take"].values()) == result["frames"]
    # Same seed, same figures; another seed, other cameras.
    again = evaluate([takes_dir], out, noise="detector", seed=0)
    assert again["mpjpe_mm"] == pytest.approx(result["mpjpe_mm"], rel=1e-6)
    other = evaluate([takes_dir], out, noise="detector", seed=1)
    assert other["mpjpe_mm"] != pytest.approx(result["mpjpe_mm"], rel=1e-6)


def test_bad_arguments_give_one_line_errors(takes_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = {"lifter": "test", "architecture": {"filter_widths": [3, 3], "channels": 8},
              "input": {"joints": "coco17"}, "output": {"joints": "h36m17"}}
    pose, _ = build_models(config)
    ckpt = save_checkpoint(tmp_path / "ckpt", config, pose)
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--checkpoint", str(ckpt)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(takes_dir), "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", str(takes_dir)])  # --out missing: argparse usage error
    capsys.readouterr()
    # Nearest distance last: one line that says the order, nothing written.
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "far"), "--lifter", "test",
                 "--camera-distance", "3", "2", "--quiet"]) == 2
    assert "--camera-distance 3 2: give the nearest distance first" in capsys.readouterr().err
    assert not (tmp_path / "far" / "config.json").exists()
    # Nearer than the cameras can be placed (they keep 1.5 m from the person): refused the same way.
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "near"), "--lifter", "test",
                 "--camera-distance", "1", "9", "--quiet"]) == 2
    assert "at least 1.5 m" in capsys.readouterr().err
    for bad in (["--lr-schedule", "linear"], ["--lr-final", "1.5"], ["--lr-final", "-0.1"],
                ["--camera-distance", "0", "5"], ["--camera-distance", "2"]):
        with pytest.raises(SystemExit) as exc:
            main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "sched"), "--lifter", "test", *bad])
        assert exc.value.code == 2
        assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "sched").exists()


def _recipe(path: Path) -> Path:
    recipe = {"options": {"lifter": "test", "val_fraction": 0.3, "val_views": 1},
              "stages": [{"name": "first", "epochs": 2, "batch_size": 128, "samples_per_epoch": 2048, "lr": 3e-3,
                          "seed": 7},
                         {"name": "near", "epochs": 2, "batch_size": 128, "samples_per_epoch": 2048, "lr": 1e-3,
                          "lr_schedule": "cosine", "seed": 8, "camera_distance": [1.5, 9]}]}
    path.write_text(json.dumps(recipe))
    return path


def test_a_recipe_runs_its_stages_in_a_row_and_goes_on_after_an_interruption(
        takes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vp3d_engine.training.recipe import load_recipe, train_recipe

    recipe_file = _recipe(tmp_path / "recipe.json")
    out = tmp_path / "model"
    assert main(["train", "--data", str(takes_dir), "--out", str(out), "--recipe", str(recipe_file), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "stage 1 of 2 (first): 2 epochs" in printed and "stage 2 (near): best epoch" in printed
    first, near = tmp_path / "model-stages" / "01-first", tmp_path / "model-stages" / "02-near"
    cfg = json.loads((out / "config.json").read_text())
    near_cfg = json.loads((near / "config.json").read_text())
    # The checkpoint is the last stage's best, which started from the first stage's best with its
    # own options; the recipe and each stage's figures are recorded with it.
    assert cfg["sha256"] == near_cfg["sha256"]
    assert near_cfg["training"]["init"] == str(first)
    assert near_cfg["training"]["camera_ranges"]["distance_m"] == [1.5, 9.0]
    assert json.loads((first / "config.json").read_text())["training"]["init"] is None
    stages = cfg["training"]["stages"]
    assert [s["name"] for s in stages] == ["first", "near"]
    assert cfg["training"]["recipe"]["stages"][1]["lr_schedule"] == "cosine"
    state = torch.load(near / "training_state.pt", weights_only=True)
    history = json.loads(state["history"])
    assert [h["lr"] for h in history] == pytest.approx([1e-3, 1e-5], rel=1e-9)  # its own cosine, lr_final 0.01
    # The second stage learns on from the first: its first epoch is ahead of the first stage's
    # first epoch (from random weights).
    first_history = json.loads(torch.load(first / "training_state.pt", weights_only=True)["history"])
    assert history[0]["train_mpjpe_mm"] < first_history[0]["train_mpjpe_mm"]

    # Interrupted during the second stage, then run again: the first stage is not run again and the
    # result is the uninterrupted one.
    batches: list[dict] = []

    def interrupt(event: dict) -> None:
        batches.extend([event] if event["kind"] == "batch" else [])
        if len(batches) == 2 * 16 + 16 + 5:  # 16 batches an epoch: the second stage's second epoch
            raise KeyboardInterrupt

    again = tmp_path / "again"
    recipe = load_recipe(recipe_file)
    with pytest.raises(KeyboardInterrupt):
        train_recipe(recipe, [takes_dir], again, progress=interrupt)
    first_state = tmp_path / "again-stages" / "01-first" / "training_state.pt"
    stamp = first_state.stat().st_mtime_ns
    assert not (again / "config.json").exists()  # nothing half-made where the checkpoint goes
    done = train_recipe(load_recipe(recipe_file), [takes_dir], again)
    assert first_state.stat().st_mtime_ns == stamp
    assert done["stages"][1]["history"][-1]["val_mpjpe_mm"] == pytest.approx(history[-1]["val_mpjpe_mm"], rel=1e-4)
    assert json.loads((again / "config.json").read_text())["sha256"] == cfg["sha256"]

    # The first stage's checkpoint changes (here: re-saved with other weights): the second stage,
    # trained from the old one, is trained again from the new one.
    from vp3d_engine.checkpoints import load_checkpoint

    old = load_checkpoint(first)
    with torch.no_grad():
        for p in old.pose.parameters():
            p.mul_(0.9)
    save_checkpoint(first, {k: v for k, v in old.config.items() if k not in ("sha256", "format", "format_version")},
                    old.pose, old.trajectory)
    notes: list[str] = []
    redone = train_recipe(load_recipe(recipe_file), [takes_dir], out,
                          progress=lambda e: notes.append(e["text"]) if e["kind"] == "note" else None)
    assert notes == ["stage 2 (near) started from an earlier first: trained again"]
    assert len(redone["stages"][1]["history"]) == 2
    assert json.loads((out / "config.json").read_text())["sha256"] != cfg["sha256"]

    # A finished stage whose options change in the recipe is trained again (and the ones after it).
    edited = json.loads(recipe_file.read_text())
    edited["stages"][1]["lr"] = 2e-3
    recipe_file.write_text(json.dumps(edited))
    notes.clear()
    train_recipe(load_recipe(recipe_file), [takes_dir], out,
                 progress=lambda e: notes.append(e["text"]) if e["kind"] == "note" else None)
    assert notes == ["stage 2 (near) had other options or data: trained again"]
    # A wrong value in a later stage is refused before the first stage trains.
    edited["stages"][1]["camera_distance"] = [9, 1.5]
    recipe_file.write_text(json.dumps(edited))
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "late"), "--recipe",
                 str(recipe_file)]) == 2
    assert "stage 2 (near): --camera-distance 9 1.5" in capsys.readouterr().err
    assert not (tmp_path / "late-stages").exists()

    # Options that the recipe sets are refused beside it, and a broken recipe is named; nothing written.
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "x"), "--recipe", str(recipe_file),
                 "--lr", "1e-2"]) == 2
    assert "--lr cannot go with --recipe" in capsys.readouterr().err
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "x"), "--recipe", str(recipe_file),
                 "--epochs", "40"]) == 2  # the default's value, but given: the recipe would ignore it
    assert "--epochs cannot go with --recipe" in capsys.readouterr().err
    for text, message in [('{"stages": [{"epochs": "3"}]}', "stage 1: epochs must be a whole number"),
                          ('{"stages": [{"epochs": 3, "channels": 8}]}', "'channels' (shared by all stages"),
                          ('{"stages": []}', 'a list of "stages"'), ("[1", "not valid JSON"),
                          ('{"stages": [{"epochs": 1, "name": "../x"}]}', "must be unique letters"),
                          ('{"stages": [{"epochs": 1}, {"epochs": 1, "name": "stage1"}]}', "must be unique letters"),
                          (" " * (1 << 20) + "{}", "is no recipe")]:
        (tmp_path / "bad.json").write_text(text)
        assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "x"), "--recipe",
                     str(tmp_path / "bad.json")]) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "x"), "--recipe", "nope"]) == 2
    assert "one of default" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x-stages").exists()


def test_the_default_recipe_reads_as_the_chain_behind_the_default_checkpoint() -> None:
    from vp3d_engine.training.recipe import _stage_options, load_recipe

    recipe = load_recipe("default")
    opts = [_stage_options(recipe, i, [Path("mocap")], Path("out"), "cpu") for i in range(len(recipe["stages"]))]
    assert [o.epochs for o in opts] == [70, 10, 25, 14, 14]
    assert opts[0].init is None and all(o.init == p.out for o, p in zip(opts[1:], opts[:-1], strict=True))
    assert opts[-1].camera_distance == opts[-2].camera_distance == (1.5, 9.0) and opts[0].camera_distance is None
    # The last stage, the default's last run: cameras aimed at and framing 20 s of the take.
    assert [o.frame_span for o in opts] == [0, 0, 0, 0, 20]
    assert {o.precision for o in opts} == {"bf16"}  # 1.7x the samples per second of fp32 on this CPU
    cfg = json.loads((Path(__file__).resolve().parents[2] / "checkpoints" / "default" / "config.json").read_text())
    assert cfg["training"]["frame_span_s"] == opts[-1].frame_span and cfg["training"]["seed"] == opts[-1].seed
    shapes = {(o.channels, o.trajectory_channels, tuple(o.filter_widths or ())) for o in opts}
    assert shapes == {(256, 128, (3, 3, 3, 3))}
