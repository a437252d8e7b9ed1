"""The add-on as a new user meets it (issue 27, item 15): vp3d-convert found where people install
it, and when it is nowhere the panel says so and where to set it, before Import is pressed; a bone
map that does not fit names the bones it needs and the naming it tried; the preferences work
whether the zip is installed as an extension or as a legacy add-on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from converters.motion import Motion, Rig
from converters.motion_file import save_motion_file
from tests.blender_addon.conftest import CONVERT, draw_panel

pytestmark = pytest.mark.blender
ROLES = ("Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
         "RightShoulder", "RightArm", "RightForeArm", "RightHand", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
         "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase")


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bpy: ModuleType) -> Path:
    """A computer without vp3d: an empty home and PATH, no $VP3D_CONVERT, Blender's own Python
    elsewhere, the preference empty. The home folder, to install into."""
    home = tmp_path / "home"
    (home / "bin-empty").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", str(home / "bin-empty"))
    monkeypatch.delenv("VP3D_CONVERT", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "blender" / "python" / "bin" / "python3.11"))
    monkeypatch.chdir(tmp_path)
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    prefs.convert_path = ""
    yield home
    prefs.convert_path = CONVERT


def _install(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "vp3d-convert"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    return str(program)


@pytest.mark.parametrize("place", [".local/bin", "vp3d/.venv/bin", ".venv/bin", "venv/bin",
                                   ".local/pipx/venvs/vp3d/bin", ".local/share/pipx/venvs/vp3d/bin",
                                   ".local/share/uv/tools/vp3d/bin"])
def test_vp3d_convert_is_found_where_users_install_it(nowhere: Path, place: str) -> None:
    from vp3d_blender.engine import find_convert

    assert find_convert("") is None
    installed = _install(nowhere / place)
    assert find_convert("") == installed


def test_the_preference_then_the_variable_then_path_then_the_usual_places(nowhere: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from vp3d_blender.engine import find_convert

    usual = _install(nowhere / ".local" / "bin")
    on_path = _install(tmp_path / "on-path")
    monkeypatch.setenv("PATH", str(tmp_path / "on-path"))
    assert find_convert("") == on_path != usual
    variable = _install(tmp_path / "variable")
    monkeypatch.setenv("VP3D_CONVERT", variable)
    assert find_convert("") == variable
    chosen = _install(tmp_path / "chosen")
    assert find_convert(chosen) == chosen
    assert find_convert(str(tmp_path / "chosen")) == chosen  # the folder it is in will do
    assert find_convert(str(tmp_path / "typo" / "vp3d-convert")) is None  # what the user set, or nothing


def test_a_preference_that_points_nowhere_is_named_in_the_report(bpy: ModuleType, nowhere: Path,
                                                                 tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    prefs.convert_path = str(tmp_path / "typo" / "vp3d-convert")
    with pytest.raises(RuntimeError, match=r"vp3d-convert is not at .*typo/vp3d-convert") as err:
        bpy.ops.vp3d.import_video(filepath=str(video), engine="LOCAL")
    assert "Preferences > Add-ons" in str(err.value)
    prefs.convert_path = ""
    with pytest.raises(RuntimeError, match=r"vp3d-convert was not found") as err:
        bpy.ops.vp3d.import_video(filepath=str(video), engine="LOCAL")
    assert "~/.local/bin" in str(err.value) and "Preferences > Add-ons" in str(err.value)


def test_the_panel_says_vp3d_convert_is_missing_and_where_to_set_it(bpy: ModuleType, nowhere: Path) -> None:
    settings = bpy.context.scene.vp3d
    settings.engine = "LOCAL"
    drawn = draw_panel(bpy)
    labels = " | ".join(text for kind, text, _ in drawn if kind == "label")
    assert "vp3d-convert was not found" in labels, drawn
    assert "Preferences > Add-ons" in labels and "vp3d-convert" in labels
    shows = [op for kind, idname, op in drawn if kind == "operator" and idname == "preferences.addon_show"]
    assert len(shows) == 1 and shows[0].module == "vp3d_blender"
    assert ("operator", "vp3d.import_video") in [(kind, idname) for kind, idname, _ in drawn]  # it can still run
    _install(nowhere / ".local" / "bin")
    assert not [text for kind, text, _ in draw_panel(bpy) if "not found" in text]
    (nowhere / ".local" / "bin" / "vp3d-convert").unlink()
    settings.engine = "REMOTE"
    try:
        assert not [text for kind, text, _ in draw_panel(bpy) if "not found" in text]  # not needed remotely
    finally:
        settings.engine = "LOCAL"


def _mixamo_motion(path: Path) -> Path:
    names = tuple(f"mixamorig:{r}" for r in ROLES)
    parents = np.array([-1, *range(len(names) - 1)])
    offsets = np.tile([0.0, 0.1, 0.0], (len(names), 1))
    rotations = np.zeros((3, len(names), 4))
    rotations[..., 0] = 1.0
    motion = Motion(rig=Rig(names=names, parents=parents, rest_offsets=offsets, preset="mixamo"),
                    rotations=rotations, root_translation=np.zeros((3, 3)), fps=30.0)
    return save_motion_file(motion, path)


def _armature(bpy: ModuleType, name: str, bones: list[str]) -> Any:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for k, bone_name in enumerate(bones):
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail = (0.0, 0.0, 0.2 * k), (0.0, 0.0, 0.2 * k + 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.select_set(True)
    return obj


@pytest.mark.parametrize(("bones", "naming", "wanted"), [
    (["mixamorig:Hips", "mixamorig:Spine", "mixamorig:Head", "Tail"], "mixamo", "mixamorig:LeftArm"),
    (["pelvis", "spine_01", "head", "tail"], "ue", "upperarm_l"),
    (["DEF-spine", "DEF-spine.001", "tail"], "rigify", "DEF-upper_arm.L"),
])
def test_a_bone_map_that_does_not_fit_names_the_bones_it_needs(bpy: ModuleType, tmp_path: Path, bones: list[str],
                                                              naming: str, wanted: str) -> None:
    motion = _mixamo_motion(tmp_path / "walk.motion.npz")
    hero = _armature(bpy, "hero", bones)
    matched = len(bones) - 1
    for attempt in ("detected", "stored"):  # the second time the map is the one stored on the armature
        with pytest.raises(RuntimeError) as err:
            bpy.ops.vp3d.import_motion(filepath=str(motion), target="SELECTED")
        message = str(err.value)
        assert f"only {matched} of the 22 body parts" in message, (attempt, message)
        assert f"{naming} names" in message and wanted in message and "LeftForeArm" in message, (attempt, message)
        assert "at least 6" in message and "Bone map" in message
        assert message.strip().count("\n") == 0
    assert len(hero.vp3d_bone_map) == 22


def test_an_armature_with_no_known_naming_is_told_the_namings_tried(bpy: ModuleType, tmp_path: Path) -> None:
    motion = _mixamo_motion(tmp_path / "walk.motion.npz")
    _armature(bpy, "robot", ["torso", "arm", "claw"])
    with pytest.raises(RuntimeError) as err:
        bpy.ops.vp3d.import_motion(filepath=str(motion), target="SELECTED")
    message = str(err.value)
    assert "only 0 of the 22 body parts" in message and "no naming matched" in message, message
    for tried in ("mixamo (mixamorig:Hips", "ue (pelvis", "rigify (DEF-spine"):
        assert tried in message, message


def test_preferences_under_the_legacy_module_name(bpy: ModuleType) -> None:
    import vp3d_blender.settings as settings

    assert settings.ADDON == "vp3d_blender" == settings.VP3D_AddonPreferences.bl_idname
    assert settings.preferences(bpy.context) == bpy.context.preferences.addons["vp3d_blender"].preferences


def test_preferences_under_the_extension_module_name(addon_zip: Path, tmp_path: Path) -> None:
    """In a fresh Blender: the zip installed as an extension (module
    ``bl_ext.user_default.vp3d_blender``), its preferences read, written and used by the operators."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    missing = tmp_path / "typo" / "vp3d-convert"
    script = f"""
import bpy
bpy.ops.extensions.package_install_files(filepath={str(addon_zip)!r}, repo="user_default", enable_on_install=True)
from bl_ext.user_default.vp3d_blender import settings
prefs = settings.preferences(bpy.context)
print("NAMES", settings.ADDON, settings.VP3D_AddonPreferences.bl_idname)
print("SAME", prefs == bpy.context.preferences.addons["bl_ext.user_default.vp3d_blender"].preferences)
prefs.convert_path = {str(missing)!r}
try:
    bpy.ops.vp3d.import_video(filepath={str(video)!r}, engine="LOCAL")
except RuntimeError as exc:
    print("REPORT", str(exc).strip())
"""
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "NAMES bl_ext.user_default.vp3d_blender bl_ext.user_default.vp3d_blender" in done.stdout, out
    assert "SAME True" in done.stdout, out
    assert f"REPORT Error: vp3d-convert is not at {missing}" in done.stdout, out
