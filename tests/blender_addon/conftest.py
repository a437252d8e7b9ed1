"""Fixtures shared by the add-on's tests: the built zip, and Blender (bpy 5.0.1, headless) with
that zip installed and enabled, once per session (one Blender per Python process); everyone in a
real two-person clip as the add-on's local job converts them; a stand-in for a panel's layout."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import build_addon

CONVERT = str(Path(sys.executable).with_name("vp3d-convert"))
#: Two people walking about, seen whole in all 100 frames (60 fps) of one camera of four.
TWO_PEOPLE = Path("multiview") / "pose2sim-multiperson" / "cam02.mp4"


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


@pytest.fixture(scope="session")
def people_motions(bpy: ModuleType, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Everyone in :data:`TWO_PEOPLE`, converted once by the add-on's own local job with person
    ``all`` (the real vp3d-convert, about 15 s): each person's Motion file, kept, by person number."""
    from vp3d_blender.engine import LocalJob, engine_options

    job = LocalJob(CONVERT, shared_data / TWO_PEOPLE, engine_options(person="all"))
    try:
        status = job.wait(timeout=300)
        assert status.state == "done", status.message
        args = list(job.process.args)
        assert args[args.index("--person") + 1] == "all", args
        assert [p.name for p in status.motions] == ["cam02.p0.motion.npz", "cam02.p1.motion.npz"]
        out = tmp_path_factory.mktemp("people")
        return [Path(shutil.copy(p, out / p.name)) for p in status.motions]
    finally:
        job.close()


class Layout:
    """Stands in for a panel's layout and writes down what the panel draws."""

    def __init__(self, drawn: list[tuple[str, str, Any]]) -> None:
        self.drawn = drawn

    def label(self, text: str = "", icon: str = "NONE", **kwargs: Any) -> None:
        self.drawn.append(("label", text, icon))

    def operator(self, idname: str, **kwargs: Any) -> Any:
        op = SimpleNamespace()
        self.drawn.append(("operator", idname, op))
        return op

    def __getattr__(self, name: str) -> Any:  # prop, row, column, box, progress, separator...
        return lambda *args, **kwargs: self


def draw_panel(bpy: ModuleType) -> list[tuple[str, str, Any]]:
    """What the add-on's panel draws now: ``(kind, text or idname, icon or the operator's settings)``."""
    drawn: list[tuple[str, str, Any]] = []
    bpy.types.VP3D_PT_import.draw(SimpleNamespace(layout=Layout(drawn)), bpy.context)
    return drawn
