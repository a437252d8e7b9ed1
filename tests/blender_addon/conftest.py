"""Fixtures shared by the add-on's tests: the built zip, and Blender (bpy 5.0.1, headless) with
that zip installed and enabled, once per session (one Blender per Python process)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import build_addon

CONVERT = str(Path(sys.executable).with_name("vp3d-convert"))


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_addon.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def bpy(tmp_path_factory: pytest.TempPathFactory, addon_zip: Path) -> Iterator[ModuleType]:
    """Blender with the add-on installed from the zip and enabled, as a user does it (a legacy
    add-on, module ``vp3d_blender``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLENDER_USER_RESOURCES", str(tmp_path_factory.mktemp("blender-user")))
        bpy = pytest.importorskip("bpy", exc_type=ModuleNotFoundError)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        assert bpy.ops.preferences.addon_install(filepath=str(addon_zip), overwrite=True) == {"FINISHED"}
        assert bpy.ops.preferences.addon_enable(module="vp3d_blender") == {"FINISHED"}
        bpy.context.preferences.addons["vp3d_blender"].preferences.convert_path = CONVERT
        yield bpy
