"""Running the real ``vp3d-convert`` and ``vp3d`` commands as a user would (a subprocess), and
checking what a bad input must never do: a traceback, more than one line of error, a changed or
left-behind file."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
#: Address-space limit for the cases that once allocated gigabytes: a regression fails with a
#: MemoryError instead of swapping the machine. A normal run needs well under 1 GiB.
MEMORY_LIMIT = 2 << 30


def run(command: str, *args: str | Path, cwd: Path, memory_limit: int | None = None, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` (``vp3d-convert`` or ``vp3d``) from this environment, with its own temporary
    folder (``cwd/tmp``) so what it leaves there can be checked."""
    tmp = cwd / "tmp"
    tmp.mkdir(exist_ok=True)
    full_env = {**os.environ, "TMPDIR": str(tmp), **(env or {})}

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run([str(BIN / command), *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """Exit ``code``, exactly one line on stderr holding every needle (case-insensitive), no traceback."""
    lines = error_lines(result)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its sha256; folders as ``/``, symbolic links
    as ``-> target``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if rel == "tmp" or rel.startswith("tmp/"):
            continue
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        else:
            out[rel] = "/" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temporaries(folder: Path) -> list[str]:
    """vp3d's temporary files and folders anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "vp3d-tmp" in p.name)


def with_meta(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of a result ``.npz`` with its meta changed (``meta=...`` replaces it whole) or arrays
    replaced (numpy values)."""
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        if key == "meta":
            meta = value
        elif isinstance(value, np.ndarray):
            arrays[key] = value
        else:
            meta[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(dst, **arrays)
    return dst


def coco_results(result_npz: Path, dst: Path) -> Path:
    """The 2D keypoints of a result as a COCO keypoint results list (one instance per frame)."""
    with np.load(result_npz, allow_pickle=False) as npz:
        xy, score = npz["keypoints_2d"], npz["scores"]
    anns = [{"image_id": t, "category_id": 1, "score": 1.0,
             "keypoints": np.concatenate([xy[t], score[t][:, None]], axis=1).ravel().round(3).tolist()}
            for t in range(len(xy))]
    dst.write_text(json.dumps(anns))
    return dst
