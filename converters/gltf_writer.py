"""Writing a :class:`~converters.motion.Motion` as glTF 2.0 (``.glb``, or ``.gltf`` with a ``.bin``).

glTF's own conventions are vp3d's world frame: Y up, metres, the subject facing +Z, right-handed,
so no axis conversion is needed. The file holds a skinless skeleton: one node per joint, named as
the rig names it, with the rest offsets as node translations and an identity rotation (the T-pose),
plus a skin listing every joint (with inverse bind matrices of that T-pose) so that importers make
bones of them (Blender builds an armature, three.js ``Bone`` objects). No mesh uses the skin; the
Khronos validator reports that as information, not an error.

One animation: the root's translation and every joint's rotation, sampled at ``k / fps`` seconds
(``LINEAR``; glTF interpolates rotations spherically). Quaternions are ``(x, y, z, w)`` in glTF,
normalised in float64 before being stored as float32. The file is written atomically.

The video's camera (optional, :class:`CameraPath`): a perspective camera on a top-level node named
``"{name} camera"``, keyed by the same animation. The path's rotations turn the picture's camera
axes (x right, y down, z forward) into the world's; a glTF camera looks down its node's -Z with +Y
up, so the node's rotation is ``R @ diag(1, -1, -1)`` (:data:`PICTURE_TO_VIEW`).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from converters.errors import ConversionError
from converters.fileio import atomic_write
from converters.motion import Motion, continuous_quaternions, matrices_to_quaternions

__all__ = ["PICTURE_TO_VIEW", "CameraPath", "camera_view_rotations", "check_camera", "motion_to_gltf",
           "motions_to_gltf", "write_gltf"]

_FLOAT = 5126
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
#: The picture's camera axes (x right, y down, z forward) to a viewer camera's (x right, y up, looking
#: down -z), as glTF, Blender and FBX (after their importers) place cameras.
PICTURE_TO_VIEW = np.diag([1.0, -1.0, -1.0])
CAMERA_ZNEAR, CAMERA_ZFAR = 0.05, 1000.0  # metres


class CameraPath(Protocol):
    """The video's camera per animation frame (``vp3d_engine.world_stage.WorldCamera`` and
    ``converters.motion_file.MotionCamera`` are ones): ``rotations (T,3,3)`` picture camera axes to
    the world's, ``positions (T,3)`` metres, ``focal_px`` in pixels of ``image_size (w, h)``."""

    @property
    def rotations(self) -> np.ndarray: ...
    @property
    def positions(self) -> np.ndarray: ...
    @property
    def focal_px(self) -> float: ...
    @property
    def image_size(self) -> tuple[int, int]: ...


def check_camera(camera: CameraPath, frames: int | None = None) -> None:
    """A :class:`ConversionError` unless ``camera`` holds ``frames`` (any number when None) finite
    rotations and positions, a positive focal length and a positive image size."""
    rotations, positions = np.asarray(camera.rotations), np.asarray(camera.positions)
    t = len(rotations) if frames is None else frames
    if rotations.shape != (t, 3, 3) or positions.shape != (t, 3) or t < 1:
        raise ConversionError(f"the camera must have ({t},3,3) rotations and ({t},3) positions, got "
                              f"{rotations.shape} and {positions.shape}")
    if not np.isfinite(rotations).all() or not np.isfinite(positions).all():
        raise ConversionError("the camera path contains NaN or infinite values")
    w, h = camera.image_size
    if not (float(camera.focal_px) > 0 and w > 0 and h > 0):
        raise ConversionError(f"the camera needs a positive focal length and image size, got {camera.focal_px} px "
                              f"and {w}x{h}")


def camera_view_rotations(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(T,4)`` ``w, x, y, z`` (sign-continuous) of a viewer camera object whose
    picture camera's axes are turned into the world's by ``rotations (T,3,3)``."""
    return continuous_quaternions(matrices_to_quaternions(np.asarray(rotations, np.float64) @ PICTURE_TO_VIEW))


def _rest_world(motion: Motion) -> np.ndarray:
    """World positions ``(J,3)`` of the T-pose, root at its median height above the origin."""
    rig = motion.rig
    pos = np.zeros((len(rig.names), 3))
    pos[0] = [0.0, float(np.median(motion.root_translation[:, 1])), 0.0]
    for k in range(1, len(rig.names)):
        pos[k] = pos[rig.parents[k]] + rig.rest_offsets[k]
    return pos


def motion_to_gltf(motion: Motion, name: str = "vp3d", camera: CameraPath | None = None
                   ) -> tuple[dict[str, Any], bytes]:
    """The glTF JSON document and its binary buffer (not yet given a URI)."""
    return motions_to_gltf([(name, motion)], name, grouped=False, camera=camera)


def motions_to_gltf(motions: list[tuple[str, Motion]], name: str = "vp3d", grouped: bool = True,
                    camera: CameraPath | None = None) -> tuple[dict[str, Any], bytes]:
    """One document holding several skeletons in one world (everyone in a clip), each with its own
    skin, animated together by one animation. ``grouped``: each skeleton hangs under a node of its
    own name (Blender names the armature after it); otherwise the roots are the scene's nodes.
    ``camera``: the video's camera, a node ``"{name} camera"`` keyed at the first motion's frame times."""
    if not motions:
        raise ConversionError("no motion to write")
    if camera is not None:
        check_camera(camera, motions[0][1].num_frames)
    blob = bytearray()
    views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []

    def add(data: np.ndarray, kind: str, bounds: bool = False) -> int:
        data = np.ascontiguousarray(data, dtype="<f4")
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": data.nbytes})
        blob.extend(data.tobytes())  # float32 data keeps every view 4-byte aligned
        acc: dict[str, Any] = {"bufferView": len(views) - 1, "componentType": _FLOAT, "count": int(data.shape[0]),
                               "type": kind}
        if bounds:
            flat = data.reshape(data.shape[0], -1)
            acc["min"] = [float(v) for v in flat.min(axis=0)]
            acc["max"] = [float(v) for v in flat.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    nodes: list[dict[str, Any]] = []
    skins: list[dict[str, Any]] = []
    top: list[int] = []
    samplers: list[dict[str, Any]] = []
    channels: list[dict[str, Any]] = []
    for label, motion in motions:
        rig = motion.rig
        if not np.isfinite(motion.rotations).all() or not np.isfinite(motion.root_translation).all():
            raise ConversionError("the motion contains NaN or infinite values; glTF cannot store them")
        j, t = len(rig.names), motion.num_frames
        rest = _rest_world(motion)
        times = add(np.arange(t, dtype=np.float64) / motion.fps, "SCALAR", bounds=True)
        # Translations relative to the parent in the rest pose: the root's is its own position.
        translation = add(motion.root_translation, "VEC3")
        rotations = []
        for k in range(j):
            q = motion.rotations[:, k]
            q = q / np.linalg.norm(q, axis=-1, keepdims=True)
            rotations.append(add(q[:, [1, 2, 3, 0]], "VEC4"))
        ibm = np.tile(np.eye(4), (j, 1, 1))
        ibm[:, :3, 3] = -rest
        # glTF matrices are column-major: store each transpose row by row.
        inverse_bind = add(np.transpose(ibm, (0, 2, 1)).reshape(j, 16), "MAT4")
        if grouped:
            nodes.append({"name": label, "children": [len(nodes) + 1]})
            top.append(len(nodes) - 1)
        first = len(nodes)
        if not grouped:
            top.append(first)
        for k in range(j):
            node: dict[str, Any] = {"name": rig.names[k], "rotation": [0.0, 0.0, 0.0, 1.0]}
            offset = rest[0] if k == 0 else rig.rest_offsets[k]
            node["translation"] = [float(v) for v in offset]
            children = rig.children(k)
            if children:
                node["children"] = [first + c for c in children]
            nodes.append(node)
        samplers.append({"input": times, "output": translation, "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": first, "path": "translation"}})
        for k, acc in enumerate(rotations):
            samplers.append({"input": times, "output": acc, "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": first + k, "path": "rotation"}})
        skins.append({"name": f"{label} {rig.preset} skeleton" if grouped else f"{rig.preset} skeleton",
                      "joints": list(range(first, first + j)), "skeleton": first, "inverseBindMatrices": inverse_bind})
    lead = motions[0][1]
    extras: dict[str, Any] = {"preset": lead.rig.preset, "fps": lead.fps, "frames": lead.num_frames}
    if grouped:
        extras["people"] = [label for label, _ in motions]
    cameras: list[dict[str, Any]] = []
    if camera is not None:
        w, h = camera.image_size
        cameras.append({"name": f"{name} camera", "type": "perspective", "perspective": {
            "aspectRatio": float(w) / float(h), "yfov": 2.0 * float(np.arctan(h / 2.0 / float(camera.focal_px))),
            "znear": CAMERA_ZNEAR, "zfar": CAMERA_ZFAR}})
        t = len(camera.rotations)
        quats = camera_view_rotations(camera.rotations)[:, [1, 2, 3, 0]]
        positions = np.asarray(camera.positions, np.float64)
        nodes.append({"name": f"{name} camera", "camera": 0, "rotation": [float(v) for v in quats[0]],
                      "translation": [float(v) for v in positions[0]]})
        top.append(len(nodes) - 1)
        times = add(np.arange(t, dtype=np.float64) / lead.fps, "SCALAR", bounds=True)
        for path, values in (("translation", add(positions, "VEC3")), ("rotation", add(quats, "VEC4"))):
            samplers.append({"input": times, "output": values, "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": len(nodes) - 1, "path": path}})
        extras["camera"] = {"focal_px": float(camera.focal_px), "image_size": [int(w), int(h)]}
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "vp3d"},
        "scene": 0,
        # The scene's name must differ from every joint's: three.js renames clashing nodes.
        "scenes": [{"name": f"{name} scene", "nodes": top}],
        "nodes": nodes,
        "skins": skins,
        **({"cameras": cameras} if cameras else {}),
        "animations": [{"name": name, "channels": channels, "samplers": samplers}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
        "extras": {"vp3d": extras},
    }
    return doc, bytes(blob)


def _glb(doc: dict[str, Any], blob: bytes) -> bytes:
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)  # the JSON chunk is padded with spaces, the binary one with zeros
    data = blob + b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(data)
    return (struct.pack("<III", _GLB_MAGIC, 2, total) + struct.pack("<II", len(text), _JSON_CHUNK) + text
            + struct.pack("<II", len(data), _BIN_CHUNK) + data)


def write_gltf(motion: Motion | list[tuple[str, Motion]], path: str | Path, name: str | None = None,
               camera: CameraPath | None = None) -> Path:
    """Write ``motion`` to ``path``: binary glTF for ``.glb``; for ``.gltf`` a JSON file and a
    ``.bin`` beside it with the same stem. A list of ``(name, motion)``: everyone in one world, each
    skeleton under a node of its name. ``camera``: the video's camera (:class:`CameraPath`), on a
    node ``"{name} camera"``. Returns ``path``."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise ConversionError(f"{target}: a glTF file name must end in .glb or .gltf")
    doc, blob = (motions_to_gltf(motion, name or target.stem, camera=camera) if isinstance(motion, list)
                 else motion_to_gltf(motion, name or target.stem, camera=camera))
    if suffix == ".glb":
        data = _glb(doc, blob)
        return atomic_write(target, lambda f: f.write(data))
    bin_path = target.with_suffix(".bin")
    doc["buffers"][0]["uri"] = bin_path.name
    atomic_write(bin_path, lambda f: f.write(blob))
    text = json.dumps(doc, indent=1)
    return atomic_write(target, lambda f: f.write(text), binary=False)
