"""Everyone in a video into Blender (issue: the add-on imports everyone): the panel's person menu
offers "all" and the engine gets ``--person all``; each person becomes an armature of their own,
named for them, where the engine put them in the one world they share; or the selected armatures
are driven in order (the active one, then the others by name), and when there are fewer of them
than people the report says who was left out.

The per-person Motion files are the real engine's (``people_motions``: the add-on's local job run
once on a two-person clip); the imports here run a stand-in vp3d-convert that writes those files
again at once and writes down the arguments it was given."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from converters.motion_file import load_motion_file
from converters.options import option, to_cli_arguments, to_form_fields
from tests.blender_addon.conftest import CONVERT, TWO_PEOPLE, draw_panel

pytestmark = [pytest.mark.blender, pytest.mark.shared_data]
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # vp3d (Y up) to Blender (Z up)
HIPS = "mixamorig:Hips"


@pytest.fixture(scope="module")
def replay(people_motions: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A vp3d-convert that writes the engine's Motion files of ``people_motions`` for the video it
    is given (one per person with ``--person all``, else person N's as ``NAME.motion.npz``) and its
    arguments as JSON; the program and that JSON file."""
    folder = tmp_path_factory.mktemp("replay")
    program, said = folder / "vp3d-convert", folder / "args.json"
    sources = [str(p) for p in people_motions]
    program.write_text(f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
args = sys.argv[1:]
Path({str(said)!r}).write_text(json.dumps(args))
video, out, person = Path(args[0]), Path(args[args.index("--out") + 1]), args[args.index("--person") + 1]
for n, source in enumerate({sources!r}):
    if person == "all":
        shutil.copy(source, out / f"{{video.stem}}.p{{n}}.motion.npz")
    elif int(person) == n:
        shutil.copy(source, out / f"{{video.stem}}.motion.npz")
""")
    program.chmod(0o755)
    return program, said


@pytest.fixture
def replaying(bpy: ModuleType, replay: tuple[Path, Path]) -> Iterator[Path]:
    """The add-on set to run :func:`replay`; the file its arguments are written to."""
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    prefs.convert_path = str(replay[0])
    replay[1].unlink(missing_ok=True)
    yield replay[1]
    prefs.convert_path = CONVERT


def _clear(bpy: ModuleType) -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)


def _hips(bpy: ModuleType, obj: Any, frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    return np.array(obj.matrix_world @ obj.pose.bones[HIPS].head)


def _roots(people_motions: list[Path]) -> list[np.ndarray]:
    """Each person's root (the hips) over the clip, in Blender's space (T, 3)."""
    return [load_motion_file(p).motion.root_translation @ C.T for p in people_motions]


def _argument(said: Path, flag: str) -> str:
    args = json.loads(said.read_text())
    return str(args[args.index(flag) + 1])


def test_the_engines_files_for_everyone_are_found_in_person_order(people_motions: list[Path]) -> None:
    """The real vp3d-convert's files for ``--person all``, as the local job found them (the
    fixture asserts the names and the ``--person all`` it ran): two people, apart in the one world."""
    roots = _roots(people_motions)
    assert [load_motion_file(p).motion.num_frames for p in people_motions] == [100, 100]
    assert np.linalg.norm(roots[0][0] - roots[1][0]) > 0.3


def test_the_panels_person_menu_offers_everyone_and_passes_person_all(bpy: ModuleType, replaying: Path,
                                                                       shared_data: Path) -> None:
    settings = bpy.context.scene.vp3d
    menu = settings.bl_rna.properties["person"]
    assert [i.identifier for i in menu.enum_items] == [*map(str, range(10)), "all"]
    assert menu.enum_items["0"].name == "0: main subject" and menu.enum_items["all"].name == "Everyone"
    assert menu.default == "0" == settings.person
    settings.filepath, settings.person, settings.engine = str(shared_data / TWO_PEOPLE), "all", "LOCAL"
    try:
        drawn = draw_panel(bpy)
    finally:
        settings.person = "0"
    op = next(op for kind, idname, op in drawn if kind == "operator" and idname == "vp3d.import_video")
    assert op.person == "all" and op.min_presence == pytest.approx(0.3)
    _clear(bpy)
    assert bpy.ops.vp3d.import_video(**vars(op)) == {"FINISHED"}  # what Import does with what the panel set
    assert _argument(replaying, "--person") == "all" and float(_argument(replaying, "--min-presence")) == 0.3
    assert sorted(o.name for o in bpy.data.objects) == ["cam02 camera", "cam02.p0", "cam02.p1"]  # one camera


def test_the_person_menus_values_reach_the_engine_as_it_takes_them(bpy: ModuleType) -> None:
    from vp3d_blender.engine import EngineError, engine_options

    assert engine_options(person="2")["person"] == 2 and engine_options(person=2)["person"] == 2
    everyone = engine_options(person="all", start=0.0, end=2.0)
    assert everyone["start"] is None and everyone["end"] == 2.0  # 0 is still unset for an option with no default
    args = to_cli_arguments(everyone)
    assert args[args.index("--person") + 1] == "all" and "--start" not in args
    args = to_cli_arguments(engine_options(person="2"))
    assert args[args.index("--person") + 1] == "2"
    assert to_form_fields(everyone)["person"] == "all" and to_form_fields(engine_options())["person"] == "0"
    assert engine_options()["person"] == option("person").default == 0
    with pytest.raises(EngineError, match="person must be a whole number or all"):
        engine_options(person="everyone")


def test_everyone_becomes_an_armature_each_where_the_engine_put_them(bpy: ModuleType, replaying: Path,
                                                                     people_motions: list[Path], shared_data: Path,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    _clear(bpy)
    result = bpy.ops.vp3d.import_video(filepath=str(shared_data / TWO_PEOPLE), engine="LOCAL", person="all",
                                       target="NEW")
    assert result == {"FINISHED"}
    assert "Info: vp3d: 2 people: cam02.p0, cam02.p1, 100 frames at 60 fps" in capfd.readouterr().out
    objs = [bpy.data.objects[f"cam02.p{n}"] for n in (0, 1)]
    assert sorted(o.name for o in bpy.data.objects) == ["cam02 camera", "cam02.p0", "cam02.p1"]
    assert all(o.type == "ARMATURE" and o.select_get() for o in objs) and bpy.context.active_object == objs[0]
    # The video's camera, as the engine placed it in everyone's world (the main person's file holds it).
    camera = bpy.data.objects["cam02 camera"]
    assert camera.type == "CAMERA" and bpy.context.scene.camera == camera and not camera.select_get()
    written = load_motion_file(people_motions[0]).camera
    assert written is not None
    assert (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y) == written.image_size
    bpy.context.scene.frame_set(50)
    assert np.abs(np.array(camera.matrix_world)[:3, 3] - C @ written.positions[49]).max() < 1e-3
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, 100)
    roots = _roots(people_motions)
    first = [_hips(bpy, o, 1) for o in objs]
    assert np.linalg.norm(first[0] - first[1]) > 0.3
    for obj, root in zip(objs, roots, strict=True):
        for t in (0, 50, 99):
            assert np.abs(_hips(bpy, obj, 1 + t) - root[t]).max() < 1e-3  # within 1 mm


def _characters(bpy: ModuleType, people_motions: list[Path], names: tuple[str, ...]) -> list[Any]:
    """Mixamo-named characters with no animation, one per name, each with the rig of the person
    at the same place in ``people_motions`` (so driven by that person, their hips land on the
    person's): made by importing the Motion file and taking its action (and its camera) away."""
    _clear(bpy)
    made = []
    for path, name in zip(people_motions, names, strict=False):
        assert bpy.ops.vp3d.import_motion(filepath=str(path), target="NEW") == {"FINISHED"}
        obj = bpy.context.active_object
        obj.name = name
        obj.animation_data_clear()
        made.append(obj)
        for camera in [o for o in bpy.data.objects if o.type == "CAMERA"]:
            bpy.data.objects.remove(camera)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    for obj in bpy.data.objects:
        obj.select_set(False)
    return made


def test_selected_armatures_are_driven_in_order_the_active_one_first(bpy: ModuleType, replaying: Path,
                                                                     people_motions: list[Path], shared_data: Path,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    zed, adam = _characters(bpy, people_motions, ("zed", "adam"))  # the active one first, though named last
    zed.select_set(True)
    adam.select_set(True)
    bpy.context.view_layer.objects.active = zed
    capfd.readouterr()
    result = bpy.ops.vp3d.import_video(filepath=str(shared_data / TWO_PEOPLE), engine="LOCAL", person="all",
                                       target="SELECTED")
    assert result == {"FINISHED"}
    out = capfd.readouterr().out
    assert "vp3d: 2 people: cam02.p0 onto zed, cam02.p1 onto adam, 100 frames at 60 fps" in out, out
    assert "left out" not in out
    assert _argument(replaying, "--person") == "all" and _argument(replaying, "--rig") == "mixamo"
    assert sorted(o.name for o in bpy.data.objects) == ["adam", "cam02 camera", "zed"]  # no new armature
    roots = _roots(people_motions)
    for obj, root, action in ((zed, roots[0], "cam02.p0 on zed"), (adam, roots[1], "cam02.p1 on adam")):
        assert obj.animation_data.action.name == action
        for t in (0, 50, 99):
            assert np.abs(_hips(bpy, obj, 1 + t) - root[t]).max() < 1e-3, (obj.name, t)
    assert np.linalg.norm(_hips(bpy, zed, 1) - _hips(bpy, adam, 1)) > 0.3


def test_fewer_selected_armatures_than_people_drive_the_first_and_say_who_was_left_out(
        bpy: ModuleType, replaying: Path, people_motions: list[Path], shared_data: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    hero, bystander = _characters(bpy, people_motions, ("hero", "bystander"))
    hero.select_set(True)
    bpy.context.view_layer.objects.active = hero
    capfd.readouterr()
    result = bpy.ops.vp3d.import_video(filepath=str(shared_data / TWO_PEOPLE), engine="LOCAL", person="all",
                                       target="SELECTED")
    assert result == {"FINISHED"}
    out = capfd.readouterr().out
    assert "Info: vp3d: 1 of 2 people: cam02.p0 onto hero, 100 frames at 60 fps" in out, out
    assert "Warning: vp3d: 1 person was left out (cam02.p1): select an armature for each of the 2 people" in out, out
    assert bystander.animation_data is None  # not selected: not touched
    root = _roots(people_motions)[0]
    assert np.abs(_hips(bpy, hero, 50) - root[49]).max() < 1e-3


def test_one_person_still_makes_one_armature_named_for_the_video(bpy: ModuleType, replaying: Path,
                                                                 people_motions: list[Path], shared_data: Path,
                                                                 tmp_path: Path) -> None:
    """``--person 1``: that person alone, as ``NAME.motion.npz``, named for the video as before."""
    _clear(bpy)
    video = tmp_path / "take.p3.mp4"  # a name that looks like a person's; the stand-in engine never reads it
    video.write_bytes(b"x")
    assert bpy.ops.vp3d.import_video(filepath=str(video), engine="LOCAL", person="1") == {"FINISHED"}
    assert _argument(replaying, "--person") == "1"
    assert [o.name for o in bpy.data.objects] == ["take.p3", "take.p3 camera"]
    root = _roots(people_motions)[1]
    assert np.abs(_hips(bpy, bpy.data.objects["take.p3"], 1) - root[0]).max() < 1e-3
