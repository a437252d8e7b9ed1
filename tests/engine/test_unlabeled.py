"""Semi-supervised training (`vp3d train --unlabeled`): its losses on real mocap, and what it does
to the lifter's output on a real clip the training saw only as MediaPipe 2D."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.joints import COCO17, H36M17
from vp3d_engine.checkpoints import UNLABELED_CACHE_DIR, load_checkpoint
from vp3d_engine.cli import main
from vp3d_engine.lifters.inference import predict_sequence
from vp3d_engine.training import unlabeled as ul
from vp3d_engine.training.batches import WindowSampler
from vp3d_engine.training.mocap_data import load_takes
from vp3d_engine.training.synthetic import CameraRanges
from vp3d_engine.training.train import TrainOptions, train

pytestmark = pytest.mark.shared_data

@pytest.fixture(scope="module")
def clip_2d(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dancer clip's 2D as vp3d-convert writes it (a result file): the unlabeled input."""
    out = tmp_path_factory.mktemp("clip")
    assert main_convert([str(shared_data / "videos" / "dance_ball_480p.mp4"), "--out", str(out), "--npz"]) == 0
    (npz,) = out.glob("*.npz")
    return npz


def main_convert(argv: list[str]) -> int:
    from vp3d_engine.convert_cli import main as convert_main

    return convert_main(argv)


def test_projection_loss_is_zero_for_the_truth_and_grows_with_each_kind_of_error(takes_dir: Path) -> None:
    takes = load_takes(sorted(takes_dir.glob("*.bvh")), 30.0)
    batch = WindowSampler(takes, 9, 0, CameraRanges(), None, flip=True).sample(np.random.default_rng(0), 256)
    observed = torch.from_numpy(batch.inputs[:, 4])  # the clean 2D of the output frame
    pose, root = torch.from_numpy(batch.pose[:, 0]), torch.from_numpy(batch.trajectory[:, 0])
    weights = torch.ones(256, 17)

    def loss_mm(p: torch.Tensor, w: torch.Tensor = weights) -> float:
        return ul.projection_loss(p, root, observed, w).item() * 1000

    assert loss_mm(pose) < 0.01
    assert loss_mm(pose * 1.3) < 10  # size is free (the bone-length prior holds it) ...
    a = np.radians(30)  # ... a pose turned 30 degrees about the vertical is not
    yaw = torch.tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], dtype=torch.float32)
    assert loss_mm(pose @ yaw.T) > 40
    noisy = pose + 0.03 * torch.randn(pose.shape, generator=torch.Generator().manual_seed(0))
    assert 20 < loss_mm(noisy) < 60
    # A joint the tracker filled in (weight 0) is not judged, however wrong it is.
    wrong_wrist = pose.clone()
    wrong_wrist[:, H36M17.names.index("left_wrist")] += 0.5
    w = weights.clone()
    w[:, COCO17.names.index("left_wrist")] = 0
    assert loss_mm(wrong_wrist, w) < 0.01 < 30 < loss_mm(wrong_wrist)
    # Bone lengths and their spread within a group of frames.
    lengths = ul.bone_lengths(pose)
    assert lengths.shape == (256, 16)
    assert ul.consistency_loss(lengths[:1].expand(8, 16).reshape(2, 4, 16)).item() == pytest.approx(0, abs=1e-7)
    assert ul.consistency_loss(lengths[:8].reshape(2, 4, 16)).item() > 0.01  # different people and shapes


def test_sampler_groups_frames_of_one_clip_with_one_flip() -> None:
    rng = np.random.default_rng(1)
    clips = [ul.UnlabeledClip(name=f"c{i}", inputs=np.full((50 + i, 17, 2), i, dtype=np.float32)
                              + np.linspace(0, 0.01, 17, dtype=np.float32)[None, :, None],
                              weights=np.ones((50 + i, 17), dtype=np.float32)) for i in range(1, 4)]
    sampler = ul.UnlabeledSampler(clips, 27, per_group=8)
    batch = sampler.sample(rng, 64)
    assert batch.inputs.shape == (512, 27, 17, 2) and batch.observed.shape == (512, 17, 2)
    groups = batch.observed.reshape(64, 8, 17, 2)
    values = np.abs(groups[..., 0, 1])  # y of the nose: the clip's number, whatever the flip
    assert np.all(values == values[:, :1])
    flipped = groups[:, :, 0, 0] < 0
    assert np.all(flipped == flipped[:, :1]) and 0 < flipped[:, 0].mean() < 1
    assert np.allclose(batch.inputs[:, 13], batch.observed)  # the output frame is the window's centre


def _clip_figures(checkpoint: Path, clip: ul.UnlabeledClip) -> tuple[float, float]:
    """On the clip: mean coefficient of variation of the limb bones' lengths, and the projection
    error (mm) of the lifted limbs against the clip's 2D."""
    lifter = load_checkpoint(checkpoint)
    pose = predict_sequence(lifter.pose, clip.inputs, flip=False, flip_perm_in=COCO17.flip_permutation(),
                            flip_perm_out=H36M17.flip_permutation(), device="cpu")
    pose = torch.from_numpy(pose - pose[:, :1]).float()
    lengths = ul.bone_lengths(pose)
    limbs = [H36M17.names.index(n) - 1 for n in ("right_knee", "right_ankle", "left_knee", "left_ankle",
                                                  "left_elbow", "left_wrist", "right_elbow", "right_wrist")]
    cv = (lengths[:, limbs].std(0) / lengths[:, limbs].mean(0)).mean().item()
    root = torch.tensor(ul.DEFAULT_ROOT).expand(len(pose), 3)
    proj = ul.projection_loss(pose, root, torch.from_numpy(clip.inputs), torch.from_numpy(clip.weights)).item()
    return cv, proj * 1000


def test_training_on_a_real_clip_steadies_its_bones_and_fits_its_2d(
        takes_dir: Path, clip_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = TrainOptions(data=[takes_dir], out=tmp_path / "supervised", lifter="test", epochs=3, batch_size=128,
                        val_fraction=0.3, samples_per_epoch=4096, seed=7, lr=3e-3, val_views=1,
                        trajectory_channels=0)
    supervised = train(opts)
    semi = train(replace(opts, out=tmp_path / "semi", unlabeled=[clip_2d]))
    history = semi["history"]
    assert {"unlabeled_projection_mm", "unlabeled_bone_std_mm", "unlabeled_bone_prior_mm"} <= set(history[0])
    assert history[-1]["unlabeled_projection_mm"] < history[0]["unlabeled_projection_mm"]
    cfg = json.loads((tmp_path / "semi" / "config.json").read_text())["training"]["unlabeled"]
    assert [c["name"] for c in cfg["clips"]] == [clip_2d.name] and cfg["frames"] > 300
    # The clip's 2D was cached in the output folder; a second load reads it without detecting.
    cache = tmp_path / "semi" / UNLABELED_CACHE_DIR
    assert len(list(cache.glob("*.npz"))) == 1

    def no_detection(path: Path) -> None:
        raise AssertionError("detected again")

    monkeypatch.setattr(ul, "_detect", no_detection)
    (clip,) = ul.load_unlabeled([clip_2d], 30.0, cache=cache)
    # What a user gets on that clip: steadier limb lengths, limbs that fit its 2D better, while
    # the mocap validation stays in the same range.
    cv_sup, proj_sup = _clip_figures(tmp_path / "supervised", clip)
    cv_semi, proj_semi = _clip_figures(tmp_path / "semi", clip)
    assert cv_semi < 0.8 * cv_sup, (cv_semi, cv_sup)
    assert proj_semi < 0.9 * proj_sup, (proj_semi, proj_sup)
    assert semi["best_val_mpjpe_mm"] < 1.3 * supervised["best_val_mpjpe_mm"]


def test_unlabeled_arguments_give_one_line_errors(takes_dir: Path, clip_2d: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bvh = next(takes_dir.glob("*.bvh"))
    for extra, expected in [
        (["--unlabeled", str(tmp_path / "missing.mp4")], "no such file or folder"),
        (["--unlabeled", str(bvh)], "holds 3D joints"),
        (["--unlabeled", str(tmp_path)], "no videos or 2D keypoint files"),
        (["--unlabeled", str(bvh), "--chunk", "4"], "leave --chunk at 1"),
        (["--unlabeled", str(clip_2d), "--json", str(clip_2d)], "would overwrite the input"),
    ]:
        code = main(["train", "--data", str(takes_dir), "--out", str(tmp_path / "out"), "--lifter", "test",
                     "--epochs", "1", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and expected in err and len(err.splitlines()) == 1, err


def test_unlabeled_inputs_are_found_in_folders(clip_2d: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    (folder / "openpose").mkdir(parents=True)
    for i in range(3):
        (folder / "openpose" / f"take_{i:012d}_keypoints.json").write_text('{"people": []}')
    (folder / "notes.txt").write_text("not a clip")
    (folder / "clip.npz").write_bytes(clip_2d.read_bytes())
    assert ul.unlabeled_files([folder]) == [folder / "clip.npz"]
    assert ul.unlabeled_files([folder / "openpose", folder]) == [folder / "openpose", folder / "clip.npz"]
    # OpenPose frames do not say the image size the points are measured in: one line says what to do.
    from converters.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"does not record the image size.*--image-size WIDTHxHEIGHT"):
        ul.load_unlabeled([folder / "openpose"], 30.0)


def test_a_run_stopped_while_detecting_can_be_started_again(tmp_path: Path) -> None:
    """The 2D cache is written into --out before the first epoch; a folder holding only it is still
    a training run's folder, while one holding anything else is refused."""
    from converters.errors import ConfigurationError
    from vp3d_engine.checkpoints import check_checkpoint_out

    out = tmp_path / "run"
    (out / UNLABELED_CACHE_DIR).mkdir(parents=True)
    (out / UNLABELED_CACHE_DIR / "clip-0123456789ab.npz").write_bytes(b"")
    assert check_checkpoint_out(out) == out.resolve()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match=r"notes\.txt"):
        check_checkpoint_out(out)
