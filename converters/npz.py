"""Reading numpy files from users without trusting what they claim.

:func:`open_npz`: every ``.npz`` vp3d reads from a user goes through it: every member's header is
checked (a ``NAME.npy`` array, bounded, no larger than what it stores) before anything is
allocated, arrays are read by exact member name, a ``meta`` JSON text is bounded in size and depth
(:func:`parse_json`). :func:`check_npy_file` does the same for a ``.npy``. numpy and the standard
library only: the Blender add-on bundles this module.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from converters.errors import InputFileError
from converters.fileio import check_input_path

__all__ = ["MAX_ARRAY_BYTES", "MAX_JSON_DEPTH", "MAX_META_CHARS", "MAX_NPZ_BYTES", "NpzArrays", "check_array_header",
           "check_npy_file", "open_npz", "parse_json", "read_npy_header"]


#: The largest array vp3d reads from a ``.npy`` or ``.npz`` (a 10-minute result is a few megabytes),
#: and the most all the arrays of one ``.npz`` may claim together.
MAX_ARRAY_BYTES = 1 << 30
MAX_NPZ_BYTES = 1 << 30
#: A ``meta`` member: JSON text of at most this many characters, nested at most this deep.
MAX_META_CHARS = 1 << 20
MAX_JSON_DEPTH = 32
# A string (to the end of the text if unclosed, so the scan stays linear) or a bracket.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def parse_json(text: str, where: str, max_chars: int = MAX_META_CHARS, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``text`` parsed as JSON, or an :class:`InputFileError` when it is not JSON, longer than
    ``max_chars`` or nested deeper than ``max_depth`` (checked before parsing: Python's parser
    recurses once per level)."""
    if len(text) > max_chars:
        raise InputFileError(f"{where}: {len(text):,} characters of JSON, more than the {max_chars:,} vp3d reads; the "
                             "file is damaged or was not written by vp3d")
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(token.group(), 0)
        if depth > max_depth:
            raise InputFileError(f"{where}: JSON nested more than {max_depth} levels deep; the file is damaged or "
                                 "was not written by vp3d")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputFileError(f"{where}: not valid JSON ({str(exc)[:80]})") from None


def read_npy_header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an ``.npy`` stream's header declares (the stream is left after it)."""
    version = npy_format.read_magic(f)
    read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise InputFileError(f"{where}: .npy version {version}; re-save it with numpy")
    shape, _, dtype = read_header(f)
    return tuple(int(n) for n in shape), dtype


def check_array_header(where: str, shape: tuple[int, ...], dtype: np.dtype, stored: int,
                       max_bytes: int = MAX_ARRAY_BYTES) -> int:
    """The bytes an array header claims, refused (before numpy allocates them) when more than
    ``stored`` (what the file holds for it) or ``max_bytes``."""
    if any(n < 0 for n in shape):
        raise InputFileError(f"{where} claims shape {shape}; the file is damaged or hostile")
    claimed = math.prod(shape) * max(dtype.itemsize, 1)  # empty items still cost their count when used
    if claimed > max_bytes:
        raise InputFileError(f"{where} claims shape {shape} ({claimed:,} bytes), more than the {max_bytes:,} vp3d "
                             "reads in one array; the file is damaged, hostile or far larger than any take")
    if claimed > stored:
        raise InputFileError(f"{where} claims shape {shape} ({claimed:,} bytes) but the file holds {stored:,}; the "
                             "file is damaged or hostile")
    return claimed


class NpzArrays:
    """An ``.npz`` whose every member was checked on opening (:func:`open_npz`); arrays are read by
    their exact member name ``NAME.npy``, never by numpy's guess (``np.load(...)["x"]`` reads a
    member named ``x`` before ``x.npy``)."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.path = path
        self._zf = zf
        self.headers = headers
        self._json: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self.headers)

    def __contains__(self, name: object) -> bool:
        return name in self.headers

    def shape(self, name: str) -> tuple[int, ...]:
        return self.headers[name][0]

    def missing(self, *names: str) -> list[str]:
        return [n for n in names if n not in self.headers]

    def open(self, name: str) -> IO[bytes]:
        """The raw stream of member ``NAME.npy`` (for object arrays, parsed by a restricted unpickler)."""
        if name not in self.headers:
            raise InputFileError(f"{self.path}: no array {name} (it holds {', '.join(self.names) or 'nothing'})")
        return self._zf.open(f"{name}.npy")

    def read(self, name: str) -> np.ndarray:
        """Array ``name`` (never unpickled)."""
        with self.open(name) as f:
            try:
                return np.asarray(npy_format.read_array(f, allow_pickle=False))
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise InputFileError(f"{self.path}: array {name} cannot be read ({exc}); check the file was fully "
                                     "written") from None

    def json(self, name: str = "meta") -> Any:
        """Member ``name``: a 0-d string array holding JSON (bounded in size and nesting)."""
        if name not in self._json:
            shape, dtype = self.headers.get(name, ((), np.dtype(object)))
            if name not in self.headers or shape != () or dtype.kind not in "US":
                raise InputFileError(f"{self.path}: {name} is not a JSON text (a 0-d string array)")
            self._json[name] = parse_json(str(self.read(name)), f"{self.path}: {name}")
        return self._json[name]

    def close(self) -> None:
        self._zf.close()

    def __enter__(self) -> NpzArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_npz(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES, max_total: int = MAX_NPZ_BYTES,
             objects: bool = False) -> NpzArrays:
    """Open an ``.npz`` from a user after reading every member's header: each member must be an
    ``.npy`` array (``NAME.npy``, each name once) that claims no more than it stores and than
    ``max_bytes``, all of them together no more than ``max_total``; no object arrays unless
    ``objects`` (then they are for a restricted unpickler to parse, bounded by their stored size);
    a ``meta`` text must be bounded JSON. Nothing is allocated from a header before it is checked.
    Every problem is an :class:`InputFileError` naming the file."""
    p = check_input_path(path)
    zf = None
    try:
        zf = zipfile.ZipFile(p)
        headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        total = 0
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if not name or name in headers:
                what = "a second member" if name else "a member"
                raise InputFileError(f"{p}: {what} named {info.filename!r}; an .npz holds one NAME.npy per array "
                                     "(as numpy.savez writes it): the file is damaged or hostile")
            where = f"{p}: array {name}"
            if info.file_size > max_bytes:
                raise InputFileError(f"{where} stores {info.file_size:,} bytes, more than the {max_bytes:,} vp3d reads "
                                     "in one array; the file is damaged, hostile or far larger than any take")
            with zf.open(info) as f:
                shape, dtype = read_npy_header(f, where)
            if dtype.hasobject and not objects:
                raise InputFileError(f"{where} holds Python objects; vp3d reads numbers and text only here")
            total += info.file_size if dtype.hasobject else check_array_header(where, shape, dtype, info.file_size,
                                                                               max_bytes)
            if total > max_total:
                raise InputFileError(f"{p}: its arrays claim more than the {max_total:,} bytes vp3d reads from one "
                                     "file; the file is damaged, hostile or far larger than any take")
            headers[name] = (shape, dtype)
        arrays = NpzArrays(p, zf, headers)
        meta = headers.get("meta")
        if meta is not None and meta[1].kind in "US":  # vp3d's files: checked here, for every reader
            if meta[0] != () or meta[1].itemsize > 4 * MAX_META_CHARS:
                raise InputFileError(f"{p}: meta is not one JSON text of at most {MAX_META_CHARS:,} characters")
            arrays.json("meta")
        return arrays
    except BaseException as exc:
        if zf is not None:
            zf.close()
        if isinstance(exc, OSError | ValueError | EOFError | zipfile.BadZipFile | zlib.error):
            raise InputFileError(f"{p}: not a readable .npz file ({exc}); check it was fully written") from None
        raise


def check_npy_file(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` file declares, refused as :func:`open_npz` refuses a member."""
    p = check_input_path(path)
    try:
        with open(p, "rb") as f:
            shape, dtype = read_npy_header(f, str(p))
            stored = os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"{p}: not a readable .npy file ({exc}); check it was fully written") from None
    if dtype.hasobject:
        raise InputFileError(f"{p}: holds Python objects; vp3d reads numbers only (re-save the array as numbers)")
    check_array_header(str(p), shape, dtype, stored, max_bytes)
    return shape, dtype
