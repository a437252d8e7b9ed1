"""A stand-in for the pipeline in the service's API tests: fast, deterministic, and different for
every upload (the result names the upload's size and the options). ``VP3D_FAKE_SECONDS`` sets how
long a job takes; person 9 fails with a one-line error as the real pipeline would."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def make_runner() -> Callable[[Any, Callable[[str, float], None]], dict[str, Any]]:
    seconds = float(os.environ.get("VP3D_FAKE_SECONDS", "0.5"))

    def run(task: Any, progress: Callable[[str, float], None]) -> dict[str, Any]:
        from converters.errors import ConversionError
        from converters.fileio import atomic_write

        if task.options.get("person") == 9:
            raise ConversionError("person 9 is missing from 100% of the frames; choose another --person")
        for k in range(10):
            progress("detect", k / 10)
            time.sleep(seconds / 10)
        out = Path(task.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result = {"upload_bytes": Path(task.upload).stat().st_size, "options": task.options, "pid": os.getpid()}
        name = f"{task.stem}.json"
        atomic_write(out / name, lambda f: f.write(json.dumps(result).encode()))
        progress("write", 1.0)
        return {"files": [name], "timings": {"convert_s": seconds}}

    return run
