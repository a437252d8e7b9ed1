"""2D keypoints written by other tools, read as :class:`FrameDetections` (bring your own detector).

Every reader returns COCO-17 detections in pixels: ``people[t]`` is ``(N_t, 17, 3)`` x, y, score,
score in [0, 1], 0 for a missing keypoint (x, y kept as written, or 0 if not finite). ``image_size``,
``fps`` and ``timestamps`` are None where the file does not say. :func:`read_keypoints_file` picks
the reader from the path and content (a folder means OpenPose).

Formats
-------
1. VideoPose3D custom dataset, ``data_2d_custom_*.npz`` (:func:`read_videopose3d_custom`):
   ``positions_2d`` a 0-d object array holding ``{video: {"custom": [xy (T,17,2)]}}`` and
   ``metadata`` one holding ``{"layout_name": "coco", "num_joints": 17, "video_metadata":
   {video: {"w", "h"}}, ...}``. One person per frame, no scores (1.0 is used).
2. VideoPose3D's Detectron2 inference output, one ``.npz`` per video (:func:`read_detectron_npz`):
   ``boxes``, ``segments``, ``keypoints``, ``metadata``. ``keypoints[t]`` is a per-class list whose
   entry 1 (person) is ``(N,4,17)``: rows x, y, logit, probability; an empty frame holds empty
   arrays or lists. ``metadata`` is ``{"w", "h"}``. Score = probability clipped to [0, 1]; every
   person in a frame is kept.
3. COCO keypoint results JSON (:func:`read_coco_json`): a list of ``{"image_id", "category_id": 1,
   "keypoints": [x, y, v] * 17, "score"}``, or the ground-truth form ``{"annotations": [...],
   "images": [{"id", "width", "height"}]}``. Frames: with ``images``, one per image sorted by id;
   otherwise, when every image_id is an integer and ``max - min + 1 <= 4 x`` the number of distinct
   ids, frame ``t`` is image_id ``min + t`` (ids with no detection become empty frames); otherwise
   the sorted distinct ids. Score per keypoint: when an instance's v are all in {0, 1, 2} with some
   v > 1 (or in the ground-truth form) v is a visibility flag, 0 -> 0 and 1/2 -> the instance
   ``score`` (1.0 if absent); otherwise v itself, clipped to [0, 1].
4. OpenPose ``--write_json`` folder (:func:`read_openpose_folder`): ``NAME_000000000012_keypoints.json``
   per frame (the 12 digits are the frame index), each ``{"people": [{"pose_keypoints_2d":
   [x, y, c, ...]}]}``; BODY_25 (75 numbers) or COCO-18 (54) is detected per file and mapped to
   COCO-17. c == 0 means missing. Indices absent between the first and last file are empty frames.
5. vp3d's own keypoints ``.npz`` (:func:`read_vp3d_keypoints`): one person per frame, score 0 where
   ``valid`` is false; image size, fps and timestamps carried over.
6. A plain ``(T,17,2)`` array (or ``(T,17,3)`` with a score column) in a ``.npy`` or a one-array
   ``.npz``: COCO-17 pixels, one person per frame (see :mod:`vp3d_engine.sources`).

The ``.npz`` files of formats 1 and 2 hold pickled object arrays. They are never given to
``np.load(allow_pickle=True)``: each ``.npy`` member is parsed here and object payloads go through
an unpickler that only builds numpy arrays, dtypes, scalars and plain containers.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import pickle
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from converters.errors import InputFileError
from converters.fileio import check_input_path
from converters.npz import NpzArrays, open_npz, read_npy_header
from converters.types import load_keypoints
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.readers import read_result_keypoints

__all__ = ["read_coco_json", "read_detectron_npz", "read_keypoints_file", "read_openpose_folder",
           "read_videopose3d_custom", "read_vp3d_keypoints"]

log = logging.getLogger(__name__)

_K = 17
_SUPPORTED = ("VideoPose3D data_2d_custom_*.npz, VideoPose3D Detectron2 .npz, COCO keypoint JSON, "
              "an OpenPose JSON folder, a vp3d keypoints .npz, or a (T,17,2) array (.npy)")
# COCO-17 order -> source index. OpenPose BODY_25 and COCO-18 share the first eight joints.
_FROM_BODY25 = np.array([0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11])
_FROM_OPENPOSE18 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10])
_OPENPOSE_FILE = re.compile(r"(\d{12})_keypoints\.json$")
_COCO_GAP_FACTOR = 4
_MAX_MISSING_FRAMES = 1000  # beyond the gap factor: OpenPose writes a file for every frame

# What unpickling a numpy object array of plain containers may reference; nothing else is built.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 (Python 2 era) pickles spell bytes
    *(("builtins", n) for n in ("list", "dict", "tuple", "set", "frozenset", "complex")),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise InputFileError(f"refusing to unpickle {module}.{name} from {self._source}: only numpy arrays "
                                 "and plain containers are allowed; if you trust the file, re-save its arrays "
                                 "without Python objects")
        if module.endswith(".multiarray"):  # numpy 2 renamed numpy.core (and warns on the old name)
            module = "numpy._core.multiarray" if importlib.util.find_spec("numpy._core") else "numpy.core.multiarray"
        return super().find_class(module, name)


def _read_member(npz: NpzArrays, key: str, source: str) -> np.ndarray:
    """Member ``key``: numbers read as they are, an object array through the restricted unpickler."""
    if not npz.headers[key][1].hasobject:
        return npz.read(key)
    with npz.open(key) as f:
        shape, _ = read_npy_header(f, source)
        try:
            arr = _RestrictedUnpickler(f, source).load()
        except InputFileError:
            raise
        except Exception as exc:  # a corrupt pickle can fail in almost any way
            raise InputFileError(f"{source}: corrupt object array ({type(exc).__name__}: {exc})") from exc
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        raise InputFileError(f"{source}: object member does not hold the array its header describes")
    return arr


def _npz_keys(path: Path) -> list[str]:
    with open_npz(path, objects=True) as npz:
        return npz.names


def _load_npz(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read the named members of an .npz (every member checked first) without ever running
    arbitrary pickle code."""
    with open_npz(path, objects=True) as npz:
        missing = [k for k in required if k not in npz]
        if missing:
            raise InputFileError(f"{path}: missing {', '.join(missing)} (it holds "
                                 f"{', '.join(npz.names) or 'nothing'}); expected one of: {_SUPPORTED}")
        try:
            return {key: _read_member(npz, key, f"{path}[{key}]")
                    for key in [*required, *(k for k in optional if k in npz)]}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
            raise InputFileError(f"{path}: corrupt .npz ({exc}); re-export it from the tool that wrote it") from exc


def _item_dict(arr: np.ndarray, where: str) -> dict[Any, Any]:
    value = arr.item() if arr.shape == () and arr.dtype.hasobject else None
    if not isinstance(value, dict):
        raise InputFileError(f"{where}: expected a dict stored as a 0-d object array, got {arr.dtype} {arr.shape}")
    return value


def _image_size(w: Any, h: Any, where: str) -> tuple[int, int]:
    if not (isinstance(w, int | np.integer) and isinstance(h, int | np.integer) and w > 0 and h > 0):
        raise InputFileError(f"{where}: image width/height {w!r}, {h!r} are not positive integers")
    return int(w), int(h)


def _to_float(values: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputFileError(f"{where}: keypoints are not numbers ({exc})") from None


def _people(xy: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``(N,17,2)`` and ``(N,17)`` -> ``(N,17,3)``; score clipped to [0, 1]; a joint with a non-finite x, y
    or score becomes (0, 0, 0)."""
    bad = ~(np.isfinite(xy).all(axis=-1) & np.isfinite(score))
    score = np.where(bad, 0.0, np.clip(np.nan_to_num(score), 0.0, 1.0))
    return np.concatenate([np.where(bad[..., None], 0.0, xy), score[..., None]], axis=-1).astype(np.float64)


def _no_people() -> np.ndarray:
    return np.zeros((0, _K, 3))


def read_videopose3d_custom(path: str | Path, video: str | None = None) -> FrameDetections:
    """Format 1: ``data_2d_custom_*.npz``; ``video`` picks one when the file holds several."""
    p = Path(path)
    arrays = _load_npz(p, required=("positions_2d", "metadata"))
    positions = _item_dict(arrays["positions_2d"], f"{p}[positions_2d]")
    meta = _item_dict(arrays["metadata"], f"{p}[metadata]")
    if meta.get("layout_name", "coco") != "coco" or meta.get("num_joints", _K) != _K:
        raise InputFileError(f"{p}: layout {meta.get('layout_name')!r} with {meta.get('num_joints')} joints; "
                             "only the 17-joint COCO layout can be read, re-run prepare_data_2d_custom.py on "
                             "COCO keypoints")
    names = sorted(str(n) for n in positions)
    if video is None:
        if len(names) != 1:
            raise InputFileError(f"{p}: holds {len(names)} videos ({', '.join(names) or 'none'}); choose one "
                                 "with video=NAME")
        video = names[0]
    if video not in positions:
        raise InputFileError(f"{p}: no video {video!r}; it holds {', '.join(names)}")
    entry = positions[video]
    custom = entry.get("custom") if isinstance(entry, dict) else None
    if not isinstance(custom, list | tuple) or not custom:
        raise InputFileError(f"{p}: video {video!r} has no 'custom' camera list (expected {{'custom': [xy]}})")
    xy = _to_float(custom[0], f"{p}[{video}]")
    if xy.ndim != 3 or xy.shape[1:] != (_K, 2):
        raise InputFileError(f"{p}: video {video!r} has keypoints of shape {xy.shape}, expected (T,17,2)")
    people = [_people(xy[t][None], np.ones((1, _K))) for t in range(xy.shape[0])]
    all_meta = meta.get("video_metadata")
    vm = all_meta.get(video) if isinstance(all_meta, dict) else None
    size = _image_size(vm.get("w"), vm.get("h"), f"{p}[metadata]") if isinstance(vm, dict) else None
    return FrameDetections(people=people, image_size=size, source=str(p), meta={"video": video})


def read_detectron_npz(path: str | Path) -> FrameDetections:
    """Format 2: the per-video ``.npz`` of VideoPose3D's Detectron2 inference script."""
    p = Path(path)
    arrays = _load_npz(p, required=("keypoints",), optional=("boxes", "metadata"))
    keypoints = arrays["keypoints"]
    if keypoints.ndim < 1:
        raise InputFileError(f"{p}[keypoints]: expected one entry per frame, got a scalar")
    if "boxes" in arrays and arrays["boxes"].ndim >= 1 and len(arrays["boxes"]) != len(keypoints):
        raise InputFileError(f"{p}: {len(arrays['boxes'])} frames of boxes but {len(keypoints)} of keypoints")
    people: list[np.ndarray] = []
    for t in range(len(keypoints)):
        frame = keypoints[t]  # a per-class list: entry 1 is the person class
        try:
            entry = None if frame is None or len(frame) < 2 else frame[1]
        except TypeError:
            raise InputFileError(f"{p}[keypoints]: frame {t} is not a per-class list") from None
        kp = _to_float([] if entry is None else entry, f"{p}[keypoints] frame {t}")
        if kp.size == 0:
            people.append(_no_people())
            continue
        if kp.ndim != 3 or kp.shape[1:] != (4, _K):
            raise InputFileError(f"{p}[keypoints]: frame {t} has shape {kp.shape}, expected (N,4,17) rows x, y, "
                                 "logit, probability")
        people.append(_people(kp[:, :2].transpose(0, 2, 1), kp[:, 3]))
    size = None
    if "metadata" in arrays:
        meta = _item_dict(arrays["metadata"], f"{p}[metadata]")
        size = _image_size(meta.get("w"), meta.get("h"), f"{p}[metadata]")
    return FrameDetections(people=people, image_size=size, source=str(p))


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputFileError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputFileError(f"{path}: JSON nested too deeply to be keypoints") from None


def _coco_instance(ann: Any, where: str, flags_always: bool) -> tuple[Any, np.ndarray]:
    if not isinstance(ann, dict) or "keypoints" not in ann or "image_id" not in ann:
        raise InputFileError(f"{where}: expected an object with 'image_id' and 'keypoints', got {str(ann)[:80]}")
    kp = _to_float(ann["keypoints"], where)
    if kp.shape != (_K * 3,):
        raise InputFileError(f"{where}: 'keypoints' has {kp.size} numbers, expected 51 (x, y, v for 17 COCO joints)")
    kp = kp.reshape(_K, 3)
    v = kp[:, 2]
    image_id, inst = ann["image_id"], ann.get("score", 1.0)
    if not isinstance(image_id, int | str) or not isinstance(inst, int | float):
        raise InputFileError(f"{where}: 'image_id' must be an integer or string and 'score' a number")
    if flags_always or (np.isin(v, (0.0, 1.0, 2.0)).all() and (v > 1).any()):
        score = np.where(v > 0, inst, 0.0)
    else:
        score = v
    return image_id, _people(kp[None, :, :2], score[None])[0]


def _natural(image_id: Any) -> Any:
    """Sort key for image ids: numbers inside strings compare as numbers ("frame_2" < "frame_10")."""
    if isinstance(image_id, str):
        return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", image_id))
    return image_id


def read_coco_json(path: str | Path) -> FrameDetections:
    """Format 3: COCO keypoint results (a list) or ground-truth style (``annotations`` + ``images``)."""
    p = Path(path)
    data = _load_json(p)
    images: list[Any] = []
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        anns, images, gt = data["annotations"], data.get("images") or [], True
        if not isinstance(images, list):
            raise InputFileError(f"{p}: 'images' is a {type(images).__name__}; COCO expects a list of "
                                 "{\"id\", \"width\", \"height\"} objects")
    elif isinstance(data, list):
        anns, gt = data, False
    else:
        raise InputFileError(f"{p}: expected a COCO keypoint list or an object with 'annotations'; got "
                             f"{type(data).__name__}")
    by_id: dict[Any, list[np.ndarray]] = {}
    for i, ann in enumerate(anns):
        if isinstance(ann, dict) and ann.get("category_id", 1) != 1:
            continue  # not a person
        image_id, person = _coco_instance(ann, f"{p} entry {i}", gt)
        by_id.setdefault(image_id, []).append(person)
    size: tuple[int, int] | None = None
    if images:
        if not all(isinstance(im, dict) and "id" in im for im in images):
            raise InputFileError(f"{p}: every entry of 'images' needs an 'id'")
        try:
            ids = sorted(im["id"] for im in images)
        except TypeError:
            raise InputFileError(f"{p}: image ids in 'images' mix types; use integers") from None
        sizes = {(im.get("width"), im.get("height")) for im in images}
        if len(sizes) == 1 and None not in next(iter(sizes)):
            size = _image_size(*next(iter(sizes)), f"{p}[images]")
        elif len(sizes) > 1:
            log.warning("%s: images have different sizes; image_size left unknown", p)
        unknown = set(by_id) - set(ids)
        if unknown:
            raise InputFileError(f"{p}: annotations refer to image ids not in 'images': {sorted(unknown)[:5]}")
    else:
        try:
            ids = sorted(by_id, key=_natural)
        except TypeError:
            raise InputFileError(f"{p}: image_id values mix types; use integers (frame numbers)") from None
        ints = all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        if ids and ints and ids[-1] - ids[0] + 1 <= _COCO_GAP_FACTOR * len(ids):
            ids = list(range(ids[0], ids[-1] + 1))
        elif ids and ints:
            log.warning("%s: image ids are too sparse to be frame numbers; one frame per distinct id", p)
    people = [np.stack(by_id[i]) if i in by_id else _no_people() for i in ids]
    return FrameDetections(people=people, image_size=size, source=str(p), meta={"image_ids": ids})


def _openpose_frame(path: Path) -> tuple[np.ndarray, str]:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise InputFileError(f"{path}: not an OpenPose keypoint file (expected an object with a 'people' list)")
    people, model = [], "none"
    for i, person in enumerate(data["people"]):
        raw = _to_float(person.get("pose_keypoints_2d") if isinstance(person, dict) else None, f"{path} person {i}")
        if raw.shape == (75,):
            order, model = _FROM_BODY25, "BODY_25"
        elif raw.shape == (54,):
            order, model = _FROM_OPENPOSE18, "COCO"
        else:
            raise InputFileError(f"{path}: person {i} has {raw.size} pose numbers; expected 75 (BODY_25) or 54 "
                                 "(COCO-18) — run OpenPose with --model_pose BODY_25 or COCO")
        kp = raw.reshape(-1, 3)[order]
        people.append(_people(kp[None, :, :2], kp[None, :, 2])[0])
    return (np.stack(people) if people else _no_people()), model


def read_openpose_folder(path: str | Path) -> FrameDetections:
    """Format 4: a folder of OpenPose ``*_<12 digits>_keypoints.json`` files, one per frame."""
    p = Path(path)
    if not p.is_dir():
        raise InputFileError(f"{p}: not a folder; pass the folder OpenPose wrote with --write_json")
    frames: dict[int, Path] = {}
    for f in p.iterdir():
        match = _OPENPOSE_FILE.search(f.name)
        if match is None:
            continue
        index = int(match.group(1))
        if index in frames:
            raise InputFileError(f"{p}: frame {index} appears twice ({frames[index].name}, {f.name}); keep one "
                                 "video's files per folder")
        frames[index] = f
    if not frames:
        raise InputFileError(f"{p}: no OpenPose files named like NAME_000000000000_keypoints.json")
    first, last = min(frames), max(frames)
    span = last - first + 1
    if span > _COCO_GAP_FACTOR * len(frames) + _MAX_MISSING_FRAMES:
        raise InputFileError(f"{p}: frame numbers run from {first} to {last} but only {len(frames)} files are there; "
                             "OpenPose writes one file per frame, so the folder mixes videos or the names are wrong")
    read = {index: _openpose_frame(f) for index, f in sorted(frames.items())}
    people = [read[i][0] if i in read else _no_people() for i in range(first, last + 1)]
    models = sorted({model for _, model in read.values()} - {"none"})
    return FrameDetections(people=people, source=str(p), meta={"first_frame": first, "openpose_models": models})


def read_vp3d_keypoints(path: str | Path) -> FrameDetections:
    """Format 5: vp3d's own keypoints file, one person per frame."""
    kp = load_keypoints(path)
    if kp.format != "coco17":
        raise InputFileError(f"{path}: holds {kp.format} keypoints; detections must be coco17")
    score = np.where(kp.valid, kp.score, 0.0)
    people = [_people(kp.xy[t][None], score[t][None]) for t in range(kp.num_frames)]
    return FrameDetections(people=people, image_size=kp.image_size, fps=kp.fps,
                           timestamps=np.asarray(kp.timestamps, dtype=np.float64), source=str(path), meta=kp.meta)


def read_keypoints_file(path: str | Path, video: str | None = None) -> FrameDetections:
    """Read any supported format, chosen from the path and content; ``video`` is for format 1."""
    p = check_input_path(path, "keypoints")
    if p.is_dir():
        return read_openpose_folder(p)
    suffix = p.suffix.lower()
    if suffix == ".json":
        data = _load_json(p)
        if isinstance(data, dict) and "people" in data:
            raise InputFileError(f"{p}: is a single OpenPose frame; pass the folder holding all the "
                                 "*_keypoints.json files")
        return read_coco_json(p)
    if suffix == ".npz":
        keys = _npz_keys(p)
        if "positions_2d" in keys:
            return read_videopose3d_custom(p, video)
        if "keypoints" in keys and "boxes" in keys:
            return read_detectron_npz(p)
        if "xy" in keys and "meta" in keys:
            return read_vp3d_keypoints(p)
        if "keypoints_2d" in keys and "meta" in keys:
            return read_result_keypoints(p)
        if len(keys) == 1:
            return _read_plain_array(p)
        raise InputFileError(f"{p}: unrecognised .npz (it holds {', '.join(keys) or 'nothing'}); expected "
                             f"one of: {_SUPPORTED}")
    if suffix == ".npy":
        return _read_plain_array(p)
    raise InputFileError(f"{p}: unsupported file type {suffix or '(none)'!r}; expected {_SUPPORTED}")


def _read_plain_array(path: Path) -> FrameDetections:
    """Format 6: a plain array of 2D keypoints (see :mod:`vp3d_engine.sources`)."""
    from vp3d_engine.arrays import ARRAY_SHAPES, array_kind, detections_from_array, load_plain_array

    if array_kind(path) != "keypoints":
        raise InputFileError(f"{path}: holds 3D joints, not 2D keypoints; convert it as an input of its own "
                             f"(vp3d-convert {path.name} --bvh), or give 2D keypoints: {ARRAY_SHAPES}")
    return detections_from_array(load_plain_array(path), path)


def precomputed_detector(device: str = "cpu", **_: Any) -> Any:
    """Registry factory for ``precomputed``: there is nothing to run on frames; the keypoints come
    from the file given with ``--keypoints``."""
    from converters.errors import ConfigurationError

    raise ConfigurationError("the precomputed detector reads 2D keypoints from a file: pass --keypoints FILE")
