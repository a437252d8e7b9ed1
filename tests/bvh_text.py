"""Hand-written BVH text for tests: a small renderer shared by the BVH and skeleton-map tests."""

from __future__ import annotations

import numpy as np

#: (name, parent name or None, OFFSET, channel names separated by spaces, End Site offset or None),
#: listed in depth-first order.
JointSpec = tuple[str, "str | None", tuple[float, float, float], str, "tuple[float, float, float] | None"]

ROOT6 = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
ROT3 = "Zrotation Xrotation Yrotation"


def _num(v: float) -> str:
    return repr(float(v))


def render_bvh(
    joints: list[JointSpec],
    rows: list[list[float]] | np.ndarray,
    frame_time: float = 0.04,
    newline: str = "\n",
    indent: str = "  ",
) -> str:
    """BVH text for ``joints`` and motion ``rows`` (one list of channel values per frame)."""
    children: dict[str | None, list[JointSpec]] = {}
    for j in joints:
        children.setdefault(j[1], []).append(j)
    out = ["HIERARCHY"]

    def emit(j: JointSpec, depth: int) -> None:
        name, parent, offset, chans, end = j
        pad = indent * depth
        out.append(f"{pad}{'ROOT' if parent is None else 'JOINT'} {name}")
        out.append(pad + "{")
        out.append(f"{pad}{indent}OFFSET {' '.join(_num(v) for v in offset)}")
        out.append(f"{pad}{indent}CHANNELS {len(chans.split())} {chans}".rstrip())
        for child in children.get(name, []):
            emit(child, depth + 1)
        if end is not None:
            out.extend([f"{pad}{indent}End Site", f"{pad}{indent}{{"])
            out.append(f"{pad}{indent * 2}OFFSET {' '.join(_num(v) for v in end)}")
            out.append(f"{pad}{indent}}}")
        out.append(pad + "}")

    (root,) = children[None]
    emit(root, 0)
    out.extend(["MOTION", f"Frames: {len(rows)}", f"Frame Time: {_num(frame_time)}"])
    out.extend(" ".join(_num(v) for v in row) for row in rows)
    return newline.join(out) + newline
