"""The ``vp3d`` command: ``train`` and ``evaluate`` (:mod:`vp3d_engine.train_cli`), ``weights``,
``list`` and ``serve``.

Each subcommand parses its flags, calls one library function and maps :class:`Vp3dError` to a
one-line message and exit status 2 (1 for anything unexpected, with the traceback under
``--verbose``). Heavy imports happen inside the subcommands so ``vp3d --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from converters.errors import CheckpointError, Vp3dError
from converters.fileio import check_output_folder, printable
from converters.interrupts import Interrupted, interrupts_raise
from vp3d_engine.options import bounded
from vp3d_engine.train_cli import add_evaluate, add_train, check_checkpoint_out_flag

__all__ = ["main"]

log = logging.getLogger("vp3d")


def _cmd_weights_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vp3d_engine.original_weights import convert_original, download_weights

    check_output_folder(args.dir)
    if args.convert:
        check_checkpoint_out_flag(args.convert)
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

    check_checkpoint_out_flag(args.out)
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
    p.add_argument("--port", type=bounded(int, 1, 65535), default=None,
                   help="default: $VP3D_PORT, else 8000")
    p.add_argument("--data", default="vp3d-data", help="folder for the job database, uploads and results")
    p.add_argument("--workers", type=bounded(int, 1, 64), default=1, help="conversions at once (processes)")
    p.add_argument("--token", default="", help="require Authorization: Bearer TOKEN (or set VP3D_TOKEN)")
    p.add_argument("--max-upload-mb", type=bounded(float, 0.001), default=500.0)
    p.add_argument("--max-duration", type=bounded(float, 0.1, 1e6), default=600.0,
                   help="seconds of video to convert per job, at most")
    p.add_argument("--max-frames", type=bounded(int, 1, 10**8), default=None,
                   help="frames to convert per job, at most (default: the duration limit at 60 frames per second); "
                        "pixels x frames are limited to this many 1920x1080 frames")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name the service also answers as (e.g. behind a proxy, or a LAN name); by default "
                        "it answers only as the address it was started on (loopback names for 127.0.0.1)")
    p.add_argument("--max-queue", type=bounded(int, 1), default=50, help="queued jobs before 503 Retry-After")
    p.add_argument("--expire-hours", type=bounded(float, 0.0), default=168.0, help="results are deleted after")
    p.add_argument("--runner", default="vp3d_engine.service.runner:make_runner", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_serve)


_ADDERS: list[Callable[[argparse._SubParsersAction], None]] = [add_train, add_evaluate, _add_weights, _add_list,
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
