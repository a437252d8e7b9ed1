"""Files in and out: writing without ever leaving a half-written or mixed result, checking input
and output paths, printing names safely.

- :func:`atomic_write`: one file, written to a temporary name in the target folder, then renamed.
- :class:`OutputSet`: several files that belong together (one input's NPZ, JSON, BVH, GLB, FBX):
  each is written to a temporary name, and all are moved into place only when every one was
  written, so a folder holds either the old set or the new one.
- Temporary names carry vp3d's mark and the writing process's id (``.clip.bvh.vp3d-tmp-PID-XXXX.bvh``;
  folders ``vp3d-tmp-PID-...``), so :func:`remove_stale_temps` can delete what a killed run left
  behind, and only that: files and folders with the mark whose process is gone. They fit any name
  that fits the file system (the part taken from the target's name is shortened).
- Reading numpy files from users: :mod:`converters.npz`.
- :func:`printable`: a name or message made safe to print (no terminal escapes, no fake lines).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from converters.errors import ConfigurationError, InputFileError

__all__ = ["NAME_MAX", "TEMP_MARK", "OutputSet", "PathSet", "atomic_write", "check_input_path", "check_output_folder",
           "printable", "remove_stale_temps", "temp_dir", "temp_path"]

TEMP_MARK = "vp3d-tmp"
_TEMP_FILE = re.compile(rf"^\..+\.{TEMP_MARK}-(\d+)-[0-9a-f]{{8}}(\.[^.]*)?$")
_TEMP_DIR = re.compile(rf"^\.?{TEMP_MARK}-(\d+)-")


#: The longest file name (in bytes) the usual file systems (ext4, APFS, NTFS) take.
NAME_MAX = 255


def temp_path(target: str | Path) -> Path:
    """A fresh temporary name beside ``target`` that keeps its suffix (some writers, Blender's FBX
    exporter among them, insist on it) and carries vp3d's mark and this process's id. The part
    taken from ``target``'s name is shortened where needed, so that any name that fits the file
    system gives a temporary name that fits too."""
    target = Path(target)
    mark = f".{TEMP_MARK}-{os.getpid()}-{secrets.token_hex(4)}"
    suffix = target.suffix if len(os.fsencode(target.suffix)) <= 32 else ""
    room = NAME_MAX - len(os.fsencode(f".{mark}{suffix}"))
    name = target.name
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return target.with_name(f".{name}{mark}{suffix}")


def printable(text: object) -> str:
    """``text`` safe to print on a terminal: control and format characters (escape sequences, new
    lines, direction overrides) shown as Python escapes (``\\x1b``, ``\\n``, ``\\u202e``) and bytes
    of a file name that are not text in the file system's encoding as ``\\xNN``."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":  # a byte that os.fsdecode could not decode
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


class TempDir:
    """A temporary folder whose clean-up is registered before the folder exists, so an interruption
    (Ctrl-C, SIGTERM) at any moment of its making leaves nothing behind; ``with`` gives its path."""

    def __init__(self, prefix: str, parent: str | Path | None = None) -> None:
        self.name = str(Path(parent or tempfile.gettempdir()) / f"{prefix}{secrets.token_hex(6)}")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.name, ignore_errors=True)
        os.mkdir(self.name, 0o700)

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self._cleanup()


def temp_dir(purpose: str, parent: str | Path | None = None) -> TempDir:
    """A temporary folder (in the system's temporary folder unless ``parent``) that a later run can
    recognise as vp3d's and remove if this process is killed before it cleans up. An interruption
    while it is made leaves none (``tempfile.TemporaryDirectory`` registers its clean-up after
    making the folder: a Ctrl-C in between, seen on a loaded machine, left one)."""
    return TempDir(f"{TEMP_MARK}-{os.getpid()}-{purpose}-", parent)


def atomic_write(path: str | Path, write: Callable[[IO[Any]], object], binary: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        with open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


class OutputSet:
    """The files of one result, moved into place together.

    ``stage(target)`` returns the temporary path to write ``target`` to (writers may themselves
    write atomically to that path); ``commit()`` renames every staged file onto its target, and
    removes the files ``retire`` named (an earlier result's that this one has no counterpart for:
    a person no longer found). Used as a context manager, an exception (or an interrupt) removes
    every staged file and leaves the targets as they were.
    """

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}
        self._retired: list[Path] = []

    def retire(self, target: str | Path) -> None:
        """Remove ``target`` (when it is a file) once the set is committed, unless it was staged."""
        self._retired.append(Path(target))

    def stage(self, target: str | Path) -> Path:
        target = Path(target)
        if target in self._staged:
            raise ConfigurationError(f"{target} would be written twice in one result")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
        self._staged[target] = tmp
        return tmp

    @property
    def targets(self) -> list[Path]:
        return list(self._staged)

    def commit(self) -> list[Path]:
        for target, tmp in self._staged.items():
            if not tmp.is_file():
                raise ConfigurationError(f"{target.name} was staged but never written")
            if target.is_dir():
                raise ConfigurationError(f"cannot write {target}: a folder of that name is in the way")
        for target, tmp in self._staged.items():
            os.replace(tmp, target)
        done = list(self._staged)
        for old in self._retired:
            if old not in self._staged and old.is_file() and not old.is_symlink():
                old.unlink(missing_ok=True)
        self._staged.clear()
        self._retired.clear()
        return done

    def discard(self) -> None:
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()  # after a commit nothing is left to discard


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or a number no process can have
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(folder: str | Path | None = None) -> list[Path]:
    """Remove vp3d's temporary files (and folders) in ``folder`` (default: the system's temporary
    folder) whose writing process no longer runs; returns what was removed. Nothing without vp3d's
    mark is touched."""
    root = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_FILE.match(entry.name) or _TEMP_DIR.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


class PathSet:
    """Paths compared as files, not strings: resolved (``..`` and symbolic links), case-folded (one
    file on macOS and Windows), and by inode for existing files (hard links)."""

    def __init__(self) -> None:
        self._names: dict[str, Path] = {}
        self._inodes: dict[tuple[int, int], Path] = {}

    @staticmethod
    def _key(path: str | Path) -> str:
        return os.path.realpath(path).casefold()

    def add(self, path: str | Path, label: str | Path | None = None) -> None:
        """Add ``path``; :meth:`find` answers ``label`` for it (default: the path itself)."""
        value = Path(path if label is None else label)
        self._names.setdefault(self._key(path), value)
        with contextlib.suppress(OSError):
            st = os.stat(path)
            self._inodes.setdefault((st.st_dev, st.st_ino), value)

    def find(self, path: str | Path) -> Path | None:
        """The label of the member that is the same file as ``path``, or None."""
        hit = self._names.get(self._key(path))
        if hit is None:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                hit = self._inodes.get((st.st_dev, st.st_ino))
        return hit


def check_input_path(path: str | Path, what: str = "input") -> Path:
    """``path`` if it can be read; otherwise an :class:`InputFileError` that says why (missing,
    a symlink loop, a dangling link, no permission)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputFileError(f"{p}: a symbolic link loop (the link points back to itself); fix the link") from None
        if exc.errno == errno.ENOENT and os.path.islink(p):
            raise InputFileError(f"{p}: a broken symbolic link (it points to {os.readlink(p)}, which does not "
                                 "exist)") from None
        if exc.errno == errno.ENOENT:
            raise InputFileError(f"{p}: no such file or folder") from None
        raise InputFileError(f"{p}: cannot read the {what} ({exc.strerror})") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise InputFileError(f"{p}: not a regular file (a pipe or a device); save the {what} to a file first")
    return p


def check_output_folder(folder: str | Path) -> Path:
    """Fail before any work when ``folder`` cannot hold output files: it names a file, lies under a
    file, or cannot be written. Creates nothing (a folder that does not exist yet is made when the
    first file is written)."""
    p = Path(folder)
    probe = p
    if os.path.islink(probe) and not os.path.exists(probe):
        raise ConfigurationError(f"output folder {p}: {probe} is a broken symbolic link (to {os.readlink(probe)}); "
                                 "fix the link or choose another --out")
    while True:
        try:
            st = os.stat(probe)
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                raise ConfigurationError(f"output folder {p}: no part of that path exists") from None
            probe = probe.parent
            continue
        except OSError as exc:
            raise ConfigurationError(f"output folder {p}: {exc.strerror}; choose another --out") from None
        break
    if not stat.S_ISDIR(st.st_mode):
        where = "is a file" if probe == p else f"lies under {probe}, which is a file"
        raise ConfigurationError(f"output folder {p} {where}; choose a folder for --out")
    try:  # a real write, since permission bits do not tell (root, read-only mounts, ACLs)
        with tempfile.NamedTemporaryFile(prefix=f".{TEMP_MARK}-{os.getpid()}-", dir=probe):
            pass
    except OSError as exc:
        raise ConfigurationError(f"output folder {p} cannot be written ({exc.strerror}); choose another "
                                 "--out") from None
    return p
