"""Training the pose and trajectory lifters on mocap seen by synthetic cameras.

As in VideoPose3D: the strided 1f models train on single output frames (MPJPE loss for the pose,
MPJPE weighted by inverse depth for the trajectory), Adam with AMSGrad, learning rate decayed per
epoch, batch-norm momentum decayed from 0.1 to 0.001. Validation runs the dilated model on whole
held-out takes, each filmed by fixed seeded cameras with detector-like noise; the checkpoint with
the lowest validation MPJPE is kept. With ``average_epochs`` the weights validated and kept are an
exponential moving average of the trained ones (Polyak averaging), which smooths out the epoch-to-
epoch swing of the last weights; the last weights are validated too and their figures recorded.
State is saved after each epoch, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters.errors import CheckpointError, ConfigurationError
from vp3d_engine.checkpoints import UNLABELED_CACHE_DIR, build_models, save_checkpoint
from vp3d_engine.device import pick_device
from vp3d_engine.lifters.registry import lifter_spec
from vp3d_engine.training.batches import Batch, WindowSampler
from vp3d_engine.training.mocap_data import find_bvh_files, is_validation, load_takes
from vp3d_engine.training.synthetic import BodyShape, CameraRanges, NoiseModel

__all__ = ["TrainOptions", "check_options", "train"]

log = logging.getLogger(__name__)
STATE_NAME = "training_state.pt"
PRECISIONS = ("fp32", "bf16")


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
    lr_schedule: str = "exponential"  # or "cosine": from lr down to lr * lr_final over the epochs
    lr_final: float = 0.01
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
    body_shape_share: float = BodyShape.probability  # of the windows reshaped (when body_shape)
    camera_distance: tuple[float, float] | None = None  # metres, training cameras only; None: CameraRanges'
    frame_span: float = 0.0  # seconds: cameras aim at and frame up to this much of the take around each window
    precision: str = "fp32"  # "bf16": the training passes' matrix products in bfloat16 (weights stay fp32)
    average_epochs: float = 0.0  # weights averaged over about this many epochs (exponential); 0: the last weights
    init: Path | None = None  # a checkpoint folder to start from (same architecture): fine-tuning
    unlabeled: list[Path] = field(default_factory=list)  # videos / 2D files for semi-supervised training
    unlabeled_weight: float = 1.0  # of the unlabeled losses against the supervised ones
    unlabeled_share: float = 0.25  # unlabeled windows per batch, as a share of the labelled ones
    resume: bool = True
    license: str = ""
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def epoch_lr(opts: TrainOptions, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based): ``lr * lr_decay ** epoch``, or a half cosine
    from ``lr`` at the first epoch to ``lr * lr_final`` at the last (SGDR without restarts)."""
    if opts.lr_schedule == "exponential":
        return opts.lr * opts.lr_decay ** epoch
    if opts.lr_schedule == "cosine":
        t = epoch / max(1, opts.epochs - 1)
        return opts.lr * (opts.lr_final + (1 - opts.lr_final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
    raise ConfigurationError(f"unknown learning-rate schedule {opts.lr_schedule!r}: use exponential or cosine")


def _schedule(opts: TrainOptions) -> dict[str, Any]:
    """What fixes the learning rate of every epoch (saved with the training state)."""
    keys = ("lr", "lr_decay") if opts.lr_schedule == "exponential" else ("lr", "lr_final", "epochs")
    return {"lr_schedule": opts.lr_schedule, **{k: getattr(opts, k) for k in keys}}


def _check_schedule(opts: TrainOptions, state: dict[str, Any], start_epoch: int, path: Path) -> None:
    """Refuse to resume a run under another learning-rate schedule (a cosine one reshaped by a new
    --epochs would climb back up half way); states from before the schedule was saved are checked
    by the learning rate they would go on with."""
    if "schedule" in state:
        saved = json.loads(state["schedule"])
        differs = saved != _schedule(opts)
    else:
        differs = not math.isclose(float(state["lr"]), epoch_lr(opts, start_epoch), rel_tol=1e-6)
        saved = {f"lr at epoch {start_epoch + 1}": float(state["lr"])}
    if differs:
        given = ", ".join(f"{k} {v}" for k, v in saved.items())
        raise ConfigurationError(f"{path} was trained with another learning-rate schedule ({given}); give the same "
                                 "--lr, --lr-schedule, --lr-decay/--lr-final and --epochs to go on, or add --restart")


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


def _unlabeled_sampler(opts: TrainOptions, config: dict[str, Any], rf: int, causal_shift: int
                       ) -> tuple[Any, dict[str, Any]]:
    """The sampler of ``opts.unlabeled`` clips (2D cached in the output folder) and what to record of it."""
    if not opts.unlabeled:
        return None, {}
    from vp3d_engine.training.unlabeled import UnlabeledSampler, load_unlabeled

    if opts.chunk != 1:
        raise ConfigurationError("--unlabeled trains the strided single-frame model: leave --chunk at 1")
    if opts.unlabeled_weight <= 0 or not 0 < opts.unlabeled_share <= 4:
        raise ConfigurationError("--unlabeled-weight must be positive and --unlabeled-share in (0, 4]")
    clips = load_unlabeled(opts.unlabeled, opts.fps, config["input"].get("normalization", "screen"),
                           cache=Path(opts.out) / UNLABELED_CACHE_DIR,
                           progress=lambda name: log.info("2D of unlabeled %s", name))
    sampler = UnlabeledSampler(clips, rf, causal_shift)
    windows = max(1, opts.batch_size // opts.chunk)
    groups = max(1, round(windows * opts.unlabeled_share / sampler.per_group))
    info = {"clips": [{"name": c.name, "frames": c.num_frames} for c in clips], "frames": sampler.num_frames,
            "weight": opts.unlabeled_weight, "share": opts.unlabeled_share, "groups": groups,
            "frames_per_group": sampler.per_group}
    return sampler, info


@contextlib.contextmanager
def _running_batch_norm(model: torch.nn.Module) -> Iterator[None]:
    """Batch norm on its running statistics inside the block (dropout stays as it is)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


def _unlabeled_losses(ub: Any, pose_model: torch.nn.Module, traj_model: torch.nn.Module | None,
                      labelled: torch.Tensor, per_group: int, device: Any) -> list[torch.Tensor]:
    """Projection, bone-length prior and bone-length consistency losses (metres) of the pose the
    models lift from the unlabeled windows ``ub``, in a second pass with batch norm on the
    running statistics that the mocap batches set; ``labelled (L,17,3)``: the batch's targets."""
    from vp3d_engine.training.unlabeled import DEFAULT_ROOT, bone_lengths, consistency_loss, projection_loss

    x = torch.from_numpy(ub.inputs).to(device)
    with _running_batch_norm(pose_model):
        pose = pose_model(x)[:, 0]
    pose = pose - pose[:, :1]
    if traj_model is None:
        root = torch.tensor(DEFAULT_ROOT, dtype=pose.dtype, device=device).expand(pose.shape[0], 3)
    else:
        with torch.no_grad(), _running_batch_norm(traj_model):
            root = traj_model(x)[:, 0, 0]
    observed = torch.from_numpy(ub.observed).to(device)
    weights = torch.from_numpy(ub.weights).to(device)
    proj = projection_loss(pose, root.detach(), observed, weights)
    lengths = bone_lengths(pose)
    prior = (lengths.mean(0) - bone_lengths(labelled).mean(0).detach()).abs().mean()
    consistency = consistency_loss(lengths.view(ub.groups, per_group, -1))
    return [proj, prior, consistency]


def _averaged(models: list[torch.nn.Module | None]) -> dict[str, torch.Tensor]:
    """A copy of the models' weights and batch-norm statistics: the start of their moving average."""
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate(models) if m is not None
            for k, v in m.state_dict().items()}


def _update_average(average: dict[str, torch.Tensor], models: list[torch.nn.Module | None], decay: float) -> None:
    """``average = decay * average + (1 - decay) * weights``; counters are copied."""
    with torch.no_grad():
        for i, m in enumerate(models):
            if m is None:
                continue
            for k, v in m.state_dict().items():
                a = average[f"{i}.{k}"]
                if a.is_floating_point():
                    a.mul_(decay).add_(v.detach(), alpha=1 - decay)
                else:
                    a.copy_(v)


def _load_average(average: dict[str, torch.Tensor], models: list[torch.nn.Module | None]) -> None:
    for i, m in enumerate(models):
        if m is not None:
            prefix = f"{i}."
            m.load_state_dict({k[len(prefix):]: v for k, v in average.items() if k.startswith(prefix)})


def check_options(opts: TrainOptions) -> tuple[dict[str, Any], CameraRanges]:
    """The checkpoint config and training cameras ``opts`` give, or a :class:`ConfigurationError`
    naming the option that is wrong: checked before any work (a recipe checks every stage first)."""
    config = _config(opts)
    if not 0 <= opts.seed < 2**32:
        raise ConfigurationError(f"--seed {opts.seed}: give a whole number from 0 to {2**32 - 1}")
    if opts.chunk < 1:
        raise ConfigurationError("--chunk must be at least 1")
    if not (0 < opts.lr_decay <= 1 and 0 <= opts.lr_final <= 1):
        raise ConfigurationError("--lr-decay must be in (0, 1] and --lr-final in [0, 1]")
    epoch_lr(opts, 0)  # an unknown schedule fails before any work
    if not 0 <= opts.average_epochs <= 1000:
        raise ConfigurationError(f"--average-epochs {opts.average_epochs:g}: give a number of epochs from 0 to 1000 "
                                 "(0 keeps the last weights)")
    if opts.precision not in PRECISIONS:
        raise ConfigurationError(f"--precision {opts.precision}: use {' or '.join(PRECISIONS)}")
    if not 0 <= opts.frame_span <= 600:
        raise ConfigurationError(f"--frame-span {opts.frame_span:g}: give seconds from 0 to 600 (0 frames each "
                                 "training window alone)")
    if not 0 <= opts.body_shape_share <= 1:
        raise ConfigurationError(f"--body-shape-share {opts.body_shape_share:g}: give a share of windows from 0 to 1")
    cameras = CameraRanges()
    if opts.camera_distance is not None:
        near, far = opts.camera_distance
        if not cameras.min_depth_m <= near <= far:
            raise ConfigurationError(f"--camera-distance {near:g} {far:g}: give the nearest distance first, at least "
                                     f"{cameras.min_depth_m:g} m (e.g. --camera-distance 1.5 9)")
        cameras = replace(cameras, distance_m=(float(near), float(far)))
    return config, cameras


def train(opts: TrainOptions, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train and write the best checkpoint to ``opts.out``; returns a summary with the history."""
    from vp3d_engine.evaluation import evaluate_views, make_views

    device = pick_device(opts.device)
    config, cameras = check_options(opts)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    pose_train, traj_train = build_models(config, optimized_1f=opts.chunk == 1)
    pose_eval, traj_eval = build_models(config)
    rf = pose_train.receptive_field
    unlabeled, unlabeled_info = _unlabeled_sampler(opts, config, rf, pose_train.total_causal_shift)
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
    use_shape = opts.body_shape and opts.body_shape_share > 0
    noise, shape = NoiseModel(), BodyShape(probability=opts.body_shape_share) if use_shape else None
    sampler = WindowSampler(train_takes, rf, pose_train.total_causal_shift, cameras,
                            noise if opts.noise else None, flip=True, outputs=opts.chunk, shape=shape,
                            frame_span=round(opts.frame_span * opts.fps))
    views = make_views(val_takes, seed=opts.seed, views=opts.val_views, noise="detector")
    urng = np.random.default_rng(opts.seed + 1)  # the prefetch thread owns ``rng``
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
    start_epoch, best, history = 0, math.inf, []
    if opts.init is not None:
        _load_initial(opts.init, pose_train, traj_train)
    trained: list[torch.nn.Module | None] = [pose_train, traj_train]
    average, steps = (_averaged(trained) if opts.average_epochs else None), 0
    # Per batch, so that the average spans ``average_epochs`` epochs; shorter while few batches are in.
    decay = math.exp(-1 / (opts.average_epochs * batches)) if opts.average_epochs else 0.0
    if opts.resume and state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            pose_train.load_state_dict(state["pose"])
            if traj_train is not None:
                traj_train.load_state_dict(state["trajectory"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch, best = int(state["epoch"]), float(state["best"])
            _check_schedule(opts, state, start_epoch, state_path)
            history = json.loads(state["history"])
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
            if "unlabeled_rng" in state:
                urng.bit_generator.state = json.loads(state["unlabeled_rng"])
            if average is not None:  # a state saved without averaging starts the average from its weights
                average = {**_averaged(trained), **state.get("average", {})}
                steps = int(state.get("average_steps", 0))
        except ConfigurationError:
            raise
        except Exception as exc:  # a damaged file or another architecture can fail in many ways
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise CheckpointError(f"cannot resume from {state_path} ({type(exc).__name__}: {first}): it was written "
                                  "with other options or is damaged; add --restart to start over") from None
        log.info("resuming from epoch %d (best validation MPJPE %.1f mm)", start_epoch, best * 1000)

    def validate() -> dict[str, Any]:
        """Figures of the weights now in the evaluation models."""
        return evaluate_views(pose_eval.to(device), traj_eval.to(device) if traj_eval else None, views,
                              flip=True, device=device)

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
        lr = epoch_lr(opts, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pose_train.train()
        if traj_train is not None:
            traj_train.train()
        t_epoch = time.time()
        sums = np.zeros(5)
        prefetch = _Prefetcher(sampler, rng, windows, batches)
        for b in range(batches):
            batch = prefetch.get()
            x = torch.from_numpy(batch.inputs).to(device)
            target = torch.from_numpy(batch.pose).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=opts.precision == "bf16"):
                pred = pose_train(x)
                traj_p = traj_train(x)[:, :, 0] if traj_train is not None else None
            pred = pred.float()
            loss_pose = torch.linalg.vector_norm(pred - target, dim=-1).mean()
            loss = loss_pose
            loss_traj = torch.zeros(())
            if traj_p is not None:
                traj_t = torch.from_numpy(batch.trajectory).to(device)
                traj_p = traj_p.float()
                weight = 1.0 / traj_t[..., 2].clamp(min=0.5)
                loss_traj = (weight * torch.linalg.vector_norm(traj_p - traj_t, dim=-1)).mean()
                loss = loss + loss_traj
            if unlabeled is not None:
                parts = _unlabeled_losses(unlabeled.sample(urng, unlabeled_info["groups"]), pose_train, traj_train,
                                          target[:, 0], unlabeled.per_group, device)
                loss = loss + opts.unlabeled_weight * sum(parts)
                sums[2:] += [part.item() for part in parts]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                steps += 1
                _update_average(average, trained, min(decay, (1 + steps) / (10 + steps)))
            sums[:2] += [loss_pose.item(), loss_traj.item()]
            if progress is not None:
                progress({"kind": "batch", "epoch": epoch + 1, "epochs": opts.epochs, "batch": b + 1,
                          "batches": batches, "loss_mm": loss_pose.item() * 1000})
        seconds = time.time() - t_epoch
        pose_eval.load_state_dict(pose_train.state_dict())
        if traj_eval is not None and traj_train is not None:
            traj_eval.load_state_dict(traj_train.state_dict())
        val, last = validate(), None
        if average is not None:  # the last weights' figures are kept beside the average's
            _load_average(average, [pose_eval, traj_eval])
            last, val = val, validate()
        record = {
            "epoch": epoch + 1, "lr": lr, "train_mpjpe_mm": sums[0] / batches * 1000,
            "train_traj_loss": sums[1] / batches, "val_mpjpe_mm": val["mpjpe_mm"],
            "val_p_mpjpe_mm": val["p_mpjpe_mm"], "val_root_error_mm": val.get("root_error_mm"),
            "samples_per_s": batches * windows * opts.chunk / seconds, "seconds": seconds,
        }
        if last is not None:
            record.update({"val_last_mpjpe_mm": last["mpjpe_mm"], "val_last_p_mpjpe_mm": last["p_mpjpe_mm"]})
        if unlabeled is not None:
            record.update({"unlabeled_projection_mm": sums[2] / batches * 1000,
                           "unlabeled_bone_prior_mm": sums[3] / batches * 1000,
                           "unlabeled_bone_std_mm": sums[4] / batches * 1000})
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
                "body_shape": shape.to_dict() if shape else None, "average_epochs": opts.average_epochs or None,
                "frame_span_s": opts.frame_span or None, "precision": opts.precision,
                "init": str(opts.init) if opts.init else None, "unlabeled": unlabeled_info or None,
                "command": opts.command, **opts.extra,
                "val": {k: v for k, v in val.items() if k not in ("per_take", "per_action")},
            })
            save_checkpoint(Path(opts.out), cfg, pose_eval, traj_eval)
        torch.save({
            "pose": pose_train.state_dict(), "trajectory": traj_train.state_dict() if traj_train else {},
            "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "lr": epoch_lr(opts, epoch + 1), "best": best,
            "schedule": json.dumps(_schedule(opts)),
            "history": json.dumps(history), "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(), "unlabeled_rng": json.dumps(urng.bit_generator.state),
            **({"average": average, "average_steps": steps} if average is not None else {}),
        }, str(state_path) + ".tmp")
        Path(str(state_path) + ".tmp").replace(state_path)
    return {"best_val_mpjpe_mm": best * 1000, "history": history, "out": str(opts.out),
            "receptive_field": rf, "options": {k: str(v) for k, v in asdict(opts).items()}}
