"""``vp3d train`` and ``vp3d evaluate``: the lifter's training (one run, or a recipe of several)
and its scores on motion capture. Registered by :mod:`vp3d_engine.cli`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from converters.errors import ConfigurationError
from converters.fileio import PathSet, atomic_write, check_output_folder
from converters.types import MAX_FPS, MIN_FPS
from vp3d_engine.options import add_arguments, bounded

__all__ = ["add_evaluate", "add_train", "check_checkpoint_out_flag"]


def _write_json(path: str, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2) + "\n"), binary=False)


def check_checkpoint_out_flag(out: str) -> None:
    from vp3d_engine.checkpoints import check_checkpoint_out

    check_checkpoint_out(out)


def _check_json_out(target: str | None, inputs: list[Path]) -> None:
    """``--json`` must not land on an input of the command (a take, a checkpoint file)."""
    if not target:
        return
    protected = PathSet()
    for path in inputs:
        protected.add(path)
        if path.is_dir():
            for child in path.rglob("*"):
                protected.add(child)
    hit = protected.find(target)
    if hit is not None:
        raise ConfigurationError(f"--json {target} would overwrite the input {hit}; choose another file")
    if Path(target).is_dir():
        raise ConfigurationError(f"--json {target} is a folder; name a file")
    check_output_folder(Path(target).parent)


def _cmd_train(args: argparse.Namespace) -> int:
    check_checkpoint_out_flag(args.out)
    _check_json_out(args.json, [*map(Path, args.data), *map(Path, args.unlabeled), Path(args.out)])

    from vp3d_engine.training.train import TrainOptions, train

    if args.recipe:
        return _train_recipe(args)
    opts = TrainOptions(
        data=[Path(d) for d in args.data], out=Path(args.out), lifter=args.lifter,
        filter_widths=args.filter_widths, channels=args.channels, trajectory_channels=args.trajectory_channels,
        dropout=args.dropout, causal=args.causal, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        lr_decay=args.lr_decay, lr_schedule=args.lr_schedule, lr_final=args.lr_final, seed=args.seed,
        val_fraction=args.val_fraction, val_views=args.val_views, fps=args.fps, device=args.device,
        max_minutes=args.max_minutes, samples_per_epoch=args.samples_per_epoch, noise=not args.no_noise,
        chunk=args.chunk, body_shape=not args.no_body_shape, body_shape_share=args.body_shape_share,
        average_epochs=args.average_epochs, frame_span=args.frame_span, precision=args.precision,
        camera_distance=tuple(args.camera_distance) if args.camera_distance else None,
        init=Path(args.init) if args.init else None,
        resume=not args.restart, license=args.license, unlabeled=[Path(u) for u in args.unlabeled],
        unlabeled_weight=args.unlabeled_weight, unlabeled_share=args.unlabeled_share,
        command="vp3d " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    summary = train(opts, _train_progress(args))
    print(f"best validation MPJPE {summary['best_val_mpjpe_mm']:.1f} mm; checkpoint in {summary['out']}")
    if args.json:
        _write_json(args.json, summary)
    return 0


# What --recipe sets (or refuses): everything but where the data and the output are, and how to run.
_RECIPE_FREE = {"help", "data", "out", "device", "restart", "json", "quiet", "recipe"}


def _train_recipe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vp3d_engine.training.recipe import load_recipe, stage_dirs, train_recipe

    named = {args.train_flags.get(token.split("=")[0]) for token in args.argv if token.startswith("--")}
    given = sorted(k for k, default in args.train_defaults.items()
                   if k not in _RECIPE_FREE and (k in named or getattr(args, k, default) != default))
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigurationError(f"{flag} cannot go with --recipe, which sets the training options: copy the recipe "
                                 "file, change it there and pass its path to --recipe")
    recipe = load_recipe(args.recipe)
    _check_recipe(recipe, args.train_actions, args.recipe)
    for folder in stage_dirs(Path(args.out), recipe):
        check_checkpoint_out_flag(str(folder))
    command = "vp3d " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    show = _train_progress(args)

    def progress(event: dict[str, Any]) -> None:
        if event["kind"] == "note":
            tqdm.write(event["text"])
        elif event["kind"] == "stage":
            tqdm.write(f"stage {event['stage']} of {event['stages']} ({event['name']}): "
                       + (f"going on after epoch {event['done']} of {event['epochs']}" if event["done"]
                          else f"{event['epochs']} epochs") + f", in {event['folder']}")
        else:
            show(event)

    summary = train_recipe(recipe, [Path(d) for d in args.data], Path(args.out), device=args.device,
                           restart=args.restart, command=command, progress=progress)
    for i, stage in enumerate(summary["stages"], 1):
        print(f"stage {i} ({stage['name']}): best epoch {stage['best_epoch']}, validation MPJPE "
              f"{stage['best_val_mpjpe_mm']:.1f} mm, P-MPJPE {stage['best_val_p_mpjpe_mm']:.1f} mm")
    print(f"checkpoint in {summary['out']} ({summary['hours']:.2f} h of training)")
    if args.json:
        _write_json(args.json, summary)
    return 0


def _check_recipe(recipe: dict[str, Any], actions: dict[str, argparse.Action], given: str) -> None:
    """Every value of ``recipe`` (its shared options, then each stage's) parsed as if it were given
    to the flag it stands for: the same argparse types, bounds and choices, so a value the command
    line refuses is refused here, before the first stage trains. Values without a flag (a stage's
    name, the switches) are checked by :func:`~vp3d_engine.training.recipe.load_recipe`."""
    parts = [("options", recipe["options"]),
             *((f"stage {i} ({stage['name']})", stage) for i, stage in enumerate(recipe["stages"], 1))]
    for where, values in parts:
        for key, value in values.items():
            action = actions.get(key)
            parse = action.type if action is not None and callable(action.type) else None
            if action is None or not action.option_strings or (parse is None and action.choices is None):
                continue
            flag = max(action.option_strings, key=len)
            for item in value if isinstance(value, list) else [value]:
                try:
                    parsed = parse(repr(item) if isinstance(item, float) else str(item)) if parse else item
                except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
                    raise ConfigurationError(f"--recipe {given}: {where}: {key} ({flag}): {exc}") from None
                if action.choices is not None and parsed not in action.choices:
                    raise ConfigurationError(f"--recipe {given}: {where}: {key} ({flag}): {str(item)[:40]!r} is not "
                                             f"one of {', '.join(map(str, action.choices))}")


def _train_progress(args: argparse.Namespace) -> Callable[[dict[str, Any]], None]:
    from tqdm import tqdm

    bar: list[Any] = [None]

    def progress(event: dict[str, Any]) -> None:
        if event["kind"] == "batch":
            if bar[0] is None:
                bar[0] = tqdm(total=event["batches"], desc=f"epoch {event['epoch']}/{event['epochs']}",
                              unit="batch", disable=args.quiet, leave=False)
            bar[0].update(1)
            bar[0].set_postfix(loss_mm=f"{event['loss_mm']:.1f}")
        else:
            if bar[0] is not None:
                bar[0].close()
                bar[0] = None
            msg = (f"epoch {event['epoch']}: train {event['train_mpjpe_mm']:.1f} mm, "
                   f"val {event['val_mpjpe_mm']:.1f} mm (P-MPJPE {event['val_p_mpjpe_mm']:.1f} mm"
                   + (f", root {event['val_root_error_mm']:.0f} mm" if event["val_root_error_mm"] else "")
                   + ")" + (f", unlabeled: projection {event['unlabeled_projection_mm']:.1f} mm, bone "
                            f"spread {event['unlabeled_bone_std_mm']:.1f} mm" if "unlabeled_projection_mm" in event
                            else "")
                   + f", {event['samples_per_s']:.0f} samples/s, {event['seconds']:.0f} s")
            tqdm.write(msg)

    return progress


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vp3d_engine.checkpoints import resolve_checkpoint
    from vp3d_engine.evaluation import METRICS, WorldSettings, evaluate
    from vp3d_engine.metrics import WORLD_METRICS

    _check_json_out(args.json, [*map(Path, args.data), resolve_checkpoint(args.checkpoint)])
    world = WorldSettings(args.trajectory, str(args.smooth), args.feet) if args.world else None
    result = evaluate(args.data, args.checkpoint, noise=args.noise, seed=args.seed, views=args.views,
                      split=args.split, device=args.device, world=world)
    if world is not None:  # the world figures only: the camera-space ones are the same without --world
        result_cols = [m for m in WORLD_METRICS if m in result]
        print(f"world stage: trajectory {world.trajectory}, smoothing {world.smoothing}, feet {world.feet}")
    cols = [m for m in METRICS if m in result] if world is None else result_cols
    names = [c.replace("_mm", "").replace("foot_skating", "skate").replace("penetration", "pen") for c in cols]
    widths = [max(10, len(n) + 2) for n in names]
    header = f"{'':24s}" + "".join(f"{n:>{w}s}" for n, w in zip(names, widths, strict=True)) + f"{'frames':>9s}"
    print(f"{result['checkpoint']} on {result['takes']} {args.split} takes, noise={args.noise}, "
          f"{args.views} views, seed {args.seed} (errors in mm)")
    print(header)
    for name, row in [*result["per_action"].items(), ("ALL", result)]:
        print(f"{name[:24]:24s}" + "".join(f"{row[c]:{w}.1f}" for c, w in zip(cols, widths, strict=True))
              + f"{int(row['frames']):9d}")
    if args.json:
        _write_json(args.json, result)
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    from vp3d_engine.lifters.registry import lifter_names, lifter_spec

    p = sub.add_parser("train", help="train the pose and trajectory lifters on BVH motion capture")
    p.add_argument("--data", nargs="+", required=True, help="folders or files of .bvh takes")
    p.add_argument("--out", required=True, help="checkpoint folder to write (e.g. checkpoints/NAME)")
    p.add_argument("--lifter", default="videopose3d",
                   choices=[n for n in lifter_names() if lifter_spec(n).kind == "checkpoint"])
    p.add_argument("--filter-widths", type=bounded(int, 1, 15), nargs="+", help="e.g. 3 3 3 3 3 (243 frames)")
    p.add_argument("--channels", type=bounded(int, 1, 4096))
    p.add_argument("--trajectory-channels", type=bounded(int, 0, 4096), help="0 trains no trajectory model")
    p.add_argument("--dropout", type=bounded(float, 0.0, 0.99))
    p.add_argument("--causal", action="store_true", help="use only past frames (real-time)")
    p.add_argument("--epochs", type=bounded(int, 1), default=40)
    p.add_argument("--batch-size", type=bounded(int, 1, 1 << 20), default=1024)
    p.add_argument("--lr", type=bounded(float, 1e-12, 10.0), default=1e-3)
    p.add_argument("--lr-decay", type=bounded(float, 1e-6, 1.0), default=0.95,
                   help="per epoch, for --lr-schedule exponential")
    p.add_argument("--lr-schedule", choices=["exponential", "cosine"], default="exponential",
                   help="exponential: --lr times --lr-decay each epoch; cosine: a half cosine from --lr down to "
                        "--lr times --lr-final over --epochs (set --epochs to what fits --max-minutes)")
    p.add_argument("--lr-final", type=bounded(float, 0.0, 1.0), default=0.01,
                   help="last epoch's learning rate as a share of --lr, for --lr-schedule cosine")
    p.add_argument("--samples-per-epoch", type=bounded(int, 1),
                   help="output frames per epoch (default: one per training frame)")
    p.add_argument("--chunk", type=bounded(int, 1, 10_000), default=1,
                   help="output frames per window: 1 trains the strided 1f model; more trains the dilated "
                        "model on runs of consecutive frames (far fewer computations per frame on a CPU)")
    p.add_argument("--val-fraction", type=bounded(float, 0.0, 1.0), default=0.1, help="share of takes held out")
    p.add_argument("--val-views", type=bounded(int, 1, 64), default=2,
                   help="cameras each held-out take is seen from when validating (default 2)")
    p.add_argument("--fps", type=bounded(float, MIN_FPS, MAX_FPS), default=30.0,
                   help="frame rate the takes are resampled to, and the checkpoint's (default 30)")
    p.add_argument("--seed", type=bounded(int, 0, 2**32 - 1), default=1234)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-minutes", type=bounded(float, 0.0),
                   help="stop after this many minutes (keeps the best epoch)")
    p.add_argument("--no-noise", action="store_true", help="train on clean 2D (no detector noise)")
    p.add_argument("--no-body-shape", action="store_true",
                   help="keep the mocap actors' proportions (no random torso, shoulder, hip and limb scales)")
    p.add_argument("--body-shape-share", type=bounded(float, 0.0, 1.0), default=0.8,
                   help="share of training windows given random body proportions (default 0.8; 0: the actors' own, "
                        "as --no-body-shape)")
    p.add_argument("--camera-distance", nargs=2, type=bounded(float, 0.1, 1000.0), metavar=("NEAR", "FAR"),
                   help="metres from the training cameras to the person, drawn log-uniformly (default 2.5 9; "
                        "--camera-distance 1.5 9 adds the close range of webcams and small rooms)")
    p.add_argument("--average-epochs", type=bounded(float, 0.0, 1000.0), default=0.0, metavar="N",
                   help="validate and keep a moving average of the weights over about N epochs (Polyak averaging; "
                        "the last weights' validation figures are recorded too); 0: the last weights")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the training passes' matrix products in bfloat16, the weights, losses and validation "
                        "in fp32; about 1.6x faster on CPUs with AVX512-BF16 or AMX (and on GPUs), slower elsewhere "
                        "(default fp32)")
    p.add_argument("--frame-span", type=bounded(float, 0.0, 600.0), default=0.0, metavar="SECONDS",
                   help="each training camera is aimed at and frames up to this many seconds of the take around its "
                        "window, as a static camera filming a whole walk: people are seen off the camera's axis, out "
                        "to the picture's edges, where a lifter trained on centred windows fails "
                        "(benchmarks/results/mocap_breakdown.txt); default 0: the window alone")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (same architecture): fine-tuning")
    p.add_argument("--unlabeled", nargs="+", metavar="PATH", default=[],
                   help="videos, folders of videos or 2D keypoint files without 3D: semi-supervised training "
                        "(projection and bone-length losses; their 2D is detected once and cached in --out)")
    p.add_argument("--unlabeled-weight", type=bounded(float, 1e-6, 100.0), default=1.0,
                   help="weight of the unlabeled losses against the supervised ones")
    p.add_argument("--unlabeled-share", type=bounded(float, 0.01, 4.0), default=0.25,
                   help="unlabeled windows per batch, as a share of the labelled ones")
    p.add_argument("--restart", action="store_true", help="ignore a saved training state and start over")
    p.add_argument("--license", default="", help="license text recorded in config.json")
    p.add_argument("--json", help="also write the training history here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--recipe", metavar="NAME_OR_JSON",
                   help="run a recipe of several training stages in a row, each starting from the one before "
                        "(`default`: the chain behind checkpoints/default, about 2.1 h on a 2-core CPU with "
                        "AVX512-BF16, in bfloat16); stages train in OUT-stages/ and run again goes on where it "
                        "stopped")
    p.set_defaults(func=_cmd_train, train_defaults={a.dest: a.default for a in p._actions},
                   train_flags={flag: a.dest for a in p._actions for flag in a.option_strings},
                   train_actions={a.dest: a for a in p._actions})


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure a checkpoint on BVH takes seen by synthetic cameras")
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--checkpoint", required=True, help="checkpoint name, folder, or original .bin")
    p.add_argument("--noise", default="detector", choices=["none", "detector"])
    p.add_argument("--seed", type=bounded(int, 0, 2**32 - 1), default=0)
    p.add_argument("--views", type=bounded(int, 1, 64), default=2, help="cameras per take")
    p.add_argument("--split", default="validation", choices=["validation", "train", "all"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--world", action="store_true",
                   help="also run the world stage of vp3d-convert and score the motion in world space: "
                        "world_mpjpe, root_drift, foot_skating (mm per frame while the truth's foot is planted), "
                        "penetration, jitter_ratio")
    add_arguments(p.add_argument_group("with --world: as vp3d-convert"), names=("trajectory", "smooth", "feet"))
    p.add_argument("--json", help="write the figures (overall, per take, per action) here")
    p.set_defaults(func=_cmd_evaluate)
