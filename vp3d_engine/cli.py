"""The ``vp3d`` command: training, evaluation, weights and listings.

Each subcommand parses its flags, calls one library function and maps :class:`Vp3dError` to a
one-line message and exit status 2 (1 for anything unexpected, with the traceback under
``--verbose``). Heavy imports happen inside the subcommands so ``vp3d --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from converters.errors import CheckpointError, ConfigurationError, Vp3dError
from converters.fileio import PathSet, atomic_write, check_output_folder, printable
from converters.interrupts import Interrupted, interrupts_raise
from converters.types import MAX_FPS, MIN_FPS
from vp3d_engine.options import add_arguments

__all__ = ["main"]

log = logging.getLogger("vp3d")


def _write_json(path: str, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2) + "\n"), binary=False)


def _bounded(kind: type, low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) from ``low`` to ``high``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be from {low:g}" + (f" to {high:g}" if high is not None else " up")
                                             + f", not {text}")
        return value
    return parse


def _check_checkpoint_out(out: str) -> None:
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
    _check_checkpoint_out(args.out)
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
        _check_checkpoint_out(str(folder))
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


def _add_train(sub: argparse._SubParsersAction) -> None:
    from vp3d_engine.lifters.registry import lifter_names, lifter_spec

    p = sub.add_parser("train", help="train the pose and trajectory lifters on BVH motion capture")
    p.add_argument("--data", nargs="+", required=True, help="folders or files of .bvh takes")
    p.add_argument("--out", required=True, help="checkpoint folder to write (e.g. checkpoints/NAME)")
    p.add_argument("--lifter", default="videopose3d",
                   choices=[n for n in lifter_names() if lifter_spec(n).kind == "checkpoint"])
    p.add_argument("--filter-widths", type=_bounded(int, 1, 15), nargs="+", help="e.g. 3 3 3 3 3 (243 frames)")
    p.add_argument("--channels", type=_bounded(int, 1, 4096))
    p.add_argument("--trajectory-channels", type=_bounded(int, 0, 4096), help="0 trains no trajectory model")
    p.add_argument("--dropout", type=_bounded(float, 0.0, 0.99))
    p.add_argument("--causal", action="store_true", help="use only past frames (real-time)")
    p.add_argument("--epochs", type=_bounded(int, 1), default=40)
    p.add_argument("--batch-size", type=_bounded(int, 1, 1 << 20), default=1024)
    p.add_argument("--lr", type=_bounded(float, 1e-12, 10.0), default=1e-3)
    p.add_argument("--lr-decay", type=_bounded(float, 1e-6, 1.0), default=0.95,
                   help="per epoch, for --lr-schedule exponential")
    p.add_argument("--lr-schedule", choices=["exponential", "cosine"], default="exponential",
                   help="exponential: --lr times --lr-decay each epoch; cosine: a half cosine from --lr down to "
                        "--lr times --lr-final over --epochs (set --epochs to what fits --max-minutes)")
    p.add_argument("--lr-final", type=_bounded(float, 0.0, 1.0), default=0.01,
                   help="last epoch's learning rate as a share of --lr, for --lr-schedule cosine")
    p.add_argument("--samples-per-epoch", type=_bounded(int, 1),
                   help="output frames per epoch (default: one per training frame)")
    p.add_argument("--chunk", type=_bounded(int, 1, 10_000), default=1,
                   help="output frames per window: 1 trains the strided 1f model; more trains the dilated "
                        "model on runs of consecutive frames (far fewer computations per frame on a CPU)")
    p.add_argument("--val-fraction", type=_bounded(float, 0.0, 1.0), default=0.1, help="share of takes held out")
    p.add_argument("--val-views", type=_bounded(int, 1, 64), default=2,
                   help="cameras each held-out take is seen from when validating (default 2)")
    p.add_argument("--fps", type=_bounded(float, MIN_FPS, MAX_FPS), default=30.0,
                   help="frame rate the takes are resampled to, and the checkpoint's (default 30)")
    p.add_argument("--seed", type=_bounded(int, 0, 2**32 - 1), default=1234)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-minutes", type=_bounded(float, 0.0),
                   help="stop after this many minutes (keeps the best epoch)")
    p.add_argument("--no-noise", action="store_true", help="train on clean 2D (no detector noise)")
    p.add_argument("--no-body-shape", action="store_true",
                   help="keep the mocap actors' proportions (no random torso, shoulder, hip and limb scales)")
    p.add_argument("--body-shape-share", type=_bounded(float, 0.0, 1.0), default=0.8,
                   help="share of training windows given random body proportions (default 0.8; 0: the actors' own, "
                        "as --no-body-shape)")
    p.add_argument("--camera-distance", nargs=2, type=_bounded(float, 0.1, 1000.0), metavar=("NEAR", "FAR"),
                   help="metres from the training cameras to the person, drawn log-uniformly (default 2.5 9; "
                        "--camera-distance 1.5 9 adds the close range of webcams and small rooms)")
    p.add_argument("--average-epochs", type=_bounded(float, 0.0, 1000.0), default=0.0, metavar="N",
                   help="validate and keep a moving average of the weights over about N epochs (Polyak averaging; "
                        "the last weights' validation figures are recorded too); 0: the last weights")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the training passes' matrix products in bfloat16, the weights, losses and validation "
                        "in fp32; about 1.6x faster on CPUs with AVX512-BF16 or AMX (and on GPUs), slower elsewhere "
                        "(default fp32)")
    p.add_argument("--frame-span", type=_bounded(float, 0.0, 600.0), default=0.0, metavar="SECONDS",
                   help="each training camera is aimed at and frames up to this many seconds of the take around its "
                        "window, as a static camera filming a whole walk: people are seen off the camera's axis, out "
                        "to the picture's edges, where a lifter trained on centred windows fails "
                        "(benchmarks/results/mocap_breakdown.txt); default 0: the window alone")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (same architecture): fine-tuning")
    p.add_argument("--unlabeled", nargs="+", metavar="PATH", default=[],
                   help="videos, folders of videos or 2D keypoint files without 3D: semi-supervised training "
                        "(projection and bone-length losses; their 2D is detected once and cached in --out)")
    p.add_argument("--unlabeled-weight", type=_bounded(float, 1e-6, 100.0), default=1.0,
                   help="weight of the unlabeled losses against the supervised ones")
    p.add_argument("--unlabeled-share", type=_bounded(float, 0.01, 4.0), default=0.25,
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure a checkpoint on BVH takes seen by synthetic cameras")
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--checkpoint", required=True, help="checkpoint name, folder, or original .bin")
    p.add_argument("--noise", default="detector", choices=["none", "detector"])
    p.add_argument("--seed", type=_bounded(int, 0, 2**32 - 1), default=0)
    p.add_argument("--views", type=_bounded(int, 1, 64), default=2, help="cameras per take")
    p.add_argument("--split", default="validation", choices=["validation", "train", "all"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--world", action="store_true",
                   help="also run the world stage of vp3d-convert and score the motion in world space: "
                        "world_mpjpe, root_drift, foot_skating (mm per frame while the truth's foot is planted), "
                        "penetration, jitter_ratio")
    add_arguments(p.add_argument_group("with --world: as vp3d-convert"), names=("trajectory", "smooth", "feet"))
    p.add_argument("--json", help="write the figures (overall, per take, per action) here")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_weights_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vp3d_engine.original_weights import convert_original, download_weights

    check_output_folder(args.dir)
    if args.convert:
        _check_checkpoint_out(args.convert)
    bar = tqdm(unit="B", unit_scale=True, desc=args.name, disable=args.quiet)

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        path = download_weights(args.name, Path(args.dir), base_url=args.base_url, sha256=args.sha256,
                                progress=progress)
    finally:
        bar.close()
    print(f"downloaded {path}")
    if args.convert:
        out = convert_original(path, Path(args.convert), trust_pickle=args.trust_pickle)
        print(f"converted to {out}")
    return 0


def _cmd_weights_convert(args: argparse.Namespace) -> int:
    from vp3d_engine.original_weights import convert_original

    _check_checkpoint_out(args.out)
    out = convert_original(Path(args.file), Path(args.out), input_joints=args.input_joints,
                           trust_pickle=args.trust_pickle)
    print(f"converted {args.file} to {out}")
    return 0


def _cmd_weights_list(args: argparse.Namespace) -> int:
    from vp3d_engine.original_weights import ORIGINAL_WEIGHTS

    for w in ORIGINAL_WEIGHTS.values():
        print(f"{w.name:38s} {w.input_joints:7s} {w.description}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from vp3d_engine.checkpoints import CONFIG_NAME, checkpoint_search_path, installed_checkpoints, read_config
    from vp3d_engine.detectors.registry import detector_names, detector_spec
    from vp3d_engine.lifters.registry import lifter_names, lifter_spec

    if args.json:  # what a front door offers in its menus (the Blender add-on, the service)
        from converters.rigs import PRESETS
        from vp3d_engine.options import describe_options

        entries = []
        for name, folder in installed_checkpoints().items():
            try:
                entries.append({"name": name, "lifter": read_config(folder)["lifter"], "path": str(folder)})
            except CheckpointError:
                continue
        print(json.dumps({"detectors": [{"name": n, "description": detector_spec(n).description}
                                        for n in detector_names(public=True)],
                          "lifters": [{"name": n, "description": lifter_spec(n).description}
                                      for n in lifter_names(public=True)],
                          "checkpoints": entries, "rigs": list(PRESETS), "options": describe_options()}, indent=1))
        return 0
    print("detectors:")
    for name in detector_names():
        print(f"  {name:14s} {detector_spec(name).description}")
    print("lifters:")
    for name in lifter_names():
        print(f"  {name:14s} {lifter_spec(name).description}")
    print("checkpoints:")
    broken = 0
    for root in checkpoint_search_path():
        if root.is_dir():
            for folder in sorted(q for q in root.iterdir() if (q / CONFIG_NAME).is_file()):
                try:
                    cfg = read_config(folder)
                except CheckpointError as exc:
                    broken += 1
                    print(f"  {folder.name:14s} BROKEN: {exc}")
                    continue
                rf = math.prod(cfg["architecture"]["filter_widths"])
                print(f"  {folder.name:14s} {cfg['lifter']}, {rf} frames, {cfg['input']['joints']} input ({folder})")
    if broken:
        print(f"vp3d list: {broken} checkpoint folder(s) cannot be used (see BROKEN above); fix or remove them",
              file=sys.stderr)
    return 0


def _add_weights(sub: argparse._SubParsersAction) -> None:
    from vp3d_engine.original_weights import ORIGINAL_WEIGHTS

    p = sub.add_parser("weights", help="download or convert the original VideoPose3D checkpoints")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    d = wsub.add_parser("download", help="download an original .bin (the only command that uses the network)")
    d.add_argument("name", choices=list(ORIGINAL_WEIGHTS))
    d.add_argument("--dir", default="checkpoints/original", help="where to save the .bin")
    d.add_argument("--base-url", help="mirror to download from (default: the original host)")
    d.add_argument("--sha256", help="expected checksum; the download is refused if it differs")
    d.add_argument("--convert", metavar="OUT", help="also convert to a checkpoint folder OUT")
    d.add_argument("--trust-pickle", action="store_true", help="allow a full unpickle when converting")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_weights_download)
    c = wsub.add_parser("convert", help="convert an original .bin into a checkpoint folder")
    c.add_argument("file")
    c.add_argument("--out", required=True, help="checkpoint folder to write")
    c.add_argument("--input-joints", choices=["coco17", "h36m17"], help="2D format the model expects")
    c.add_argument("--trust-pickle", action="store_true",
                   help="allow a full unpickle (runs code from the file: only for files you trust)")
    c.set_defaults(func=_cmd_weights_convert)
    ls = wsub.add_parser("list", help="list the original files vp3d knows")
    ls.set_defaults(func=_cmd_weights_list)


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list detectors, lifters and installed checkpoints")
    p.add_argument("--json", action="store_true", help="as JSON, with the rig presets (for programs)")
    p.set_defaults(func=_cmd_list)


def _cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress
    import os

    token = args.token or os.environ.get("VP3D_TOKEN", "")
    if args.port is None:
        env_port = os.environ.get("VP3D_PORT", "8000")
        if not (env_port.isdigit() and 1 <= int(env_port) <= 65535):  # checked before the data folder is made
            print(f"vp3d serve: error: VP3D_PORT={env_port!r} is not a port number (1 to 65535)", file=sys.stderr)
            return 2
        args.port = int(env_port)
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        print(f"vp3d serve: error: binding to {args.host} makes the service reachable from other machines; give "
              "--token (or VP3D_TOKEN) so that only those who have it can use it", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from vp3d_engine.service.app import ServiceSettings, create_app
    except ImportError as exc:
        print(f"vp3d serve: error: {exc.name} is not installed: pip install 'vp3d[serve]'", file=sys.stderr)
        return 2
    data = Path(args.data).expanduser()
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".vp3d-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        print(f"vp3d serve: error: --data {data}: {exc.strerror or exc}; choose a folder this user can write",
              file=sys.stderr)
        return 2
    settings = ServiceSettings(data=data, workers=args.workers, token=token, max_upload_mb=args.max_upload_mb,
                               max_duration_s=args.max_duration, max_frames=args.max_frames, max_queue=args.max_queue,
                               expire_hours=args.expire_hours, runner=args.runner, host=args.host, port=args.port,
                               allowed_hosts=tuple(args.allowed_host))
    if not args.verbose:  # a service logs warnings and errors (uvicorn's level), not each upload
        logging.getLogger().setLevel(logging.WARNING)
    print(f"vp3d serve: http://{args.host}:{args.port}/ ({args.workers} worker(s), data in {data})", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=5)  # an open event stream must not hold a stop until its job ends
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the job service and its web page (FastAPI)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=_bounded(int, 1, 65535), default=None,
                   help="default: $VP3D_PORT, else 8000")
    p.add_argument("--data", default="vp3d-data", help="folder for the job database, uploads and results")
    p.add_argument("--workers", type=_bounded(int, 1, 64), default=1, help="conversions at once (processes)")
    p.add_argument("--token", default="", help="require Authorization: Bearer TOKEN (or set VP3D_TOKEN)")
    p.add_argument("--max-upload-mb", type=_bounded(float, 0.001), default=500.0)
    p.add_argument("--max-duration", type=_bounded(float, 0.1, 1e6), default=600.0,
                   help="seconds of video to convert per job, at most")
    p.add_argument("--max-frames", type=_bounded(int, 1, 10**8), default=None,
                   help="frames to convert per job, at most (default: the duration limit at 60 frames per second); "
                        "pixels x frames are limited to this many 1920x1080 frames")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name the service also answers as (e.g. behind a proxy, or a LAN name); by default "
                        "it answers only as the address it was started on (loopback names for 127.0.0.1)")
    p.add_argument("--max-queue", type=_bounded(int, 1), default=50, help="queued jobs before 503 Retry-After")
    p.add_argument("--expire-hours", type=_bounded(float, 0.0), default=168.0, help="results are deleted after")
    p.add_argument("--runner", default="vp3d_engine.service.runner:make_runner", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_serve)


_ADDERS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train, _add_evaluate, _add_weights, _add_list,
                                                               _add_serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vp3d", description="vp3d: video to 3D animation")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with interrupts_raise():
            return int(args.func(args))
    except Vp3dError as exc:
        if args.verbose:
            raise
        print(f"vp3d {args.command}: error: {printable(exc)}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"vp3d {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
