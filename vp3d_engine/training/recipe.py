"""Training recipes: several ``vp3d train`` runs in a row, as one resumable command.

A recipe is a JSON file (``vp3d_engine/training/recipes/NAME.json``, or any path) of shared
``options`` (architecture, split, license) and a list of ``stages``, each a set of training options
(epochs, learning-rate schedule, seed, cameras). Stage 1 starts from random weights; each later
stage starts from the best checkpoint of the one before (a warm restart: fresh optimizer, fresh
batch-norm momentum), exactly as the chain of commands it stands for. Stages train in
``<out>-stages/NN-name/``; a stage that has run all its epochs is not run again, an interrupted one
resumes from its last epoch, so running the same command again goes on where it stopped; a stage
whose predecessor's checkpoint, options or data have changed since it was trained is trained again.
Every stage's options are checked before the first stage starts (by ``vp3d train --recipe``, also
with the types, bounds and choices of the flags they stand for); a recipe file is a regular file
of at most 1 MB, and a stage's name (its folder's) plain and at most 64 characters. The last
stage's best checkpoint is written to ``<out>`` with the recipe and every stage's history in its
``config.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch

from converters.errors import CheckpointError, ConfigurationError
from vp3d_engine.checkpoints import load_checkpoint, read_config, save_checkpoint
from vp3d_engine.training.train import STATE_NAME, TrainOptions, check_options, train

__all__ = ["load_recipe", "recipe_names", "stage_dirs", "train_recipe"]

RECIPES_DIR = Path(__file__).parent / "recipes"
MAX_RECIPE_BYTES = 1 << 20
#: A stage's name names its folder (``NN-name``): plain, and short enough for any file system.
MAX_STAGE_NAME = 64
_STAGE_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_STAGE_NAME}}}")
# What all stages share (the architecture and the split cannot change between a stage and the next).
SHARED_KEYS = {"lifter", "filter_widths", "channels", "trajectory_channels", "dropout", "causal", "fps",
               "val_fraction", "val_views", "license", "precision"}
# What each stage sets.
STAGE_KEYS = {"name", "epochs", "batch_size", "lr", "lr_decay", "lr_schedule", "lr_final", "seed",
              "samples_per_epoch", "chunk", "noise", "body_shape", "body_shape_share", "camera_distance",
              "average_epochs", "frame_span"}
_TYPES: dict[str, tuple[type, ...]] = {
    "lifter": (str,), "filter_widths": (list,), "channels": (int,), "trajectory_channels": (int,),
    "dropout": (float, int), "causal": (bool,), "fps": (float, int), "val_fraction": (float, int),
    "val_views": (int,), "license": (str,), "precision": (str,), "name": (str,), "epochs": (int,), "batch_size": (int,),
    "lr": (float, int), "lr_decay": (float, int), "lr_schedule": (str,), "lr_final": (float, int),
    "seed": (int,), "samples_per_epoch": (int,), "chunk": (int,), "noise": (bool,), "body_shape": (bool,),
    "body_shape_share": (float, int), "average_epochs": (float, int),
    "frame_span": (float, int),
    "camera_distance": (list,),
}


def _read_recipe_file(path: Path, given: str) -> str:
    """The text of a recipe file: a regular file of at most :data:`MAX_RECIPE_BYTES`, checked
    before it is read (a device such as ``/dev/zero`` never ends, a named pipe blocks) and opened
    without blocking."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigurationError(f"--recipe {given}: is a folder; give a JSON file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(f"--recipe {given}: not a regular file (a pipe or a device); save the recipe "
                                     "to a JSON file")
        if st.st_size > MAX_RECIPE_BYTES:
            raise ConfigurationError(f"--recipe {given}: {st.st_size:,} bytes is no recipe (a recipe is a small JSON "
                                     "file; see vp3d_engine/training/recipes/default.json)")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced since the check above
                raise ConfigurationError(f"--recipe {given}: not a regular file; save the recipe to a JSON file")
            data = f.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"--recipe {given}: no such file") from None
    except OSError as exc:
        raise ConfigurationError(f"--recipe {given}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_RECIPE_BYTES:
        raise ConfigurationError(f"--recipe {given}: more than {MAX_RECIPE_BYTES:,} bytes is no recipe (a recipe is a "
                                 "small JSON file; see vp3d_engine/training/recipes/default.json)")
    return data.decode("utf-8")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def _check_value(where: str, key: str, value: Any) -> Any:
    types = _TYPES[key]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        kinds = ("a number" if float in types else "a whole number" if int in types
                 else "true or false" if bool in types else f"a {types[0].__name__}")
        raise ConfigurationError(f"{where}: {key} must be {kinds}, not {json.dumps(value)[:40]}")
    value = cast(Any, value)  # checked above; mypy narrows it to object
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"{where}: {key} must be a finite number")
    if key in ("filter_widths", "camera_distance"):
        want = 2 if key == "camera_distance" else None
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if not value or not ok or (want and len(value) != want):
            shape = "two numbers (near, far metres)" if want else "a list of whole numbers"
            raise ConfigurationError(f"{where}: {key} must be {shape}")
        return [float(v) for v in value] if want else [int(v) for v in value]
    if key in ("epochs", "batch_size", "samples_per_epoch", "chunk", "channels", "val_views") and value < 1:
        raise ConfigurationError(f"{where}: {key} must be at least 1")
    if key in ("body_shape_share", "lr_final", "val_fraction", "dropout", "lr_decay") and not 0 <= value <= 1:
        raise ConfigurationError(f"{where}: {key} must be from 0 to 1")
    if key in ("lr", "lr_decay") and value <= 0:
        raise ConfigurationError(f"{where}: {key} must be above 0")
    return value


def load_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """Read and check a recipe: a name from ``recipes/`` (e.g. ``default``) or a JSON file."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        if str(name_or_path) not in recipe_names():
            raise ConfigurationError(f"--recipe {name_or_path}: no such recipe; give a JSON file or one of "
                                     f"{', '.join(recipe_names())}")
        path = RECIPES_DIR / f"{name_or_path}.json"
    try:
        recipe = json.loads(_read_recipe_file(path, str(name_or_path)))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigurationError(f"--recipe {name_or_path}: not valid JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise ConfigurationError(f"--recipe {name_or_path}: not valid JSON (nested too deeply)") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("stages"), list) or not recipe["stages"]:
        raise ConfigurationError(f"--recipe {name_or_path}: must be a JSON object with a list of \"stages\" "
                                 "(see vp3d_engine/training/recipes/default.json)")
    unknown = set(recipe) - {"description", "options", "stages"}
    if unknown:
        raise ConfigurationError(f"--recipe {name_or_path}: unknown key {sorted(unknown)[0]!r}; "
                                 "use description, options and stages")
    options = recipe.get("options", {})
    if not isinstance(options, dict):
        raise ConfigurationError(f"--recipe {name_or_path}: options must be a JSON object")
    for key, value in options.items():
        if key not in SHARED_KEYS:
            hint = " (a stage option: set it in each stage)" if key in STAGE_KEYS else ""
            raise ConfigurationError(f"--recipe {name_or_path}: options: unknown key {key!r}{hint}; "
                                     f"use {', '.join(sorted(SHARED_KEYS))}")
        options[key] = _check_value(f"--recipe {name_or_path}: options", key, value)
    names = set()
    for i, stage in enumerate(recipe["stages"], 1):
        where = f"--recipe {name_or_path}: stage {i}"
        if not isinstance(stage, dict):
            raise ConfigurationError(f"{where} must be a JSON object")
        for key, value in stage.items():
            if key not in STAGE_KEYS:
                hint = " (shared by all stages: set it in options)" if key in SHARED_KEYS else ""
                raise ConfigurationError(f"{where}: unknown key {key!r}{hint}; use {', '.join(sorted(STAGE_KEYS))}")
            stage[key] = _check_value(where, key, value)
        if "epochs" not in stage:
            raise ConfigurationError(f"{where}: give its epochs")
        stage.setdefault("name", f"stage{i}")
        if not _STAGE_NAME.fullmatch(stage["name"]) or stage["name"] in names:
            raise ConfigurationError(f"{where}: name {stage['name'][:80]!r} must be unique letters, digits, - or _ "
                                     f"(at most {MAX_STAGE_NAME} characters: it names the stage's folder)")
        names.add(stage["name"])
    recipe["options"] = options
    recipe["source"] = str(path)
    return recipe


def stage_dirs(out: Path, recipe: dict[str, Any]) -> list[Path]:
    work = Path(out).resolve().with_name(Path(out).resolve().name + "-stages")
    return [work / f"{i:02d}-{s['name']}" for i, s in enumerate(recipe["stages"], 1)]


def _stage_options(recipe: dict[str, Any], i: int, data: list[Path], out: Path, device: str) -> TrainOptions:
    values = {**recipe["options"], **{k: v for k, v in recipe["stages"][i].items() if k != "name"}}
    if "camera_distance" in values:
        values["camera_distance"] = tuple(values["camera_distance"])
    dirs = stage_dirs(out, recipe)
    opts = TrainOptions(data=data, out=dirs[i], device=device, init=dirs[i - 1] if i else None,
                        extra={"recipe_stage": f"{i + 1} of {len(dirs)} ({recipe['stages'][i]['name']})"})
    return replace(opts, **values)


def _recorded(folder: Path) -> dict[str, Any]:
    """What a stage's folder records of how it was trained (the checkpoint it started from, its
    options and data); empty when nothing is recorded."""
    try:
        training = read_config(folder).get("training")
    except CheckpointError:
        return {}
    return training if isinstance(training, dict) else {}


def _saved_history(folder: Path) -> list[dict[str, Any]] | None:
    """The epochs a stage's saved training state holds (empty: none saved; None: damaged, for
    train() to say so with its own message)."""
    path = folder / STATE_NAME
    if not path.is_file():
        return []
    try:
        return list(json.loads(torch.load(path, map_location="cpu", weights_only=True)["history"]))
    except Exception:  # a damaged state
        return None


def train_recipe(recipe: dict[str, Any], data: list[Path], out: Path, device: str = "auto", restart: bool = False,
                 command: str = "", progress: Callable[[dict[str, Any]], None] | None = None,
                 ) -> dict[str, Any]:
    """Run (or go on with) every stage, then write the last stage's best checkpoint to ``out``."""
    dirs = stage_dirs(out, recipe)
    every = [replace(_stage_options(recipe, i, data, out, device), command=command, resume=not restart)
             for i in range(len(dirs))]
    for i, opts in enumerate(every):  # a wrong value in the last stage is found now, not hours later
        try:
            check_options(opts)
        except ConfigurationError as exc:
            raise ConfigurationError(f"--recipe stage {i + 1} ({recipe['stages'][i]['name']}): {exc}") from None
    stages = []
    for i, stage in enumerate(recipe["stages"]):
        opts = every[i]
        init_sha = read_config(dirs[i - 1]).get("sha256") if i else None
        # What the stage is trained on and with: a stage trained otherwise is trained again.
        key = hashlib.sha256(json.dumps([recipe["options"], stage, sorted(str(Path(d).resolve()) for d in data)],
                                        sort_keys=True)
                             .encode()).hexdigest()[:16]
        opts.extra.update(init_sha256=init_sha, stage_key=key)
        before = _recorded(dirs[i])
        why = ("started from an earlier " + recipe["stages"][i - 1]["name"]
               if i > 0 and before.get("init_sha256") not in (None, init_sha)
               else "had other options or data" if before.get("stage_key") not in (None, key) else "")
        stale = bool(why)
        if stale and progress is not None:
            progress({"kind": "note", "text": f"stage {i + 1} ({stage['name']}) {why}: trained again"})
        if (restart or stale) and (dirs[i] / STATE_NAME).is_file():
            (dirs[i] / STATE_NAME).unlink()
        saved = _saved_history(dirs[i])
        done = len(saved) if saved is not None else -1
        if saved is not None and done >= opts.epochs and (dirs[i] / "config.json").is_file():
            history = saved
        else:
            if progress is not None:
                progress({"kind": "stage", "stage": i + 1, "stages": len(dirs), "name": stage["name"],
                          "epochs": opts.epochs, "done": max(0, done), "folder": str(dirs[i])})
            history = train(opts, progress)["history"]
        best = min(history, key=lambda h: h["val_mpjpe_mm"])
        stages.append({"name": stage["name"], "options": stage, "folder": str(dirs[i]),
                       "best_epoch": best["epoch"], "best_val_mpjpe_mm": best["val_mpjpe_mm"],
                       "best_val_p_mpjpe_mm": best["val_p_mpjpe_mm"],
                       "hours": sum(h["seconds"] for h in history) / 3600, "history": history})
    last = load_checkpoint(dirs[-1])
    config = dict(last.config)
    training = {k: v for k, v in config.get("training", {}).items()
                if k not in ("recipe_stage", "init_sha256", "stage_key")}  # the last stage's own, in stages
    training.update(command=command, init=None, recipe={k: v for k, v in recipe.items() if k != "source"},
                    recipe_file=recipe["source"],
                    stages=[{k: v for k, v in s.items() if k != "history"} for s in stages],
                    hours=sum(s["hours"] for s in stages))
    config["training"] = training
    for key in ("format", "format_version", "receptive_field", "sha256"):
        config.pop(key, None)
    save_checkpoint(Path(out), config, last.pose, last.trajectory)
    return {"out": str(out), "stages": stages, "best_val_mpjpe_mm": stages[-1]["best_val_mpjpe_mm"],
            "hours": training["hours"], "command": command}
