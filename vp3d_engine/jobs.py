"""What ``vp3d-convert`` plans and reports for each input: the job (input, kind, the files it
will write), the line printed for a converted input, the line for one that failed. Shared by the
local run (``vp3d_engine.convert_cli``) and the cluster run (``vp3d_engine.cluster``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from converters.errors import Vp3dError
from converters.fileio import printable
from vp3d_engine.convert import Conversion
from vp3d_engine.sources import SourceKind

__all__ = ["Job", "conversion_line", "report_failure"]


@dataclass
class Job:
    """One input, what it is, and the files it will write (``out_dir / name.FORMAT``)."""

    source: Path  # the video, or the 2D or 3D file
    out_dir: Path
    name: str
    formats: list[str]
    kind: SourceKind = "video"
    keypoints: Path | None = None  # the 2D file of a "keypoints" job
    error: Vp3dError | None = None  # found while planning: reported on this job's turn
    everyone: bool = False  # --person all: each person's files (NAME.p0.bvh ...), one GLB and FBX for all

    @property
    def stem(self) -> Path:
        return self.out_dir / self.name

    @property
    def targets(self) -> list[Path]:
        """Every file the job may write: with ``everyone``, each person's that may be found."""
        from vp3d_engine.outputs import SUFFIXES, TOGETHER
        from vp3d_engine.tracking import MAX_PEOPLE

        if not self.everyone:
            return [self.out_dir / f"{self.name}{SUFFIXES[f]}" for f in self.formats]
        return [self.out_dir / f"{self.name}{SUFFIXES[f]}" for f in self.formats if f in TOGETHER] + [
            self.out_dir / f"{self.name}.p{n}{SUFFIXES[f]}" for n in range(MAX_PEOPLE) for f in self.formats
            if f not in TOGETHER]


def conversion_line(source: str, conv: Conversion, files: Sequence[str | Path]) -> str:
    """The line printed for a converted input: what was found and the files written (names with
    control characters shown escaped: a name cannot send terminal escapes or fake lines)."""
    source = printable(source)
    written = ", ".join(printable(f) for f in files)
    result = conv.result
    if result is None:
        return f"{source}: -> {written}{_assumed(conv.pose.meta)}"
    damage = ""
    if result.decode is not None and result.decode.damaged:
        damage = (f" (video damaged: {result.decode.damaged_packets} packets could not be decoded; "
                  "the frames after them are missing)")
    if conv.camera_note:
        damage += f", {conv.camera_note}"
    swaps = conv.pose.meta.get("label_swaps_fixed")
    relabelled = f", left/right labels put right in {swaps} frames" if swaps else ""
    kp = result.keypoints
    if len(conv.people) > 1:  # person all: each person's share of the frames
        seen = ", ".join(f"p{p.keypoints.meta.get('person', n)} in {p.track.frames_present:.0%}"
                         for n, p in enumerate(conv.people))
        return f"{source}: {kp.num_frames} frames, {len(conv.people)} people ({seen}){damage} -> {written}"
    unseen = float(1 - kp.valid.mean()) - result.track.joints_filled  # placed by the detector, scored low
    hidden = f", {unseen:.1%} hidden (the detector's estimate kept)" if kp.meta.get("hidden_joints_placed") else ""
    return (f"{source}: {kp.num_frames} frames, person in {result.track.frames_present:.0%}, "
            f"{result.track.joints_filled:.1%} of joints filled{hidden}{relabelled}{damage} -> {written}"
            f"{_assumed(conv.pose.meta)}")


def _assumed(meta: dict[str, object]) -> str:
    from vp3d_engine.arrays import DEFAULT_FPS

    return f" ({DEFAULT_FPS:g} fps assumed: the file does not say; give --fps)" if meta.get("fps_assumed") else ""


def report_failure(source: Path | str, exc: BaseException) -> None:
    """One line on stderr for an input that failed: its own error (which says what to do), or the
    machine's (a full disk, a vanished folder); control characters (in a file name, or anything
    the error quotes from a file) are shown escaped, so it stays one line."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        line = f"{source}: {exc.strerror or exc}{where}; nothing of it was written"
    else:
        line = str(exc) if str(source) in str(exc) else f"{source}: {exc}"
    print(f"vp3d-convert: error: {printable(line)}", file=sys.stderr)
