"""The original VideoPose3D checkpoint files (``.bin``): download, safe loading, conversion.

Those files are ``torch.save`` dicts holding ``model_pos`` (a state dict) and possibly
``model_traj``, ``epoch``, ``lr``, ``optimizer`` and ``random_state`` (a numpy RandomState state).
They do not record their architecture, so it is inferred from the tensor shapes:

- ``expand_conv.weight (C, J_in * 2, w0)`` gives the channels, input joints and first width;
- ``layers_conv.{2i}.weight (C, C, k_i)`` gives the later widths (``k_i``), or for the dense
  variant kernels ``(w_i - 1) * prod(w_<i) + 1``, recognised when every later kernel fits that
  form and grows;
- ``shrink.weight (J_out * 3, C, 1)`` gives the output joints.

Causality cannot be seen in the weights (all released models are non-causal).

Loading uses ``torch.load(weights_only=True)``. Files whose ``random_state`` holds numpy arrays
need numpy's array-rebuilding functions; those, and only those, are allowed. A file that needs
anything else is refused with the command that converts it by a full unpickle, which the user
must ask for explicitly (``vp3d weights convert FILE --trust-pickle``).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import pickle
import re
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from converters.errors import CheckpointError, ConfigurationError
from converters.fileio import check_input_path, remove_stale_temps, temp_path
from vp3d_engine.checkpoints import LoadedLifter, build_models, save_checkpoint, validate_config

if TYPE_CHECKING:
    import torch

__all__ = [
    "ORIGINAL_WEIGHTS",
    "OriginalWeights",
    "convert_original",
    "download_weights",
    "infer_architecture",
    "load_original_bin",
    "read_original_bin",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://dl.fbaipublicfiles.com/video-pose-3d/"
ORIGINAL_LICENSE = "CC BY-NC 4.0 (VideoPose3D pretrained weights, Facebook Research)"


@dataclass(frozen=True)
class OriginalWeights:
    """A released file: its name, 2D input format, frame rate, and sha256 when known."""

    name: str
    input_joints: str
    fps: float
    description: str
    sha256: str | None = None


#: The released files. Their checksums are not published; ``vp3d weights download`` prints the
#: digest it computed so a user can pin it with ``--sha256``.
ORIGINAL_WEIGHTS: dict[str, OriginalWeights] = {w.name: w for w in (
    OriginalWeights("pretrained_h36m_detectron_coco.bin", "coco17", 50.0,
                    "243 frames, COCO-17 input from Detectron; the one for videos in the wild"),
    OriginalWeights("pretrained_h36m_cpn.bin", "h36m17", 50.0,
                    "243 frames, H36M-17 input from CPN (Human3.6M benchmark)"),
    OriginalWeights("d-pt-243.bin", "coco17", 50.0, "243 frames, COCO-17 input from Detectron"),
)}


def _numpy_safe_globals() -> list[Any]:
    """What a pickled numpy array (as in ``random_state``) needs, and nothing that runs code."""
    import numpy as np

    allowed: list[Any] = [np.ndarray, np.dtype]
    for mod_name in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            mod = __import__(mod_name, fromlist=["_reconstruct"])
            allowed.append(mod._reconstruct)
        except (ImportError, AttributeError):
            continue
    allowed.extend(type(np.dtype(c)) for c in ("u4", "u8", "i4", "i8", "f4", "f8"))
    return allowed


#: How torch.save files from before PyTorch 1.6 begin: a protocol-2 pickle of torch's magic number.
_LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")


def read_original_bin(path: Path, trust_pickle: bool = False) -> dict[str, Any]:
    """The dict inside an original ``.bin``, read safely (see the module notes). Zip-format files
    are memory-mapped, so a tensor record's claimed size is not read into memory up front."""
    import torch

    check_input_path(path, "checkpoint")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a checkpoint file")
    with open(path, "rb") as f:
        legacy = f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
    if not legacy and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (neither a zip nor an old-format torch "
                              "file); re-download it")

    def load(weights_only: bool) -> Any:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=not legacy)

    try:
        return load(True)
    except pickle.UnpicklingError:
        pass
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc}); re-download it") from None
    numpy_ok = _numpy_safe_globals()
    with torch.serialization.safe_globals(numpy_ok):
        try:
            return load(True)
        except pickle.UnpicklingError as exc:
            refusal = str(exc)
    if legacy:  # torch can list the globals of zip files only
        found = re.findall(r"GLOBAL (\S+)", refusal)
        still = sorted(set(found)) or ["objects it cannot name in this old format"]
    else:
        try:
            allowed_names = {f"{g.__module__}.{g.__qualname__}" for g in numpy_ok}
            still = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))) - allowed_names)
        except Exception as exc:  # the pickle stream itself is broken
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc}); re-download it") from None
    if trust_pickle:
        log.warning("%s: full unpickle (trusted by the user) for %s", path, still)
        try:
            return load(False)
        except Exception as exc:  # an untrusted-format failure can take any form
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint even with a full unpickle "
                                  f"({type(exc).__name__}: {exc})") from None
    old = " (an old, pre-zip PyTorch file)" if legacy else ""
    raise CheckpointError(
        f"{path}{old}: loading needs a full unpickle, which can run code from the file (it references "
        f"{', '.join(still) or 'non-tensor objects'}). If you trust the file, convert it "
        f"once: vp3d weights convert {path} --out checkpoints/{path.stem} --trust-pickle"
    )


def _state_dict(blob: dict[str, Any], key: str, path: Path) -> dict[str, torch.Tensor] | None:
    import torch

    sd = blob.get(key)
    if sd is None:
        return None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: {key!r} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def infer_architecture(sd: dict[str, torch.Tensor], where: str = "checkpoint") -> dict[str, Any]:
    """Architecture dict plus ``num_joints_in``/``num_joints_out`` from a TemporalModel state dict."""
    try:
        expand = sd["expand_conv.weight"]
        shrink = sd["shrink.weight"]
    except KeyError as exc:
        raise CheckpointError(f"{where}: not a VideoPose3D state dict (no {exc.args[0]})") from None
    if expand.ndim != 3 or shrink.ndim != 3:
        raise CheckpointError(f"{where}: expand_conv.weight {tuple(expand.shape)} and shrink.weight "
                              f"{tuple(shrink.shape)} must be 3-dimensional convolution kernels")
    channels, in_dim, w0 = expand.shape
    if in_dim % 2:
        raise CheckpointError(f"{where}: expand_conv expects {in_dim} inputs, not 2D joints")
    kernels = []
    i = 0
    while f"layers_conv.{2 * i}.weight" in sd:
        kernels.append(int(sd[f"layers_conv.{2 * i}.weight"].shape[-1]))
        i += 1
    widths = [int(w0)]
    dense = False
    if kernels and all(k % 2 for k in kernels):
        prod, candidate, fits = int(w0), [], True
        for k in kernels:
            if prod <= 1 or (k - 1) % prod or ((k - 1) // prod) % 2:
                fits = False
                break
            w = (k - 1) // prod + 1
            candidate.append(w)
            prod *= w
        dense = fits and len(kernels) > 1 and all(b > a for a, b in itertools.pairwise(kernels))
        widths += candidate if dense else kernels
    else:
        widths += kernels
    if any(w % 2 == 0 for w in widths):
        raise CheckpointError(f"{where}: inferred filter widths {widths} are not odd; not a VideoPose3D model")
    return {
        "filter_widths": widths, "channels": int(channels), "dropout": 0.25, "causal": False, "dense": dense,
        "num_joints_in": in_dim // 2, "num_joints_out": int(shrink.shape[0]) // 3,
    }


def load_original_bin(path: Path, device: torch.device | str = "cpu", input_joints: str | None = None,
                      trust_pickle: bool = False) -> LoadedLifter:
    """Load an original ``.bin`` strictly into vp3d's models."""
    path = Path(path)
    blob = read_original_bin(path, trust_pickle=trust_pickle)
    if not isinstance(blob, dict):
        raise CheckpointError(f"{path}: expected a dict with 'model_pos', found {type(blob).__name__}")
    pos_sd = _state_dict(blob, "model_pos", path)
    if pos_sd is None:
        raise CheckpointError(f"{path}: no 'model_pos' in the file; is it a VideoPose3D checkpoint?")
    traj_sd = _state_dict(blob, "model_traj", path)
    arch = infer_architecture(pos_sd, str(path))
    known = ORIGINAL_WEIGHTS.get(path.name)
    joints_in = input_joints or (known.input_joints if known else "coco17")
    if arch["num_joints_in"] != 17 or arch["num_joints_out"] != 17:
        raise CheckpointError(
            f"{path}: model maps {arch['num_joints_in']} to {arch['num_joints_out']} joints; vp3d handles 17 to 17")
    architecture = {k: arch[k] for k in ("filter_widths", "channels", "dropout", "causal", "dense")}
    traj_arch = None
    if traj_sd is not None:
        t = infer_architecture(traj_sd, f"{path} (model_traj)")
        traj_arch = {k: t[k] for k in ("filter_widths", "channels", "dropout", "causal", "dense")}
    config: dict[str, Any] = {
        "lifter": "videopose3d",
        "architecture": architecture,
        "trajectory": traj_arch,
        "input": {"joints": joints_in, "features": 2, "normalization": "screen"},
        "output": {"joints": "h36m17", "units": "m", "root_relative": True},
        "fps": known.fps if known else 50.0,
        "test_time_flip": True,
        "license": ORIGINAL_LICENSE,
        "origin": f"original VideoPose3D file {path.name} (sha256 {_sha256(path)})",
        "epoch": int(blob["epoch"]) if isinstance(blob.get("epoch"), int) else None,
    }
    validate_config(config, str(path))  # before anything is built: a few-kB file can claim any size
    pose, traj = build_models(config)
    try:
        pose.load_state_dict(pos_sd, strict=True)
        if traj is not None and traj_sd is not None:
            traj.load_state_dict(traj_sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the inferred architecture: {exc}") from None
    pose.to(device).eval()
    if traj is not None:
        traj.to(device).eval()
    return LoadedLifter(config=config, pose=pose, trajectory=traj, path=path)


def convert_original(path: Path, out_dir: Path, input_joints: str | None = None,
                     trust_pickle: bool = False) -> Path:
    """Convert an original ``.bin`` into a checkpoint folder (config + safetensors)."""
    lifter = load_original_bin(Path(path), input_joints=input_joints, trust_pickle=trust_pickle)
    card = (f"# {Path(out_dir).name}\n\nConverted by `vp3d weights convert` from the original VideoPose3D "
            f"release file `{Path(path).name}`.\n\n- Input: {lifter.config['input']['joints']} 2D keypoints, "
            f"screen-normalised\n- Receptive field: {lifter.receptive_field} frames\n"
            f"- License: {ORIGINAL_LICENSE}; non-commercial use only.\n")
    return save_checkpoint(Path(out_dir), lifter.config, lifter.pose, lifter.trajectory,
                           extra_files={"MODEL_CARD.md": card})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_weights(name: str, dest_dir: Path, base_url: str | None = None, sha256: str | None = None,
                     progress: Callable[[int, int | None], None] | None = None, timeout: float = 60.0) -> Path:
    """Download a released file into ``dest_dir`` atomically and verify its checksum when one is
    known (from :data:`ORIGINAL_WEIGHTS` or ``sha256``). ``base_url`` defaults to
    ``$VP3D_WEIGHTS_BASE_URL`` or the original host."""
    if name not in ORIGINAL_WEIGHTS:
        raise ConfigurationError(f"unknown weights {name!r}; known: {', '.join(ORIGINAL_WEIGHTS)}")
    expected = sha256 or ORIGINAL_WEIGHTS[name].sha256
    base = base_url or os.environ.get("VP3D_WEIGHTS_BASE_URL") or DEFAULT_BASE_URL
    url = base.rstrip("/") + "/" + name
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    remove_stale_temps(dest_dir)  # what a killed download left behind
    tmp = temp_path(target)
    h = hashlib.sha256()
    try:
        with open(tmp, "xb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except urllib.error.HTTPError as exc:
                raise CheckpointError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise CheckpointError(f"download of {url} failed: {getattr(exc, 'reason', exc)}; "
                                      "check the network or pass --base-url") from None
            with response:
                total = response.headers.get("Content-Length")
                total_n = int(total) if total and total.isdigit() else None
                done = 0
                while True:
                    block = response.read(1 << 16)
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total_n)
                if total_n is not None and done != total_n:
                    raise CheckpointError(f"download of {url} stopped at {done} of {total_n} bytes; try again")
        digest = h.hexdigest()
        if expected and digest != expected.lower():
            raise CheckpointError(f"{name}: sha256 {digest} does not match the expected {expected}; "
                                  "the download is corrupt or was tampered with (nothing was written)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not expected:
        log.warning("%s: no published checksum; sha256 of the download is %s", name, digest)
    return target
