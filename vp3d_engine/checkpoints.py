"""The project's checkpoint format: a folder with ``config.json`` and ``model.safetensors``.

``config.json`` records everything needed to rebuild and use the model::

    format            "vp3d-lifter" (version 1)
    lifter            registry name, e.g. "videopose3d"
    architecture      filter_widths, channels, dropout, causal, dense
    trajectory        null, or the trajectory model's architecture
    input             {"joints": "coco17" | "h36m17", "features": 2, "normalization": "screen"}
    output            {"joints": "h36m17", "units": "m", "root_relative": true}
    fps               frame rate the model was trained at
    receptive_field   frames (derived; checked on load)
    test_time_flip    whether inference should average the mirrored input
    license, origin   free text; where the weights come from and under which terms
    sha256            sha256 of model.safetensors (checked on load)
    training          optional: data, command, figures

Weights are stored under ``pose.*`` and ``trajectory.*``. Loading is strict: unknown or missing
tensors are an error. Folders are written atomically (a temporary folder renamed into place).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from converters.errors import CheckpointError, ConfigurationError, InputFileError
from converters.fileio import TEMP_MARK, check_input_path, check_output_folder, remove_stale_temps
from converters.joints import joint_set
from converters.types import check_fps
from vp3d_engine.lifters.registry import build_temporal_model, lifter_spec

if TYPE_CHECKING:
    import torch

    from vp3d_engine.lifters.temporal import TemporalModelBase

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "WEIGHTS_NAME",
    "LoadedLifter",
    "check_checkpoint_out",
    "checkpoint_search_path",
    "installed_checkpoints",
    "load_checkpoint",
    "read_config",
    "resolve_checkpoint",
    "save_checkpoint",
    "sha256_file",
    "validate_config",
]

FORMAT = "vp3d-lifter"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_REPO_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@dataclass
class LoadedLifter:
    """A checkpoint in memory: its config and models (eval mode)."""

    config: dict[str, Any]
    pose: TemporalModelBase
    trajectory: TemporalModelBase | None
    path: Path

    @property
    def receptive_field(self) -> int:
        return self.pose.receptive_field


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_search_path() -> list[Path]:
    """Folders searched for a checkpoint given by name: ``$VP3D_CHECKPOINTS`` (colon separated)
    then the repository's ``checkpoints/``."""
    env = os.environ.get("VP3D_CHECKPOINTS", "")
    return [Path(p) for p in env.split(os.pathsep) if p] + [_REPO_CHECKPOINTS]


def installed_checkpoints() -> dict[str, Path]:
    """Checkpoint folders found by name on the search path (the first of each name wins)."""
    found: dict[str, Path] = {}
    for root in checkpoint_search_path():
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if (folder / CONFIG_NAME).is_file():
                    found.setdefault(folder.name, folder)
    return found


def _looks_like_a_path(text: str) -> bool:
    return os.sep in text or text.startswith(".") or text.lower().endswith(".bin") or (os.altsep or os.sep) in text


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint folder or ``.bin`` file from a path, or from a name on the search path. A bare
    name (no folder part, not a ``.bin``) is looked up by name first, so a file or folder of that
    name in the current folder does not stand in for an installed checkpoint."""
    text = str(name_or_path)
    p = Path(name_or_path)
    if not _looks_like_a_path(text) and p.name == text:
        for root in checkpoint_search_path():
            if (root / p / CONFIG_NAME).is_file():
                return root / p
    if os.path.lexists(p):
        return check_input_path(p, "checkpoint")
    known = sorted(installed_checkpoints())
    raise CheckpointError(
        f"no checkpoint {text!r}: not a path, and not a name in "
        f"{', '.join(map(str, checkpoint_search_path()))} (known names: {', '.join(known) or 'none'})"
    )


#: Where `vp3d train --unlabeled` caches its clips' 2D inside --out (before the first epoch).
UNLABELED_CACHE_DIR = "unlabeled-2d"


def check_checkpoint_out(out: str | Path) -> Path:
    """A folder to write a checkpoint into, checked before any work: a new folder, an empty one, a
    checkpoint (replaced), or one holding an unfinished training run. A file, or a folder holding
    anything else, is refused (replacing it would lose those files)."""
    p = Path(out).resolve()
    if p.exists() and not p.is_dir():
        raise ConfigurationError(f"--out {out} is a file; a checkpoint is a folder: choose a folder name")
    if p.is_dir():
        kept = {CONFIG_NAME, WEIGHTS_NAME, "MODEL_CARD.md", "training_state.pt"}
        others = sorted(q.name for q in p.iterdir()
                        if not (q.name in kept and q.is_file()) and not (q.name == UNLABELED_CACHE_DIR and q.is_dir()))
        if others and not (p / CONFIG_NAME).is_file() and not (p / "training_state.pt").is_file():
            raise ConfigurationError(f"--out {out} is a folder with other files ({', '.join(others[:3])}); "
                                     "a checkpoint needs a folder of its own: choose a new name")
    check_output_folder(p if p.is_dir() else p.parent)
    return p


def save_checkpoint(out_dir: Path, config: dict[str, Any], pose: TemporalModelBase,
                    trajectory: TemporalModelBase | None = None, extra_files: dict[str, str] | None = None) -> Path:
    """Write ``out_dir`` atomically; returns it. ``extra_files`` maps names to text (e.g. a model
    card). An existing folder is replaced only once the new one is complete."""
    from safetensors.torch import save_file

    tensors = {f"pose.{k}": v.detach().cpu().contiguous() for k, v in pose.state_dict().items()}
    if trajectory is not None:
        tensors.update({f"trajectory.{k}": v.detach().cpu().contiguous() for k, v in trajectory.state_dict().items()})
    out_dir = Path(out_dir).resolve()  # "." has no name to build the temporary names from
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir.parent)  # what a killed save left behind
    short = out_dir.name.encode()[:200].decode(errors="ignore")  # the temporary name fits where the name fits
    tmp = Path(tempfile.mkdtemp(prefix=f".{TEMP_MARK}-{os.getpid()}-{short}-", dir=out_dir.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME))
        config = dict(config)
        if trajectory is None:
            config["trajectory"] = None  # the config describes what the folder holds
        config.update(format=FORMAT, format_version=FORMAT_VERSION,
                      receptive_field=pose.receptive_field, sha256=sha256_file(tmp / WEIGHTS_NAME))
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a checkpoint is ordinary shared data
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        # Keep everything the new folder does not replace (a model card written earlier, notes).
        if out_dir.is_dir():
            for old in out_dir.iterdir():
                if (tmp / old.name).exists() or os.path.lexists(tmp / old.name):
                    continue
                if old.is_dir() and not old.is_symlink():
                    shutil.copytree(old, tmp / old.name, symlinks=True)
                else:
                    shutil.copy2(old, tmp / old.name, follow_symlinks=False)
            backup = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(out_dir, backup)
            os.replace(tmp, out_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_config(folder: Path) -> dict[str, Any]:
    where = folder / CONFIG_NAME
    try:
        config = json.loads(where.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_NAME}; is this a vp3d checkpoint folder?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{where}: cannot be read ({exc})") from None
    except (ValueError, RecursionError) as exc:  # bad JSON, a 5000-digit number, absurd nesting
        raise CheckpointError(f"{where}: not valid JSON ({str(exc)[:120] or type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: holds a JSON {type(config).__name__}, expected an object")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{where}: format is {config.get('format')!r}, expected {FORMAT!r}")
    version = config.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{where}: format_version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{folder}: written by a newer vp3d (format {version}); upgrade vp3d")
    validate_config(config, str(where))
    return config


#: Bounds on what a checkpoint may ask to build, checked before any tensor is allocated: the
#: released VideoPose3D models use up to 1024 channels, widths of 3 or 5 and 243 frames.
MAX_CHANNELS = 4096
MAX_FILTER_WIDTH = 15
MAX_BLOCKS = 8
MAX_RECEPTIVE_FIELD = 6561
MAX_PARAMETERS = 100_000_000


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_architecture(arch: Any, j_in: int, j_out: int, features: int, where: str) -> int:
    """Raise :class:`CheckpointError` unless ``arch`` is a buildable temporal model within the
    bounds above; returns its parameter count (computed, nothing built)."""
    if not isinstance(arch, dict):
        raise CheckpointError(f"{where}: expected an object with filter_widths and channels, got {arch!r}")
    widths: Any = arch.get("filter_widths")
    channels: Any = arch.get("channels")
    if not (isinstance(widths, list) and 1 <= len(widths) <= MAX_BLOCKS and all(_is_int(w) for w in widths)):
        raise CheckpointError(f"{where}: filter_widths {widths!r} must be a list of 1 to {MAX_BLOCKS} integers")
    if any(w < 1 or w % 2 == 0 or w > MAX_FILTER_WIDTH for w in widths):
        raise CheckpointError(f"{where}: filter_widths {widths} must be odd, from 1 to {MAX_FILTER_WIDTH}")
    if not (_is_int(channels) and 1 <= channels <= MAX_CHANNELS):
        raise CheckpointError(f"{where}: channels {channels!r} must be an integer from 1 to {MAX_CHANNELS}")
    dropout = arch.get("dropout", 0.25)
    if not (isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0 <= dropout < 1):
        raise CheckpointError(f"{where}: dropout {dropout!r} must be a number in [0, 1)")
    for flag in ("causal", "dense"):
        if not isinstance(arch.get(flag, False), bool):
            raise CheckpointError(f"{where}: {flag} must be true or false, not {arch[flag]!r}")
    receptive = math.prod(widths)
    if receptive > MAX_RECEPTIVE_FIELD:
        raise CheckpointError(f"{where}: filter_widths {widths} give a receptive field of {receptive} frames, "
                              f"above {MAX_RECEPTIVE_FIELD}")
    params, dilation = channels * (j_in * features * widths[0] + 1 + 3 * j_out), widths[0]
    for w in widths[1:]:
        kernel = (w - 1) * dilation + 1 if arch.get("dense", False) else w
        params += channels * channels * (kernel + 1)
        dilation *= w
    if params > MAX_PARAMETERS:
        raise CheckpointError(f"{where}: {channels} channels with filter_widths {widths} make {params:,} parameters, "
                              f"above {MAX_PARAMETERS:,}; not a model vp3d can run")
    return params


def validate_config(config: Any, where: str = CONFIG_NAME) -> None:
    """Check a checkpoint config's types and bounds (see the module notes) before anything is built."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(config).__name__}")
    for key in ("lifter", "architecture", "input", "output"):
        if key not in config:
            raise CheckpointError(f"{where}: missing {key!r}")
    if not isinstance(config["lifter"], str):
        raise CheckpointError(f"{where}: lifter {config['lifter']!r} is not a name")
    for key in ("input", "output"):
        if not (isinstance(config[key], dict) and isinstance(config[key].get("joints"), str)):
            raise CheckpointError(f"{where}: {key} must be an object naming its joints, e.g. "
                                  '{"joints": "coco17"}')
    try:
        j_in, j_out = joint_set(config["input"]["joints"]).size, joint_set(config["output"]["joints"]).size
    except ConfigurationError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    if config["output"]["joints"] != "h36m17":
        raise CheckpointError(f"{where}: output joints {config['output']['joints']!r}; vp3d's lifters output h36m17")
    features = config["input"].get("features", 2)
    if not (_is_int(features) and features in (2, 3)):
        raise CheckpointError(f"{where}: input features {features!r} must be 2 (x, y) or 3 (x, y, score)")
    _check_architecture(config["architecture"], j_in, j_out, features, f"{where}: architecture")
    if config.get("trajectory") is not None:
        _check_architecture(config["trajectory"], j_in, 1, features, f"{where}: trajectory")
    if "fps" in config:
        try:
            check_fps(config["fps"])
        except InputFileError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
    rf = config.get("receptive_field")
    if rf is not None and not _is_int(rf):
        raise CheckpointError(f"{where}: receptive_field {rf!r} is not an integer")
    if not isinstance(config.get("test_time_flip", True), bool):
        raise CheckpointError(f"{where}: test_time_flip must be true or false")


def build_models(
    config: dict[str, Any], optimized_1f: bool = False
) -> tuple[TemporalModelBase, TemporalModelBase | None]:
    """Fresh (untrained) pose and trajectory models for a config (validated first: nothing is
    allocated for a config outside the bounds)."""
    validate_config(config, "model config")
    lifter_spec(config["lifter"])
    j_in = joint_set(config["input"]["joints"]).size
    j_out = joint_set(config["output"]["joints"]).size
    features = int(config["input"].get("features", 2))
    pose = build_temporal_model(config["architecture"], j_in, j_out, features, optimized_1f)
    traj = None
    if config.get("trajectory"):
        traj = build_temporal_model(config["trajectory"], j_in, 1, features, optimized_1f)
        if traj.receptive_field != pose.receptive_field:
            raise CheckpointError("trajectory and pose models must share one receptive field")
    return pose, traj


def load_checkpoint(name_or_path: str | Path, device: torch.device | str = "cpu") -> LoadedLifter:
    """Load a checkpoint folder (or an original VideoPose3D ``.bin``) strictly and safely."""
    path = resolve_checkpoint(name_or_path)
    if path.is_file():
        from vp3d_engine.original_weights import load_original_bin

        return load_original_bin(path, device=device)
    config = read_config(path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS_NAME}")
    expected = config.get("sha256")
    if expected and sha256_file(weights) != expected:
        raise CheckpointError(f"{weights}: sha256 does not match config.json; the file is damaged or was replaced")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: cannot read safetensors file ({exc})") from None
    pose, traj = build_models(config)
    _load_strict(pose, tensors, "pose.", weights)
    if traj is not None:
        _load_strict(traj, tensors, "trajectory.", weights)
    known = ("pose.", "trajectory.") if traj is not None else ("pose.",)
    leftover = [k for k in tensors if not k.startswith(known)]
    if leftover:
        raise CheckpointError(f"{weights}: unexpected tensors {leftover[:5]}")
    rf = config.get("receptive_field")
    if rf is not None and int(rf) != pose.receptive_field:
        raise CheckpointError(f"{path}: config says receptive field {rf}, architecture gives {pose.receptive_field}")
    pose.to(device).eval()
    if traj is not None:
        traj.to(device).eval()
    return LoadedLifter(config=config, pose=pose, trajectory=traj, path=path)


def _load_strict(model: TemporalModelBase, tensors: dict[str, torch.Tensor], prefix: str, where: Path) -> None:
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not fit the architecture in config.json: {exc}") from None
