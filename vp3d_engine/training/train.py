"""Training the pose and trajectory lifters on mocap seen by synthetic cameras.

As in VideoPose3D: the strided 1f models train on single output frames (MPJPE loss for the pose,
MPJPE weighted by inverse depth for the trajectory), Adam with AMSGrad, learning rate decayed per
epoch, batch-norm momentum decayed from 0.1 to 0.001. Validation runs the dilated model on whole
held-out takes, each filmed by fixed seeded cameras with detector-like noise; the checkpoint with
the lowest validation MPJPE is kept. State is saved after each epoch, so an interrupted run picks
up where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters.errors import CheckpointError, ConfigurationError
from vp3d_engine.checkpoints import build_models, save_checkpoint
from vp3d_engine.device import pick_device
from vp3d_engine.lifters.registry import lifter_spec
from vp3d_engine.training.batches import Batch, WindowSampler
from vp3d_engine.training.mocap_data import find_bvh_files, is_validation, load_takes
from vp3d_engine.training.synthetic import BodyShape, CameraRanges, NoiseModel

__all__ = ["TrainOptions", "train"]

log = logging.getLogger(__name__)
STATE_NAME = "training_state.pt"


@dataclass
class TrainOptions:
    data: list[Path]
    out: Path
    lifter: str = "videopose3d"
    filter_widths: list[int] | None = None
    channels: int | None = None
    trajectory_channels: int | None = None  # 0: no trajectory model; None: same as pose
    dropout: float | None = None
    causal: bool = False
    epochs: int = 40
    batch_size: int = 1024
    lr: float = 1e-3
    lr_decay: float = 0.95
    seed: int = 1234
    val_fraction: float = 0.1
    val_views: int = 2
    fps: float = 30.0
    device: str = "auto"
    max_minutes: float | None = None
    samples_per_epoch: int | None = None
    chunk: int = 1  # output frames per sample: 1 trains the strided 1f model, more the dilated one
    noise: bool = True
    body_shape: bool = True
    init: Path | None = None  # a checkpoint folder to start from (same architecture): fine-tuning
    resume: bool = True
    license: str = ""
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _config(opts: TrainOptions) -> dict[str, Any]:
    spec = lifter_spec(opts.lifter)
    if spec.kind != "checkpoint":
        raise ConfigurationError(f"lifter {opts.lifter!r} has nothing to train; train videopose3d or test")
    arch = dict(spec.architecture)
    if opts.filter_widths:
        arch["filter_widths"] = list(opts.filter_widths)
    if opts.channels:
        arch["channels"] = opts.channels
    if opts.dropout is not None:
        arch["dropout"] = opts.dropout
    arch["causal"] = opts.causal
    traj = None
    if opts.trajectory_channels != 0:
        traj = dict(arch, channels=opts.trajectory_channels or arch["channels"])
    return {
        "lifter": opts.lifter,
        "architecture": arch,
        "trajectory": traj,
        "input": {"joints": "coco17", "features": 2, "normalization": "screen"},
        "output": {"joints": "h36m17", "units": "m", "root_relative": True},
        "fps": opts.fps,
        "test_time_flip": True,
        "license": opts.license,
        "origin": "trained by vp3d train",
    }


class _Prefetcher:
    """Draws batches on a background thread (numpy releases the GIL), in a fixed order."""

    def __init__(self, sampler: WindowSampler, rng: np.random.Generator, batch_size: int, count: int) -> None:
        self.q: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=3)
        self.thread = threading.Thread(target=self._run, args=(sampler, rng, batch_size, count), daemon=True)
        self.thread.start()

    def _run(self, sampler: WindowSampler, rng: np.random.Generator, batch_size: int, count: int) -> None:
        try:
            for _ in range(count):
                self.q.put(sampler.sample(rng, batch_size))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.q.put(exc)

    def get(self) -> Batch:
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        return item


def _load_initial(path: Path, pose: torch.nn.Module, trajectory: torch.nn.Module | None) -> None:
    """Copy a checkpoint's weights into the training models (fine-tuning); the architecture must match."""
    from vp3d_engine.checkpoints import load_checkpoint

    loaded = load_checkpoint(path)
    try:
        pose.load_state_dict(loaded.pose.state_dict())
        if trajectory is not None:
            if loaded.trajectory is None:
                raise ValueError("it has no trajectory model")
            trajectory.load_state_dict(loaded.trajectory.state_dict())
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise ConfigurationError(f"--init {path}: its weights do not fit this architecture ({first}); "
                                 "give the same --filter-widths, --channels and --trajectory-channels") from None


def train(opts: TrainOptions, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train and write the best checkpoint to ``opts.out``; returns a summary with the history."""
    from vp3d_engine.evaluation import evaluate_views, make_views

    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    config = _config(opts)
    if opts.chunk < 1:
        raise ConfigurationError("--chunk must be at least 1")
    pose_train, traj_train = build_models(config, optimized_1f=opts.chunk == 1)
    pose_eval, traj_eval = build_models(config)
    rf = pose_train.receptive_field
    files = find_bvh_files(opts.data)
    val_files = [f for f in files if is_validation(f.stem, opts.val_fraction)]
    train_files = [f for f in files if f not in val_files]
    if not train_files or not val_files:
        raise ConfigurationError(
            f"{len(files)} takes give {len(train_files)} for training and {len(val_files)} for validation; "
            "add takes or change --val-fraction")
    t0 = time.time()
    train_takes = load_takes(train_files, opts.fps)
    val_takes = load_takes(val_files, opts.fps)
    log.info("loaded %d training and %d validation takes in %.1fs", len(train_takes), len(val_takes), time.time() - t0)
    cameras, noise, shape = CameraRanges(), NoiseModel(), BodyShape() if opts.body_shape else None
    sampler = WindowSampler(train_takes, rf, pose_train.total_causal_shift, cameras,
                            noise if opts.noise else None, flip=True, outputs=opts.chunk, shape=shape)
    views = make_views(val_takes, seed=opts.seed, views=opts.val_views, noise="detector")
    # An epoch sees about one output frame per training frame; a batch holds batch_size output
    # frames (batch_size / chunk windows).
    windows = max(1, opts.batch_size // opts.chunk)
    samples = opts.samples_per_epoch or sampler.num_frames
    batches = max(1, samples // (windows * opts.chunk))

    pose_train.to(device)
    params = list(pose_train.parameters())
    if traj_train is not None:
        traj_train.to(device)
        params += list(traj_train.parameters())
    optimizer = torch.optim.Adam(params, lr=opts.lr, amsgrad=True)
    state_path = Path(opts.out) / STATE_NAME
    start_epoch, lr, best, history = 0, opts.lr, math.inf, []
    if opts.init is not None:
        _load_initial(opts.init, pose_train, traj_train)
    if opts.resume and state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            pose_train.load_state_dict(state["pose"])
            if traj_train is not None:
                traj_train.load_state_dict(state["trajectory"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch, lr, best = int(state["epoch"]), float(state["lr"]), float(state["best"])
            history = json.loads(state["history"])
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
        except Exception as exc:  # a damaged file or another architecture can fail in many ways
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise CheckpointError(f"cannot resume from {state_path} ({type(exc).__name__}: {first}): it was written "
                                  "with other options or is damaged; add --restart to start over") from None
        log.info("resuming from epoch %d (best validation MPJPE %.1f mm)", start_epoch, best * 1000)

    deadline = time.time() + opts.max_minutes * 60 if opts.max_minutes else math.inf
    bn_start, bn_end = 0.1, 0.001
    for epoch in range(start_epoch, opts.epochs):
        if time.time() > deadline:
            log.info("time budget reached before epoch %d", epoch + 1)
            break
        momentum = bn_start * math.exp(epoch / opts.epochs * math.log(bn_end / bn_start))
        pose_train.set_bn_momentum(momentum)
        if traj_train is not None:
            traj_train.set_bn_momentum(momentum)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pose_train.train()
        if traj_train is not None:
            traj_train.train()
        t_epoch = time.time()
        sums = np.zeros(2)
        prefetch = _Prefetcher(sampler, rng, windows, batches)
        for b in range(batches):
            batch = prefetch.get()
            x = torch.from_numpy(batch.inputs).to(device)
            target = torch.from_numpy(batch.pose).to(device)
            pred = pose_train(x)
            loss_pose = torch.linalg.vector_norm(pred - target, dim=-1).mean()
            loss = loss_pose
            loss_traj = torch.zeros(())
            if traj_train is not None:
                traj_t = torch.from_numpy(batch.trajectory).to(device)
                traj_p = traj_train(x)[:, :, 0]
                weight = 1.0 / traj_t[..., 2].clamp(min=0.5)
                loss_traj = (weight * torch.linalg.vector_norm(traj_p - traj_t, dim=-1)).mean()
                loss = loss + loss_traj
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += [loss_pose.item(), loss_traj.item()]
            if progress is not None:
                progress({"kind": "batch", "epoch": epoch + 1, "epochs": opts.epochs, "batch": b + 1,
                          "batches": batches, "loss_mm": loss_pose.item() * 1000})
        seconds = time.time() - t_epoch
        pose_eval.load_state_dict(pose_train.state_dict())
        if traj_eval is not None and traj_train is not None:
            traj_eval.load_state_dict(traj_train.state_dict())
        val = evaluate_views(pose_eval.to(device), traj_eval.to(device) if traj_eval else None, views,
                             flip=True, device=device)
        record = {
            "epoch": epoch + 1, "lr": lr, "train_mpjpe_mm": sums[0] / batches * 1000,
            "train_traj_loss": sums[1] / batches, "val_mpjpe_mm": val["mpjpe_mm"],
            "val_p_mpjpe_mm": val["p_mpjpe_mm"], "val_root_error_mm": val.get("root_error_mm"),
            "samples_per_s": batches * windows * opts.chunk / seconds, "seconds": seconds,
        }
        history.append(record)
        log.debug("epoch %d: train %.1f mm, val %.1f mm (P %.1f mm), %.0f samples/s", epoch + 1,
                 record["train_mpjpe_mm"], val["mpjpe_mm"], val["p_mpjpe_mm"], record["samples_per_s"])
        if progress is not None:
            progress({"kind": "epoch", **record})
        if val["mpjpe_mm"] / 1000 < best:
            best = val["mpjpe_mm"] / 1000
            cfg = dict(config, training={
                "data": [str(p) for p in opts.data], "train_takes": len(train_takes), "val_takes": len(val_takes),
                "val_take_names": sorted(t.name for t in val_takes), "train_frames": sampler.num_frames,
                "epoch": epoch + 1, "seed": opts.seed, "batch_size": opts.batch_size,
                "val_fraction": opts.val_fraction, "chunk": opts.chunk,
                "camera_ranges": cameras.to_dict(), "noise_model": noise.to_dict() if opts.noise else None,
                "body_shape": shape.to_dict() if shape else None,
                "init": str(opts.init) if opts.init else None,
                "command": opts.command, **opts.extra,
                "val": {k: v for k, v in val.items() if k not in ("per_take", "per_action")},
            })
            save_checkpoint(Path(opts.out), cfg, pose_eval, traj_eval)
        lr *= opts.lr_decay
        torch.save({
            "pose": pose_train.state_dict(), "trajectory": traj_train.state_dict() if traj_train else {},
            "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "lr": lr, "best": best,
            "history": json.dumps(history), "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
        }, str(state_path) + ".tmp")
        Path(str(state_path) + ".tmp").replace(state_path)
    return {"best_val_mpjpe_mm": best * 1000, "history": history, "out": str(opts.out),
            "receptive_field": rf, "options": {k: str(v) for k, v in asdict(opts).items()}}
