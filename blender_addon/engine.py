"""The engine behind the add-on, without bpy: the local ``vp3d-convert`` subprocess or a ``vp3d
serve`` service over HTTP. Both run in the background and are polled from Blender's main thread
(a modal operator's timer), so Blender never waits on them; both leave the Motion files
(:attr:`Status.motions`) in a temporary folder that the caller owns and deletes: one, or with
``person`` ``all`` one per person, named ``*.p<N>.motion.npz`` (``N``: the person's number, as
``--person N`` takes it). A job always ends (done, failed or cancelled):
whatever goes wrong in its thread fails it, so :meth:`Job.wait` (background mode) returns.

Only the standard library: Blender's Python has no ``requests`` (the HTTP client is ``remote.py``).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .remote import EngineError, RemoteLimits, Service, check_menus

__all__ = ["CONVERT_PLACES", "MAX_PEOPLE", "PREFERENCES_PATH", "EngineError", "Job", "LocalJob", "RemoteJob",
           "RemoteLimits", "Status", "convert_not_found", "engine_options", "find_convert", "list_backends_local",
           "list_backends_remote", "person_of"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: Where the path to vp3d-convert is set, as Blender 4.2+ shows it.
PREFERENCES_PATH = "Edit > Preferences > Add-ons > vp3d: Import pose from video > vp3d-convert"
#: Where people install vp3d, looked at (in this order) after the preference, $VP3D_CONVERT and
#: PATH: ``pip install --user`` and pipx's links (``~/.local/bin``); the virtual environments people
#: make for it, in the home folder and in the folder Blender was started from; pipx's, uv's and
#: conda's own environments named vp3d. ``bin`` is ``Scripts`` on Windows. Last, next to the Python
#: running Blender (a venv holding both bpy and vp3d).
CONVERT_PLACES = (".local/bin", "vp3d/.venv/bin", "vp3d/venv/bin", ".venv/bin", "venv/bin", ".venvs/vp3d/bin",
                  ".virtualenvs/vp3d/bin", ".local/pipx/venvs/vp3d/bin", ".local/share/pipx/venvs/vp3d/bin",
                  "pipx/venvs/vp3d/bin", ".local/share/uv/tools/vp3d/bin", "miniconda3/envs/vp3d/bin",
                  "miniforge3/envs/vp3d/bin", "anaconda3/envs/vp3d/bin")
_CWD_PLACES = (".venv/bin", "venv/bin")
#: The most people one conversion makes (the engine tracks at most 10: p0 to p9).
MAX_PEOPLE = 10
_PERSON_FILE = re.compile(r".+\.p(\d{1,3})\.motion\.npz")
_log = logging.getLogger(__name__)


def engine_options(**values: Any) -> dict[str, Any]:
    """Option values for the engine: the add-on's defaults (the options are defined once, in
    ``converters/options.py``, bundled as ``vendor/options.py``) with ``values`` put in. A value of 0
    for an option without a default (``start``, ``end``) means unset, as the panel shows it. A
    number from a menu (``person``'s "2", beside its "all") becomes the number."""
    from .vendor.errors import ConfigurationError
    from .vendor.options import default_values, option, parse_text

    out = default_values("addon")
    for name, value in values.items():
        if name not in out:
            raise EngineError(f"the add-on has no option {name!r}")
        if option(name).kind == "integer" and isinstance(value, str):
            try:
                value = parse_text(option(name), value)
            except ConfigurationError as exc:
                raise EngineError(str(exc)) from None
        out[name] = value
    for name, value in out.items():
        if option(name).default is None and value is not None and not value:
            out[name] = None
    return out


def person_of(path: Path) -> int | None:
    """The person number of a Motion file written for ``person`` ``all`` (``NAME.p2.motion.npz``: 2)."""
    found = _PERSON_FILE.fullmatch(path.name)
    return int(found.group(1)) if found is not None else None


@dataclass
class Status:
    """A job's state. ``motions``: the Motion files it made, once done: one, or with ``person``
    ``all`` one per person in the order of their numbers (``NAME.p<N>.motion.npz``)."""

    state: str = "running"  # running, done, failed, cancelled
    stage: str = "starting"
    fraction: float = 0.0
    message: str = ""
    motions: list[Path] = field(default_factory=list)

    @property
    def motion(self) -> Path | None:
        """The first Motion file (the only one, for one person)."""
        return self.motions[0] if self.motions else None


class Job:
    """One conversion in the background. :meth:`poll` never blocks; :meth:`cancel` stops the work
    and removes what it wrote; :meth:`close` removes the temporary folder (the Motion file too)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vp3d-blender-"))
        self.status = Status()
        self._lock = threading.Lock()

    def poll(self) -> Status:
        with self._lock:
            return Status(**{**self.status.__dict__, "motions": list(self.status.motions)})

    def _set(self, **changes: object) -> None:
        with self._lock:
            if self.status.state != "running":
                return  # the job has ended (done, failed, cancelled): a late report changes nothing
            for key, value in changes.items():
                setattr(self.status, key, value)

    def cancel(self) -> None:
        self._set(state="cancelled", message="cancelled")

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> Status:
        """Poll until the job ends (for background mode and scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.poll()
            if status.state != "running":
                return status
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                return self.poll()
            time.sleep(interval)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run_to_the_end(self, work: Callable[[], None]) -> None:
        """Run the job's ``work`` on its thread so that the job always ends: an :class:`EngineError`
        fails it with its message, anything else with an internal-error report (background mode
        waits for the job; a thread that died would leave it running for good)."""
        try:
            work()
        except EngineError as exc:
            self._set(state="failed", message=str(exc))
        except Exception as exc:
            _log.exception("vp3d: the job's thread stopped")
            self._set(state="failed", message=internal_error(exc))
        finally:
            self._set(state="failed", message=internal_error(None))  # no change once the job has ended


def _program(folder: Path) -> Path | None:
    name = "vp3d-convert.exe" if sys.platform == "win32" else "vp3d-convert"
    path = folder / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _named(candidate: str) -> str | None:
    """A path the user gave: the program, the folder it is in, or a venv (its ``bin``); else a name on PATH."""
    path = Path(candidate).expanduser()
    if path.is_file():
        return str(path)
    if path.is_dir():
        bin_name = "Scripts" if sys.platform == "win32" else "bin"
        found = _program(path) or _program(path / bin_name)
        return None if found is None else str(found)
    return shutil.which(candidate) if os.sep not in candidate and "/" not in candidate else None


def find_convert(configured: str = "") -> str | None:
    """The ``vp3d-convert`` to run: the add-on preference, else ``$VP3D_CONVERT`` (either one, when
    set, is the answer or there is none), else on PATH, else in :data:`CONVERT_PLACES`, else next
    to this Python."""
    for candidate in (configured, os.environ.get("VP3D_CONVERT", "")):
        if candidate:
            return _named(candidate)
    found = shutil.which("vp3d-convert")
    if found:
        return found
    home, cwd = Path.home(), Path.cwd()
    folders = [home / p for p in CONVERT_PLACES] + [cwd / p for p in _CWD_PLACES]
    if sys.platform == "win32":
        folders = [f.parent / "Scripts" if f.name == "bin" else f for f in folders]
    for folder in [*folders, Path(sys.executable).parent]:
        program = _program(folder)
        if program is not None:
            return str(program)
    return None


def convert_not_found(configured: str = "") -> str:
    """Why :func:`find_convert` found nothing, and what to do, for a report."""
    if configured:
        return (f"vp3d-convert is not at {configured}, the path set in {PREFERENCES_PATH}: correct it there, or "
                "clear it to let the add-on look for vp3d-convert")
    variable = os.environ.get("VP3D_CONVERT", "")
    if variable:
        return f"vp3d-convert is not at {variable} ($VP3D_CONVERT): correct the variable, or set the path in " \
               f"{PREFERENCES_PATH}"
    return ("vp3d-convert was not found (looked on PATH, in ~/.local/bin, ~/vp3d/.venv/bin, ~/.venv/bin, pipx's, "
            f"uv's and conda's vp3d environments, next to Blender's Python): install vp3d (pip install vp3d) and set "
            f"its path in {PREFERENCES_PATH}")


def internal_error(exc: BaseException | None) -> str:
    """The report for a fault of the add-on itself (a job's thread stopped by something unforeseen)."""
    what = f" ({type(exc).__name__}: {str(exc)[:200]})" if exc is not None else ""
    return (f"internal error in the add-on{what}; nothing was added: please report it to vp3d's maintainers, with "
            "what Blender's system console shows")


class LocalJob(Job):
    """``vp3d-convert VIDEO --motion --progress-lines`` as a subprocess; with ``person`` ``all`` it
    writes a Motion file per person."""

    def __init__(self, executable: str, video: str | Path, options: Mapping[str, Any]) -> None:
        from .vendor.options import to_cli_arguments

        super().__init__()
        self.video = Path(video)
        self.everyone = options.get("person") == "all"
        command = [executable, str(self.video), "--motion", "--out", str(self.folder), "--quiet", "--progress-lines",
                   *to_cli_arguments(options)]
        self._errors: collections.deque[str] = collections.deque(maxlen=50)  # the last lines vp3d-convert said
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                            encoding="utf-8", errors="replace", bufsize=1)
        except OSError as exc:
            self.close()
            raise EngineError(f"cannot run {executable}: {exc.strerror or exc}; set the path to vp3d-convert in "
                              f"{PREFERENCES_PATH}") from None
        self._reader = threading.Thread(target=self._run_to_the_end, args=(self._read,), name="vp3d-local-job",
                                        daemon=True)
        self._reader.start()


    def _read(self) -> None:
        stderr = self.process.stderr
        if stderr is None:
            raise RuntimeError("vp3d-convert's stderr is not a pipe")
        for line in stderr:
            words = line.split()
            if len(words) == 4 and words[0] == "vp3d-progress":
                try:
                    fraction = float(words[3])
                except ValueError:
                    continue
                if 0.0 <= fraction <= 1.0:
                    self._set(stage=words[1][:40], fraction=fraction)
            elif line.strip():
                self._errors.append(line.rstrip()[:1000])
        stderr.close()
        code = self.process.wait()
        motions = self._motions() if code == 0 else []
        if motions:
            self._set(state="done", stage="done", fraction=1.0, motions=motions)
        elif code == 0:
            self._set(state="failed", message=f"vp3d-convert finished without writing a Motion file for "
                                              f"{self.video.name} in {self.folder}: is it the same version of vp3d "
                                              "as the add-on?")
        else:
            said = [e for e in self._errors if "error" in e.lower()] or list(self._errors)[-3:]
            message = "\n".join(said) or f"vp3d-convert stopped with exit status {code}"
            self._set(state="failed", message=message.replace("vp3d-convert: error: ", ""))

    def _motions(self) -> list[Path]:
        """The Motion files vp3d-convert wrote: ``NAME.motion.npz``, or for everyone each
        ``NAME.p<N>.motion.npz``, by ``N``."""
        if not self.everyone:
            motion = self.folder / (self.video.stem + ".motion.npz")
            return [motion] if motion.is_file() else []
        numbered = ((person_of(p), p) for p in self.folder.iterdir() if p.is_file())
        people = sorted((n, p) for n, p in numbered if n is not None and p.name == f"{self.video.stem}.p{n}.motion.npz")
        return [p for _, p in people][:MAX_PEOPLE]

    def cancel(self) -> None:
        super().cancel()
        if self.process.poll() is None:
            self.process.terminate()  # vp3d-convert removes its temporary files on SIGTERM
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.close()


class RemoteJob(Job):
    """Upload to ``vp3d serve``, follow the job, download its Motion files (in a thread; with
    ``person`` ``all`` one per person, at most :data:`MAX_PEOPLE`). Every
    request is bounded in time and size by ``limits`` and kept to the Service URL's origin
    (``remote.py``)."""

    def __init__(self, url: str, token: str, video: str | Path, options: Mapping[str, Any],
                 limits: RemoteLimits | None = None) -> None:
        self.service = Service(url, token, limits)  # a Service URL that is no http(s) address stops here
        super().__init__()
        self.video = Path(video)
        self.options = options
        self.job_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_to_the_end, args=(self._convert,), name="vp3d-remote-job",
                                        daemon=True)
        self._thread.start()


    def _convert(self) -> None:
        from .vendor.options import to_form_fields

        service = self.service
        self._set(stage="upload")
        fields = {**to_form_fields(self.options), "formats": "motion"}
        self.job_id = service.submit(self.video, fields, uuid.uuid4().hex)
        while not self._stop.is_set():
            job = service.status(self.job_id)
            if job.state == "done":
                wanted = self._motion_files(job.files)
                self._set(stage="download")
                try:
                    for name, target in wanted:
                        service.fetch(self.job_id, name, target)
                except BaseException:
                    for _, target in wanted:  # all of them or none
                        target.unlink(missing_ok=True)
                    raise
                self._set(state="done", stage="done", fraction=1.0, motions=[target for _, target in wanted])
                return
            if job.state in ("failed", "cancelled"):
                raise EngineError(job.error or f"the job was {job.state} on the service")
            self._set(stage=job.stage, fraction=job.progress)
            self._stop.wait(service.limits.poll_s)

    def _motion_files(self, files: tuple[str, ...]) -> list[tuple[str, Path]]:
        """Which of the job's files (plain names, checked by ``remote.py``) to download, and where
        to: the Motion file, or with ``person`` ``all`` each person's (``NAME.p<N>.motion.npz``, by
        ``N``, at most :data:`MAX_PEOPLE`) as ``result.p<N>.motion.npz``."""
        base = self.service.base
        names = [n for n in files if n.endswith(".motion.npz")]
        if not names:
            made = ", ".join(files[:5]) or "nothing"
            raise EngineError(f"the service at {base} finished the job without a Motion file (it made {made}): is "
                              "it a vp3d service of this version?")
        if self.options.get("person") != "all":
            return [(names[0], self.folder / "result.motion.npz")]
        people = sorted((n, name) for name in names if (n := person_of(Path(name))) is not None)
        numbers = [n for n, _ in people]
        if not people or len(people) > MAX_PEOPLE or len(set(numbers)) < len(numbers):
            listed = ", ".join(n[:60] for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise EngineError(f"the service at {base} finished the job for everyone with Motion files the add-on "
                              f"does not understand ({listed}; it takes one NAME.p<N>.motion.npz per person, at most "
                              f"{MAX_PEOPLE}): is it a vp3d service of this version?")
        return [(name, self.folder / f"result.p{n}.motion.npz") for n, name in people]

    def cancel(self) -> None:
        super().cancel()
        self._stop.set()
        self.service.abort()  # a request under way ends now
        if self.job_id is not None:
            try:
                Service(self.service.base, self.service.token, self.service.limits).delete(self.job_id)
            except EngineError:
                pass  # the service may be gone: nothing of it is left here
        self._thread.join(timeout=5)
        self.close()


def list_backends_local(executable: str) -> dict[str, list[dict[str, str]]]:
    """What the local engine offers (``vp3d list --json``), for the panel's menus."""
    vp3d = str(Path(executable).with_name("vp3d.exe" if executable.endswith(".exe") else "vp3d"))
    try:
        done = subprocess.run([vp3d, "list", "--json"], capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"cannot run {vp3d} list --json: {getattr(exc, 'strerror', None) or exc}") from None
    if done.returncode != 0:
        raise EngineError(done.stderr.strip()[-500:] or f"vp3d list stopped with exit status {done.returncode}")
    try:
        return check_menus(json.loads(done.stdout))
    except (ValueError, RecursionError) as exc:  # not JSON, too deep, or not menus
        raise EngineError(f"{vp3d} list --json printed menus the add-on does not understand ({str(exc)[:200]}): "
                          "is it the same version of vp3d as the add-on?") from None


def list_backends_remote(url: str, token: str = "",
                         limits: RemoteLimits | None = None) -> dict[str, list[dict[str, str]]]:
    """What the service offers (``GET /api/backends``), checked."""
    return Service(url, token, limits).menus()
