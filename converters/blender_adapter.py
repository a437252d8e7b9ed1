"""FBX export and armature read-back through Blender's ``bpy`` module (extra ``blender``).

This is the only module in ``converters`` that touches ``bpy``, and it imports it lazily, inside
functions, so ``converters`` stays importable (and fast) without Blender.

Conventions: vp3d's world is Y up, metres, the subject facing +Z (left on +X). Blender's is Z up
with characters facing -Y (left still on +X). Blender's importers, at their default axes
(``axis_forward='-Z'``, ``axis_up='Y'``), map vp3d's ``(x, y, z)`` to Blender's ``(x, -z, y)``;
:data:`BLENDER_TO_VP3D` is the inverse, applied once at this edge. The video's camera becomes a
Blender camera object (looking down its local -Z, +Y up, as glTF's), keyed on every frame, which the
FBX exporter turns into an FBX camera (its own axis fix included) and Blender's importer back.

``bpy`` is one global Blender session bound to the thread that imports it: used from any other
thread it crashes the process (a segfault, not an exception), so these functions run on the main
thread only and refuse elsewhere (a service should run the export in a subprocess). Every call
replaces the whole session with the empty factory scene (``read_factory_settings(use_empty=True)``),
so they also refuse to run inside an interactive Blender, whose open scene they would discard.
``BLENDER_USER_RESOURCES`` is pointed at a temporary folder before ``bpy`` is first imported
(unless already set) so that Blender reads and writes nothing under the user's ``~/.config``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import io
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, NamedTuple

import numpy as np

from converters.bvh import infer_unit_scale, read_bvh
from converters.bvh_writer import write_bvh
from converters.errors import BackendUnavailableError, ConfigurationError, ConversionError, InputFileError
from converters.fileio import TEMP_MARK, temp_dir, temp_path
from converters.gltf_writer import CAMERA_ZFAR, CAMERA_ZNEAR, CameraPath, camera_view_rotations, check_camera
from converters.interrupts import interrupts_deferred
from converters.motion import Motion

__all__ = ["BLENDER_TO_VP3D", "ArmatureAnimation", "read_all_armature_positions", "read_armature_positions",
           "require_bpy", "write_fbx"]

log = logging.getLogger(__name__)

#: Blender world ``(x, y, z)`` (Z up, facing -Y) to vp3d world (Y up, facing +Z): ``(x, z, -y)``.
BLENDER_TO_VP3D = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_INSTALL_HINT = 'pip install "vp3d[blender]" (or bpy==5.0.1)'
_MAX_BONE_NAME_BYTES = 63  # Blender truncates longer names (MAX_NAME - 1)
# FBX units -> (Blender units per metre while exporting, apply_scale_options). "cm" writes bone
# translations in centimetres with UnitScaleFactor 1 and no scale on the armature node, as Maya,
# Unreal and Mixamo files do; "m" writes metres with UnitScaleFactor 100.
_FBX_UNITS: dict[str, tuple[float, str]] = {"cm": (100.0, "FBX_SCALE_NONE"), "m": (1.0, "FBX_SCALE_UNITS")}
_READABLE = (".bvh", ".fbx", ".gltf", ".glb")
SENSOR_WIDTH_MM = 36.0  # the camera's sensor (Blender's default, a full-frame film back); lens follows from it

class ArmatureAnimation(NamedTuple):
    """An armature's animation as read back by Blender's own importer.

    ``positions (T,J,3)``: world head of every pose bone (``bone_names``, Blender's bone order)
    on every frame, metres, in vp3d's frame (Y up, facing +Z) unless read with
    ``space="blender"``. ``frame_range``: first and last frame numbers, inclusive, as the file
    places them (a BVH starts at 1, as Blender imports it; FBX and glTF frames are their times
    times ``fps``). ``fps``: the file's frame rate (glTF stores none: inferred from key spacing).
    """

    bone_names: list[str]
    positions: np.ndarray
    fps: float
    frame_range: tuple[int, int]


def require_bpy(purpose: str = "FBX export") -> ModuleType:
    """Blender's ``bpy`` module, or :class:`BackendUnavailableError` naming the extra to install.
    Imports it only on the main thread (see the module notes); elsewhere a :class:`ConversionError`."""
    missing = f"{purpose} needs Blender's bpy module: {_INSTALL_HINT}."
    if "bpy" not in sys.modules and importlib.util.find_spec("bpy") is None:
        raise BackendUnavailableError(missing)
    if threading.current_thread() is not threading.main_thread():
        raise ConversionError(f"{purpose} must run on the main thread: Blender's bpy module crashes the process "
                              "when used from any other (run it in a subprocess)")
    private = None
    if "bpy" not in sys.modules and "BLENDER_USER_RESOURCES" not in os.environ:
        private = os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix=f"{TEMP_MARK}-{os.getpid()}-blender-")
    try:
        with interrupts_deferred():  # an exception inside Blender's start-up crashes the process
            import bpy
    except ImportError as err:
        if private:
            del os.environ["BLENDER_USER_RESOURCES"]
            shutil.rmtree(private, ignore_errors=True)
        raise BackendUnavailableError(f"{missing} ({err})") from err
    if private:
        atexit.register(shutil.rmtree, private, ignore_errors=True)
    return bpy


@contextlib.contextmanager
def _blender_session(purpose: str) -> Iterator[Any]:
    """``bpy`` on a fresh empty factory scene (main thread only, so one caller at a time)."""
    bpy = require_bpy(purpose)
    if not bpy.app.background:
        raise ConversionError("vp3d's Blender adapter would discard the open Blender scene; in Blender, "
                              "use Blender's own FBX exporter (File > Export > FBX)")
    _call(bpy.ops.wm.read_factory_settings, use_empty=True)
    # The scene is left as it is on exit: emptying it would free the Blender data that the frames
    # of a traceback still point to, and printing those (pytest does) would crash the process.
    yield bpy


def _call(operator: Any, error: type[Exception] = ConversionError, **options: Any) -> None:
    """Run a Blender operator (``bpy.ops.x.y``); its console chatter goes to the debug log, its
    failure to ``error``."""
    name = operator.idname_py()
    out = io.StringIO()
    try:
        # Blender's BVH importer never closes its file; its ResourceWarning is Blender's to fix.
        with contextlib.redirect_stdout(out), warnings.catch_warnings(), interrupts_deferred():
            warnings.simplefilter("ignore", ResourceWarning)
            result = operator(**options)
    except RuntimeError as err:  # operators report errors as RuntimeError("Error: ...")
        raise error(f"Blender's {name} failed: {err}") from err
    finally:
        if out.getvalue().strip():
            log.debug("%s: %s", name, out.getvalue().strip())
    if "FINISHED" not in result:
        raise error(f"Blender's {name} did not finish ({', '.join(sorted(result))})")


def _set_fps(scene: Any, fps: float) -> None:
    """Scene rate ``fps`` as Blender stores it: an integer ``fps`` over a float ``fps_base``."""
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps


def _scene_fps(scene: Any) -> float:
    return float(scene.render.fps / scene.render.fps_base)


def write_fbx(motion: Motion | list[tuple[str, Motion]], path: str | Path, *, units: str = "cm",
              name: str | None = None, camera: CameraPath | None = None) -> Path:
    """Write ``motion`` as a binary FBX: one armature whose bones are ``motion.rig.names``, rest
    pose the rig's T-pose, animation baked on every frame (frames ``1..T``) at ``motion.fps``.
    A list of ``(name, motion)``: everyone in one world, one armature each, named so.

    Y up and facing +Z in the file (FBX's usual axes), lengths in ``units`` (``"cm"`` or ``"m"``).
    Goes through Blender: a temporary BVH is imported with Blender's BVH importer and exported with
    its FBX exporter; the file is written to a temporary name beside ``path``, then renamed.
    ``name`` names the armature and the take (default: the file name's stem).
    ``camera``: the video's camera per frame (:class:`converters.gltf_writer.CameraPath`), a camera
    ``"{name} camera"`` keyed on the same frames, its lens from the focal length on a 36 mm wide sensor
    (``lens = focal_px * 36 / image_width``, sensor fit horizontal).
    """
    if units not in _FBX_UNITS:
        raise ConversionError(f"FBX units must be one of {', '.join(_FBX_UNITS)}, not {units!r}")
    target = Path(path)
    name = name or target.stem
    people = motion if isinstance(motion, list) else [(name or "Armature", motion)]
    if not people:
        raise ConversionError("no motion to write")
    if camera is not None:
        check_camera(camera, people[0][1].num_frames)
    for _, each in people:
        for bone in each.rig.names:
            if len(bone.encode("utf-8")) > _MAX_BONE_NAME_BYTES:
                raise ConversionError(f"joint name {bone!r} is longer than Blender's {_MAX_BONE_NAME_BYTES} bytes")
    require_bpy()  # before any work
    units_per_metre, scale_option = _FBX_UNITS[units]
    with temp_dir("fbx") as tmp:
        with _blender_session("FBX export") as bpy:
            scene = bpy.context.scene
            scene.name = name or "Take"  # FBX names its animation take after the scene
            _set_fps(scene, people[0][1].fps)
            # Blender units are metres times scale_length; with centimetre units the exporter's
            # unit factor is 1, so values go out as they are, with no scale on the armature node.
            scene.unit_settings.scale_length = 1.0 / units_per_metre
            for n, (label, each) in enumerate(people):
                bvh_path = write_bvh(each, Path(tmp) / f"motion{n}.bvh", units="cm")
                before = set(scene.objects)
                _call(bpy.ops.import_anim.bvh, filepath=str(bvh_path), target="ARMATURE",
                      global_scale=units_per_metre / 100.0, frame_start=1, rotate_mode="NATIVE",
                      axis_forward="-Z", axis_up="Y", use_fps_scale=False,
                      update_scene_fps=False, update_scene_duration=False)
                new = [ob for ob in scene.objects if ob not in before and ob.type == "ARMATURE"]
                if len(new) != 1:
                    raise ConversionError(f"{bvh_path}: expected one armature, Blender's importer made {len(new)}")
                armature = new[0]
                armature.name = armature.data.name = label or "Armature"
                bones = tuple(bone.name for bone in armature.data.bones)
                if bones != each.rig.names:
                    raise ConversionError(f"Blender renamed or reordered the bones: {bones} != {each.rig.names}")
            if camera is not None:
                _add_camera(bpy, scene, camera, f"{name or 'Armature'} camera", units_per_metre)
            scene.frame_start, scene.frame_end = 1, max(each.num_frames for _, each in people)
            _export_fbx_atomically(bpy, target, scale_option, camera=camera is not None)
    return target


def _add_camera(bpy: Any, scene: Any, camera: CameraPath, name: str, units_per_metre: float) -> Any:
    """A camera object ``name`` following ``camera`` (vp3d world) on frames ``1..T``, in Blender's
    world and units; the scene's render size is the picture's (the FBX exporter writes the film's
    aspect from it)."""
    w, h = camera.image_size
    data = bpy.data.cameras.new(name)
    # The film has the picture's shape, so that any gate fit an FBX reader applies gives the same view
    # (the exporter always writes GateFit horizontal; Blender's importer drops it, leaving fit AUTO).
    data.sensor_fit, data.sensor_width, data.sensor_height = "HORIZONTAL", SENSOR_WIDTH_MM, SENSOR_WIDTH_MM * h / w
    data.lens = float(camera.focal_px) * SENSOR_WIDTH_MM / float(w)
    data.clip_start, data.clip_end = CAMERA_ZNEAR * units_per_metre, CAMERA_ZFAR * units_per_metre
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    scene.render.resolution_x, scene.render.resolution_y = int(w), int(h)
    to_blender = BLENDER_TO_VP3D.T
    quats = camera_view_rotations(to_blender @ np.asarray(camera.rotations, np.float64))
    locations = np.asarray(camera.positions, np.float64) @ to_blender.T * units_per_metre
    obj.rotation_mode = "QUATERNION"
    obj.animation_data_create()
    obj.animation_data.action = bpy.data.actions.new(name)
    frames = np.arange(1, len(quats) + 1, dtype=np.float64)
    for path, values in (("location", locations), ("rotation_quaternion", quats)):
        for i in range(values.shape[1]):
            curve = obj.animation_data.action.fcurve_ensure_for_datablock(obj, path, index=i)
            curve.keyframe_points.add(len(frames))
            co = np.empty(2 * len(frames), dtype=np.float32)
            co[0::2], co[1::2] = frames, values[:, i]
            curve.keyframe_points.foreach_set("co", co)
            curve.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, dtype=np.int32))  # LINEAR
            curve.update()
    return obj


def _export_fbx_atomically(bpy: Any, target: Path, scale_option: str, camera: bool = False) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)  # keeps the .fbx suffix, which Blender's exporter insists on
    try:
        _call(bpy.ops.export_scene.fbx, filepath=str(tmp), use_selection=False,
              object_types={"ARMATURE", "CAMERA"} if camera else {"ARMATURE"},
              axis_forward="-Z", axis_up="Y", apply_unit_scale=True, global_scale=1.0,
              apply_scale_options=scale_option, add_leaf_bones=False, primary_bone_axis="Y",
              secondary_bone_axis="X", armature_nodetype="NULL", use_armature_deform_only=False,
              bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
              bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
              bake_anim_step=1.0, bake_anim_simplify_factor=0.0)  # 0: keep every frame exactly
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_armature_positions(path: str | Path, *, space: Literal["vp3d", "blender"] = "vp3d",
                            bvh_scale: float | None = None) -> ArmatureAnimation:
    """Import a BVH, FBX or glTF/GLB file (by extension) with Blender's own importer into an empty
    scene and sample the world head of every pose bone on every frame of its armature's action
    (the file must hold one armature; :func:`read_all_armature_positions` reads several).

    ``bvh_scale`` is metres per BVH unit (default: inferred from the skeleton, as
    :func:`converters.bvh.infer_unit_scale` does); FBX and glTF carry their own units.
    """
    found = read_all_armature_positions(path, space=space, bvh_scale=bvh_scale)
    if len(found) != 1:
        raise InputFileError(f"{path}: expected one armature, Blender's importer found {len(found)}")
    return next(iter(found.values()))


def read_all_armature_positions(path: str | Path, *, space: Literal["vp3d", "blender"] = "vp3d",
                                bvh_scale: float | None = None) -> dict[str, ArmatureAnimation]:
    """:func:`read_armature_positions` for every armature in the file (everyone of a clip), by the
    armature object's name, in Blender's order of names."""
    if space not in ("vp3d", "blender"):
        raise ConfigurationError(f"space must be 'vp3d' or 'blender', not {space!r}")
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in _READABLE:
        raise InputFileError(f"{path}: cannot read {kind or 'files without an extension'}; "
                             f"expected one of {', '.join(_READABLE)}")
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    bvh = read_bvh(path) if kind == ".bvh" else None  # its exact frame time; Blender keeps float32
    out: dict[str, ArmatureAnimation] = {}
    with _blender_session("Reading animation with Blender") as bpy:
        scene = bpy.context.scene
        # Each importer maps file time to Blender frames its own way; frames_per_file_frame undoes it.
        if bvh is not None:
            scale = infer_unit_scale(bvh)[1] if bvh_scale is None else bvh_scale
            _call(bpy.ops.import_anim.bvh, InputFileError, filepath=str(path), global_scale=scale, frame_start=1,
                  axis_forward="-Z", axis_up="Y", rotate_mode="NATIVE", update_scene_fps=True, use_fps_scale=False)
            fps, frames_per_file_frame = bvh.fps, 1.0
        elif kind == ".fbx":
            _call(bpy.ops.import_scene.fbx, InputFileError, filepath=str(path), use_anim=True, anim_offset=0.0,
                  global_scale=1.0, ignore_leaf_bones=False, automatic_bone_orientation=False)
            # The importer sets the scene rate from the file but places keys at time * the integer
            # scene.render.fps, ignoring fps_base (so 29.97 fps keys drift off whole frames).
            fps, frames_per_file_frame = _scene_fps(scene), float(scene.render.fps_base)
        else:
            _call(bpy.ops.import_scene.gltf, InputFileError, filepath=str(path))
            fps, frames_per_file_frame = 0.0, 1.0
        armatures = sorted((ob for ob in scene.objects if ob.type == "ARMATURE"), key=lambda ob: ob.name)
        if not armatures:
            raise InputFileError(f"{path}: Blender's importer found no armature")
        for armature in armatures:
            if kind in (".glb", ".gltf"):
                blender_frames_per_second = scene.render.fps * scene.render.fps_base  # the importer's factor
                # glTF stores seconds, not a rate: take it from the key spacing (float32 times).
                fps = round(_key_rate(armature, path) * blender_frames_per_second, 4)
                frames_per_file_frame = blender_frames_per_second / fps
            action = armature.animation_data.action if armature.animation_data else None
            if action is None:
                raise InputFileError(f"{path}: the armature {armature.name} has no animation")
            start, end = (float(f) / frames_per_file_frame for f in action.frame_range)
            first, last = round(start), round(end)
            positions = _sample_heads(scene, armature, [n * frames_per_file_frame for n in range(first, last + 1)])
            if space == "vp3d":
                positions = positions @ BLENDER_TO_VP3D.T
            out[armature.name] = ArmatureAnimation(bone_names=[bone.name for bone in armature.pose.bones],
                                                   positions=positions, fps=fps, frame_range=(first, last))
    return out


def _key_rate(armature: Any, path: Path) -> float:
    """Keys per Blender frame of the armature's action: its median key spacing, inverted."""
    from bpy_extras import anim_utils  # Blender 4.4+: F-curves live in the action's channelbags

    data = armature.animation_data
    bag = anim_utils.action_get_channelbag_for_slot(data.action, data.action_slot) if data and data.action else None
    times = np.unique(np.round([k.co[0] for fc in (bag.fcurves if bag else ()) for k in fc.keyframe_points], 4))
    if times.size < 2:
        raise InputFileError(f"{path}: the armature's animation has fewer than two keys; its frame rate is unknown")
    return float(1.0 / np.median(np.diff(times)))


def _sample_heads(scene: Any, armature: Any, blender_frames: list[float]) -> np.ndarray:
    """World head of every pose bone at each (possibly fractional) Blender frame, ``(T,J,3)``."""
    bones = armature.pose.bones
    heads = np.empty(len(bones) * 3, dtype=np.float32)
    out = np.empty((len(blender_frames), len(bones), 3))
    for i, frame in enumerate(blender_frames):
        whole = math.floor(frame)
        scene.frame_set(whole, subframe=frame - whole)
        bones.foreach_get("head", heads)  # armature space
        world = np.array(armature.matrix_world)
        out[i] = heads.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]
    return out
