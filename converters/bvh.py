"""BVH reading and forward kinematics, in plain numpy.

Conventions (stated once):

- A joint's local transform is ``T(t) @ R``: ``t`` is its OFFSET, except that position channels,
  when the joint has them, replace the matching OFFSET components (the usual reading, and the
  one Blender and MotionBuilder use); ``R`` is the product of its rotation channels in the order
  they are listed (``Zrotation Xrotation Yrotation`` gives ``Rz @ Rx @ Ry``), angles in degrees.
- Rotation matrices act on column vectors. World positions come out in the file's own units
  times ``scale``; :func:`infer_unit_scale` guesses the factor to metres.
- End sites are kept apart from joints (they have no channels) and can be returned by
  :func:`forward_kinematics`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from converters.errors import InputFileError
from converters.types import MAX_FPS, MIN_FPS

__all__ = ["UNIT_SCALES", "Bvh", "forward_kinematics", "infer_unit_scale", "read_bvh"]

_POSITION = ("Xposition", "Yposition", "Zposition")
_ROTATION = ("Xrotation", "Yrotation", "Zrotation")
_VALID_CHANNELS = frozenset(_POSITION + _ROTATION)
MAX_FRAMES = 10_000_000  # more than a day at 120 fps

#: Known BVH length units, as metres per file unit. ``cmu`` is the cgspeed conversion of the CMU
#: database (1 unit = 1/0.45 inch).
UNIT_SCALES: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "inch": 0.0254,
    "cmu": 0.0254 / 0.45,
}


@dataclass(frozen=True)
class Bvh:
    """A parsed BVH file.

    Shapes: ``offsets (J,3)``, ``motion (F,C)`` with ``C`` the total channel count,
    ``end_site_offsets (E,3)``. ``parents[j] < j`` always holds (root first, depth-first order).
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    end_site_parents: np.ndarray
    end_site_offsets: np.ndarray
    frame_time: float
    motion: np.ndarray
    path: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def channel_starts(self) -> np.ndarray:
        """Column in ``motion`` where each joint's channels begin."""
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]])

    def index(self, name: str) -> int:
        return self.names.index(name)


class _Tokens:
    """Whitespace tokens of the hierarchy with line numbers, for error messages."""

    def __init__(self, text: str, path: str) -> None:
        self.items: list[tuple[str, int]] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            self.items.extend((tok, lineno) for tok in line.split())
        self.pos = 0
        self.path = path

    def error(self, message: str) -> InputFileError:
        line = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 1
        return InputFileError(f"{self.path}: line {line}: {message}; is this a valid BVH file?")

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            raise self.error(f"file ends early while reading {what} (truncated?)")
        tok = self.items[self.pos][0]
        self.pos += 1
        return tok

    def expect(self, word: str) -> None:
        tok = self.next(repr(word))
        if tok.upper() != word.upper():
            self.pos -= 1
            raise self.error(f"expected {word!r} but found {tok!r}")

    def number(self, what: str) -> float:
        tok = self.next(what)
        try:
            value = float(tok)
        except ValueError:
            self.pos -= 1
            raise self.error(f"expected a number for {what} but found {tok!r}") from None
        if not math.isfinite(value):
            self.pos -= 1
            raise self.error(f"{what} is not finite ({tok})")
        return value


def read_bvh(path: str | Path) -> Bvh:
    """Read a BVH file. Raises :class:`InputFileError` with the line and a hint when malformed."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{p}: no such BVH file") from None
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read BVH file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # Windows and old Mac line endings
    if "\x00" in text:
        raise InputFileError(f"{p}: contains binary data; is this a valid BVH file?")
    match = re.search(r"^[ \t]*MOTION[ \t]*$", text, flags=re.MULTILINE | re.IGNORECASE)
    if match is None:
        if not text.lstrip().upper().startswith("HIERARCHY"):
            raise InputFileError(f"{p}: does not start with HIERARCHY; is this a BVH file?")
        raise InputFileError(f"{p}: no MOTION section (the file is truncated or corrupt)")
    head, body = text[: match.start()], text[match.end():]
    names, parents, offsets, channels, es_parents, es_offsets = _parse_hierarchy(head, str(p))
    frame_time, motion = _parse_motion(body, sum(len(c) for c in channels), str(p), head.count("\n") + 1)
    return Bvh(
        names=tuple(names),
        parents=np.asarray(parents, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64).reshape(-1, 3),
        channels=tuple(channels),
        end_site_parents=np.asarray(es_parents, dtype=np.int64),
        end_site_offsets=np.asarray(es_offsets, dtype=np.float64).reshape(-1, 3),
        frame_time=frame_time,
        motion=motion,
        path=str(p),
    )


def _parse_hierarchy(
    text: str, path: str
) -> tuple[list[str], list[int], list[list[float]], list[tuple[str, ...]], list[int], list[list[float]]]:
    toks = _Tokens(text, path)
    toks.expect("HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    es_parents: list[int] = []
    es_offsets: list[list[float]] = []

    def offset(what: str) -> list[float]:
        toks.expect("OFFSET")
        return [toks.number(f"{what} OFFSET") for _ in range(3)]

    def joint(parent: int) -> None:
        name = toks.next("a joint name")
        if name == "{":
            raise toks.error("joint without a name")
        if name in names:
            raise toks.error(f"joint name {name!r} appears twice")
        toks.expect("{")
        index = len(names)
        names.append(name)
        parents.append(parent)
        offsets.append(offset(name))
        toks.expect("CHANNELS")
        count_tok = toks.next("channel count")
        if not (count_tok.isascii() and count_tok.isdigit()):
            raise toks.error(f"channel count of {name!r} is not an integer ({count_tok!r})")
        chans = tuple(toks.next("channel name") for _ in range(int(count_tok)))
        bad = [c for c in chans if c not in _VALID_CHANNELS]
        if bad or len(set(chans)) != len(chans):
            raise toks.error(f"joint {name!r} has invalid or repeated channels {list(chans)}")
        channels.append(chans)
        while True:
            word = toks.next(f"the children of {name!r}")
            if word == "}":
                return
            if word.upper() == "JOINT":
                joint(index)
            elif word.upper() == "END":
                toks.expect("Site")
                toks.expect("{")
                es_parents.append(index)
                es_offsets.append(offset(f"{name} End Site"))
                toks.expect("}")
            else:
                toks.pos -= 1
                raise toks.error(f"unexpected {word!r} inside joint {name!r}")

    toks.expect("ROOT")
    try:
        joint(-1)
    except RecursionError:
        raise toks.error("the joint hierarchy is nested too deeply") from None
    if toks.pos < len(toks.items):
        word = toks.items[toks.pos][0]
        raise toks.error(f"unexpected {word!r} after the hierarchy (several roots are not supported)")
    return names, parents, offsets, channels, es_parents, es_offsets


def _parse_motion(body: str, num_channels: int, path: str, first_line: int) -> tuple[float, np.ndarray]:
    frames_m = re.search(r"Frames\s*:\s*(\S+)", body, flags=re.IGNORECASE)
    time_m = re.search(r"Frame\s+Time\s*:\s*(\S+)", body, flags=re.IGNORECASE)
    if frames_m is None or time_m is None:
        raise InputFileError(f"{path}: MOTION section lacks 'Frames:' or 'Frame Time:' (truncated?)")
    try:
        num_frames = int(frames_m.group(1))
        frame_time = float(time_m.group(1))
    except ValueError:
        raise InputFileError(
            f"{path}: cannot read the frame count {frames_m.group(1)!r} or frame time {time_m.group(1)!r}"
        ) from None
    if num_frames < 0 or not (math.isfinite(frame_time) and frame_time > 0):
        raise InputFileError(f"{path}: invalid frame count ({num_frames}) or frame time ({frame_time})")
    if num_frames > MAX_FRAMES:
        raise InputFileError(f"{path}: {num_frames} frames is more than vp3d reads ({MAX_FRAMES:,}); split the take")
    if num_channels == 0 and num_frames > 0:
        raise InputFileError(f"{path}: no joint has channels, so the {num_frames} frames hold no motion")
    if not MIN_FPS <= 1.0 / frame_time <= MAX_FPS:
        raise InputFileError(f"{path}: Frame Time {time_m.group(1)} s is {1.0 / frame_time:.3g} frames per second, "
                             f"outside {MIN_FPS:g} to {MAX_FPS:g}; the file's frame time is wrong")
    data = body[time_m.end():]
    try:
        values = np.array(data.split(), dtype=np.float64)
    except ValueError:
        bad_line = next(
            (i for i, line in enumerate(data.splitlines()) if not _all_numbers(line)), 0
        )
        line_no = first_line + body[: time_m.end()].count("\n") + bad_line
        raise InputFileError(f"{path}: line {line_no}: motion data contains a non-number (corrupt file?)") from None
    expected = num_frames * num_channels
    if values.size != expected:
        full, rest = divmod(values.size, max(num_channels, 1))
        hint = "truncated" if values.size < expected else "has extra values"
        raise InputFileError(
            f"{path}: header says {num_frames} frames x {num_channels} channels but the data holds "
            f"{full} full frames" + (f" and {rest} stray values" if rest else "") + f"; the file is {hint}"
        )
    if not np.all(np.isfinite(values)):
        raise InputFileError(f"{path}: motion data contains NaN or infinite values")
    return frame_time, values.reshape(num_frames, num_channels)


def _all_numbers(line: str) -> bool:
    try:
        [float(v) for v in line.split()]
    except ValueError:
        return False
    return True


def _channel_rotations(chans: tuple[str, ...], values: np.ndarray) -> np.ndarray | None:
    """Rotation matrices (F,3,3) from one joint's rotation channels, or None if it has none."""
    rot = [(c[0], i) for i, c in enumerate(chans) if c in _ROTATION]
    if not rot:
        return None
    axes = "".join(a for a, _ in rot)
    angles = values[:, [i for _, i in rot]]
    # Uppercase axes are intrinsic in scipy: "ZXY" is Rz @ Rx @ Ry, the BVH reading.
    return Rotation.from_euler(axes.upper(), angles, degrees=True).as_matrix()


def forward_kinematics(
    bvh: Bvh, scale: float = 1.0, with_end_sites: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``(F,J,3)`` (or ``(F,J+E,3)`` with end sites appended) and world rotation
    matrices ``(F,J,3,3)`` of every joint, in file units times ``scale``."""
    num_frames = bvh.num_frames
    num_joints = len(bvh.names)
    pos = np.zeros((num_frames, num_joints, 3))
    rot = np.zeros((num_frames, num_joints, 3, 3))
    starts = bvh.channel_starts
    for j in range(num_joints):
        chans = bvh.channels[j]
        values = bvh.motion[:, starts[j]: starts[j] + len(chans)]
        local_t = np.broadcast_to(bvh.offsets[j], (num_frames, 3)).copy()
        for i, c in enumerate(chans):
            if c in _POSITION:
                local_t[:, _POSITION.index(c)] = values[:, i]
        local_r = _channel_rotations(chans, values)
        parent = bvh.parents[j]
        if parent < 0:
            pos[:, j] = local_t
            rot[:, j] = np.eye(3) if local_r is None else local_r
        else:
            pos[:, j] = pos[:, parent] + np.einsum("fab,fb->fa", rot[:, parent], local_t)
            rot[:, j] = rot[:, parent] if local_r is None else rot[:, parent] @ local_r
    if with_end_sites and bvh.end_site_parents.size:
        ends = pos[:, bvh.end_site_parents] + np.einsum(
            "feab,eb->fea", rot[:, bvh.end_site_parents], bvh.end_site_offsets
        )
        pos = np.concatenate([pos, ends], axis=1)
    return pos * scale, rot


def infer_unit_scale(bvh: Bvh, expected_chain_m: float = 1.0) -> tuple[str, float]:
    """Guess the file's length unit from its skeleton and return ``(unit, metres per unit)``.

    Uses the longest root-to-leaf chain of bone lengths (pose independent; about 1 m for an adult,
    leg plus foot or spine plus arm) and picks
    the entry of :data:`UNIT_SCALES` that brings it closest to ``expected_chain_m`` (log scale).
    """
    bone = _bone_lengths(bvh)
    chain = np.zeros(len(bvh.names))
    for j, parent in enumerate(bvh.parents):
        chain[j] = bone[j] + (chain[parent] if parent >= 0 else 0.0)
    if bvh.end_site_parents.size:
        ends = chain[bvh.end_site_parents] + np.linalg.norm(bvh.end_site_offsets, axis=1)
        longest = float(max(chain.max(), ends.max()))
    else:
        longest = float(chain.max())
    if longest <= 0:
        raise InputFileError(f"{bvh.path}: skeleton has no bone lengths; cannot infer its units")
    unit = min(UNIT_SCALES, key=lambda u: abs(math.log(longest * UNIT_SCALES[u] / expected_chain_m)))
    return unit, UNIT_SCALES[unit]


def _bone_lengths(bvh: Bvh) -> np.ndarray:
    """Length of each joint's local translation. Where position channels override the OFFSET the
    median translation is used if it stays constant over the take (a bone); a translation that
    moves (root motion) counts as zero."""
    bone = np.linalg.norm(bvh.offsets, axis=1)
    starts = bvh.channel_starts
    for j, chans in enumerate(bvh.channels):
        cols = [i for i, c in enumerate(chans) if c in _POSITION]
        if not cols:
            continue
        t = np.broadcast_to(bvh.offsets[j], (bvh.num_frames, 3)).copy()
        for i in cols:
            t[:, _POSITION.index(chans[i])] = bvh.motion[:, starts[j] + i]
        if bvh.parents[j] < 0 or t.shape[0] == 0:
            bone[j] = 0.0
            continue
        median = np.median(t, axis=0)
        length = float(np.linalg.norm(median))
        spread = float(np.abs(t - median).max())
        bone[j] = length if spread <= 0.01 * length + 1e-9 else 0.0
    return bone
