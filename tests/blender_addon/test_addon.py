"""The Blender add-on as a user gets it: the built zip installed and enabled in real Blender (bpy
5.0.1, headless), the engine run as a real subprocess or over HTTP on loopback."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pytest

import build_addon
from converters.motion import forward_kinematics
from converters.motion_file import load_motion_file
from tests.blender_addon.conftest import CONVERT

REPO = Path(__file__).resolve().parents[2]
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # vp3d (Y up) to Blender (Z up)


def _clear(bpy: ModuleType) -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)


def _heads(bpy: ModuleType, obj: Any, names: list[str], frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    return np.array([obj.matrix_world @ obj.pose.bones[n].head for n in names])


def test_the_zip_is_reproducible_and_imports_nothing_but_blender_and_numpy(addon_zip: Path, tmp_path: Path) -> None:
    again = build_addon.build(tmp_path)
    assert again.read_bytes() == addon_zip.read_bytes()
    assert addon_zip.name == f"vp3d_blender-{build_addon.version()}.zip"
    allowed = set(sys.stdlib_module_names) | {"bpy", "numpy", "mathutils", "bpy_extras"}
    with zipfile.ZipFile(addon_zip) as zf:
        names = zf.namelist()
        assert "vp3d_blender/blender_manifest.toml" in names and "vp3d_blender/__init__.py" in names
        assert f'version = "{build_addon.version()}"' in zf.read("vp3d_blender/blender_manifest.toml").decode()
        for name in (n for n in names if n.endswith(".py")):
            tree = ast.parse(zf.read(name))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    roots = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    roots = [(node.module or "").split(".")[0]]
                else:
                    continue
                assert set(roots) <= allowed, (name, roots)  # never torch, scipy, vp3d_engine or converters


@pytest.mark.blender
@pytest.mark.shared_data
def test_installed_as_an_extension_it_imports_a_motion_and_loads_no_torch_scipy_or_engine(
        addon_zip: Path, walk_motion: Path, tmp_path: Path) -> None:
    """In a fresh Blender process: install the zip as a Blender 4.2+ extension, import a Motion
    file; then look at what Python loaded."""
    script = f"""
import sys, bpy
bpy.ops.extensions.package_install_files(filepath={str(addon_zip)!r}, repo="user_default", enable_on_install=True)
print("ENABLED", [a.module for a in bpy.context.preferences.addons if "vp3d" in a.module])
print("RESULT", bpy.ops.vp3d.import_motion(filepath={str(walk_motion)!r}), len(bpy.context.active_object.data.bones))
bad = [m for m in sys.modules if m.split(".")[0] in ("torch", "scipy", "vp3d_engine", "converters")]
print("LOADED", bad)
"""
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert "ENABLED ['bl_ext.user_default.vp3d_blender']" in done.stdout, done.stdout + done.stderr
    assert "RESULT {'FINISHED'} 22" in done.stdout, done.stdout + done.stderr
    assert "LOADED []" in done.stdout, done.stdout + done.stderr


@pytest.mark.blender
@pytest.mark.shared_data
def test_import_video_locally_builds_an_armature_that_matches_the_engine(bpy: ModuleType, shared_data: Path,
                                                                         tmp_path: Path) -> None:
    _clear(bpy)
    video = shared_data / "videos" / "dance_ball_480p.mp4"
    result = bpy.ops.vp3d.import_video(filepath=str(video), engine="LOCAL", rig="mixamo", target="NEW",
                                       end=2.0, frame_start=10, mediapipe_3d=0.25)
    assert result == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.type == "ARMATURE" and obj.name == "dance_ball_480p"
    # The engine's own answer for the same clip and options: the Motion file vp3d-convert writes
    # (the share of MediaPipe's 3D too: the default 0.5 moves the joints by centimetres).
    subprocess.run([CONVERT, str(video), "--motion", "--rig", "mixamo", "--end", "2", "--out", str(tmp_path),
                    "--mediapipe-3d", "0.25", "--quiet"], check=True, timeout=300)
    motion = load_motion_file(tmp_path / "dance_ball_480p.motion.npz").motion
    assert motion.meta["detector_3d_weight"] == 0.25
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (10, 10 + motion.num_frames - 1)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(motion.fps)
    names = list(motion.rig.names)
    assert sorted(b.name for b in obj.data.bones) == sorted(names)
    positions = forward_kinematics(motion)[0] @ C.T
    for t in range(0, motion.num_frames, 5):
        assert np.abs(_heads(bpy, obj, names, 10 + t) - positions[t]).max() < 1e-3  # within 1 mm
    action = obj.animation_data.action
    assert len(action["vp3d_left_foot_contact"]) == motion.num_frames


@pytest.fixture(scope="module")
def walk_motion(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real mocap walk solved onto the Mixamo rig, as a Motion file."""
    out = tmp_path_factory.mktemp("walk")
    subprocess.run([CONVERT, str(shared_data / "mocap" / "cmu" / "02_01.bvh"), "--motion", "--rig", "mixamo",
                    "--out", str(out), "--quiet"], check=True, timeout=300)
    return out / "02_01.motion.npz"


@pytest.mark.blender
@pytest.mark.shared_data
def test_import_motion_retimed_to_the_scene_rate(bpy: ModuleType, walk_motion: Path) -> None:
    _clear(bpy)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 24, 1.0
    assert bpy.ops.vp3d.import_motion(filepath=str(walk_motion), fps_mode="RETIME") == {"FINISHED"}
    motion = load_motion_file(walk_motion).motion  # 120 fps mocap
    obj = bpy.context.active_object
    assert bpy.context.scene.render.fps == 24
    positions = forward_kinematics(motion)[0] @ C.T
    names = list(motion.rig.names)
    for t in (0, 50, 100, 250):  # clip frame t sits at scene frame 1 + t * 24 / 120
        assert np.abs(_heads(bpy, obj, names, 1 + t // 5) - positions[t - t % 5]).max() < 1e-3


def _a_pose_mixamo(bpy: ModuleType, motion: Any, scale: float) -> Any:
    """A Mixamo-named character built in the test: the motion's rig scaled, arms 45 degrees down
    (an A-pose rest), bones rolled differently than the add-on makes them."""
    names, parents = list(motion.rig.names), list(motion.rig.parents)
    positions = np.zeros((len(names), 3))
    positions[0] = [0.0, 1.0, 0.0]
    for k in range(1, len(names)):
        positions[k] = positions[parents[k]] + motion.rig.rest_offsets[k]
    positions = positions @ C.T * scale
    data = bpy.data.armatures.new("hero")
    obj = bpy.data.objects.new("hero", data)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    rest = positions.copy()
    for side, sign in (("Left", 1.0), ("Right", -1.0)):  # arms down by 45 degrees about the shoulder
        shoulder = rest[names.index(f"mixamorig:{side}Arm")]
        angle = np.radians(45.0) * sign
        turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        for part in ("ForeArm", "Hand"):
            k = names.index(f"mixamorig:{side}{part}")
            rest[k] = shoulder + turn @ (rest[k] - shoulder)
    bones = []
    for k, name in enumerate(names):
        children = [c for c in range(len(names)) if parents[c] == k]
        tail = rest[children[-1]] if children and np.linalg.norm(rest[children[-1]] - rest[k]) > 0.01 else \
            rest[k] + [0.0, 0.0, 0.08 * scale]
        bone = data.edit_bones.new(name)
        bone.head, bone.tail, bone.roll = rest[k].tolist(), tail.tolist(), 0.3 * k
        bones.append(bone)
    for k, p in enumerate(parents):
        if p >= 0:
            bones[k].parent = bones[p]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


@pytest.mark.blender
@pytest.mark.shared_data
def test_retarget_onto_an_a_pose_mixamo_character(bpy: ModuleType, walk_motion: Path) -> None:
    """Hands and feet of a 1.15x larger A-pose character follow the source's, relative to the hips
    and scaled by 1.15, within 1 mm: the character is the source's rig scaled, with its arms
    lowered and its bones rolled, so once each limb points where the source's does the joints must
    land on the source's scaled positions exactly (1 mm leaves room for float32 keys only); its
    bone lengths stay its own."""
    _clear(bpy)
    motion = load_motion_file(walk_motion).motion
    hero = _a_pose_mixamo(bpy, motion, 1.15)
    rest_lengths = {b.name: b.length for b in hero.data.bones}
    bpy.context.view_layer.objects.active = hero
    hero.select_set(True)
    assert bpy.ops.vp3d.import_motion(filepath=str(walk_motion), target="SELECTED") == {"FINISHED"}
    assert len(bpy.data.objects) == 1  # onto the character: no new armature
    assert {i.role for i in hero.vp3d_bone_map if i.target} >= {"Hips", "LeftHand", "RightFoot"}
    positions = forward_kinematics(motion)[0] @ C.T
    names = list(motion.rig.names)
    ends = [names.index(f"mixamorig:{n}") for n in ("LeftHand", "RightHand", "LeftFoot", "RightFoot")]
    hips = names.index("mixamorig:Hips")
    for t in range(0, motion.num_frames, 40):
        heads = _heads(bpy, hero, names, 1 + t)
        ours = heads[ends] - heads[hips]
        source = (positions[t, ends] - positions[t, hips]) * 1.15
        assert np.abs(ours - source).max() < 1e-3, (t, np.abs(ours - source).max())
        for pose_bone in hero.pose.bones:
            assert pose_bone.length == pytest.approx(rest_lengths[pose_bone.name], abs=1e-5)
    # The root travels too, scaled by the hip heights.
    travel = _heads(bpy, hero, names, motion.num_frames)[hips] - _heads(bpy, hero, names, 1)[hips]
    source_travel = (positions[-1, hips] - positions[0, hips]) * 1.15
    assert np.linalg.norm(travel[:2] - source_travel[:2]) < 0.05 * np.linalg.norm(source_travel[:2])


@pytest.mark.blender
def test_a_bad_video_reports_the_engines_error_and_changes_nothing(bpy: ModuleType, tmp_path: Path) -> None:
    _clear(bpy)
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    with pytest.raises(RuntimeError, match=r"notes\.mp4"):
        bpy.ops.vp3d.import_video(filepath=str(fake), engine="LOCAL")
    assert len(bpy.data.objects) == 0 and len(bpy.data.actions) == 0


@pytest.mark.blender
@pytest.mark.shared_data
def test_the_timer_tick_shows_progress_while_the_engine_runs(bpy: ModuleType, shared_data: Path) -> None:
    """What the modal operator does on each timer event (headless Blender has no event loop to
    run the modal operator itself): the panel's progress rises while the engine works."""
    from vp3d_blender.engine import LocalJob, engine_options
    from vp3d_blender.ui import tick

    wm = bpy.context.window_manager
    job = LocalJob(CONVERT, shared_data / "videos" / "dance_ball_480p.mp4", engine_options(end=4.0))
    seen = []
    try:
        while (status := tick(job, wm, None)).state == "running":
            seen.append((wm.vp3d_status, round(wm.vp3d_progress, 3)))
            time.sleep(0.05)
    finally:
        job.close()
    assert status.state == "done" and status.motion is not None
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and len({f for f in fractions if 0 < f < 1}) > 10  # it moves
    assert fractions[-1] <= 1.0
    assert "detect" in {stage for stage, _ in seen}


@pytest.mark.blender
def test_a_file_that_is_not_a_motion_file_is_refused_with_its_reason(bpy: ModuleType, tmp_path: Path) -> None:
    _clear(bpy)
    other = tmp_path / "numbers.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(RuntimeError, match="not a Motion file"):
        bpy.ops.vp3d.import_motion(filepath=str(other))
    with pytest.raises(RuntimeError, match="no such"):
        bpy.ops.vp3d.import_motion(filepath=str(tmp_path / "missing.motion.npz"))
    assert len(bpy.data.objects) == 0 and len(bpy.data.actions) == 0


class _FakeService(BaseHTTPRequestHandler):
    """Speaks vp3d serve's documented API: upload, status with progress, files, delete."""

    motion: ClassVar[bytes] = b""
    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    uploads: ClassVar[list[bytes]] = []
    deleted: ClassVar[list[str]] = []
    hold: ClassVar[bool] = False  # keep jobs running (to cancel them)

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, code: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.uploads.append(body)
        job = str(len(self.jobs))
        self.jobs[job] = {"polls": 0}
        self._json(200, {"id": job})

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["api", "jobs"] and len(parts) == 3:
            job = self.jobs[parts[2]]
            job["polls"] += 1
            if self.hold or job["polls"] < 3:
                self._json(200, {"id": parts[2], "state": "running", "stage": "detect", "progress": 0.3 * job["polls"],
                                 "files": []})
            else:
                self._json(200, {"id": parts[2], "state": "done", "stage": "write", "progress": 1.0,
                                 "files": ["clip.bvh", "clip.motion.npz"]})
        elif parts[:2] == ["api", "jobs"] and parts[3:4] == ["files"]:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.motion)))
            self.end_headers()
            self.wfile.write(self.motion)
        else:
            self._json(404, {"detail": "not found"})

    def do_DELETE(self) -> None:
        self.deleted.append(self.path)
        self._json(200, {"deleted": True})


@pytest.fixture
def fake_service(walk_motion: Path) -> Iterator[str]:
    _FakeService.motion = walk_motion.read_bytes()
    _FakeService.jobs, _FakeService.uploads, _FakeService.deleted, _FakeService.hold = {}, [], [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.blender
@pytest.mark.shared_data
def test_remote_mode_against_vp3d_serve(bpy: ModuleType, shared_data: Path, tmp_path: Path) -> None:
    """The real service on loopback, the real pipeline: the armature matches the service's Motion file."""
    from tests.service.conftest import start_server, stop_server

    _clear(bpy)
    server = start_server(tmp_path / "service", token="s3cret")
    try:
        prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
        prefs.server_url, prefs.token = server.url, "s3cret"
        video = shared_data / "videos" / "taiji_green_336p.mp4"
        assert bpy.ops.vp3d.import_video(filepath=str(video), engine="REMOTE", rig="ue", end=2.0) == {"FINISHED"}
        obj = bpy.context.active_object
        assert obj.name == "taiji_green_336p" and "thigh_l" in obj.data.bones
        job_id = next(p.name for p in (tmp_path / "service" / "jobs").iterdir())
        job = server.request(f"/api/jobs/{job_id}")[1]
        assert job["options"]["rig"] == "ue" and job["options"]["end"] == 2.0 and job["files"] == [
            "taiji_green_336p.motion.npz"]
        (tmp_path / "m.motion.npz").write_bytes(server.request(f"/api/jobs/{job_id}/files/{job['files'][0]}")[1])
        motion = load_motion_file(tmp_path / "m.motion.npz").motion
        positions = forward_kinematics(motion)[0] @ C.T
        for t in range(0, motion.num_frames, 10):
            assert np.abs(_heads(bpy, obj, list(motion.rig.names), 1 + t) - positions[t]).max() < 1e-3
        prefs.token = "wrong"
        with pytest.raises(RuntimeError, match="401"):
            bpy.ops.vp3d.import_video(filepath=str(video), engine="REMOTE", end=1.0)
    finally:
        stop_server(server)


@pytest.mark.blender
@pytest.mark.shared_data
def test_cancel_mid_run_stops_the_engine_and_leaves_nothing(bpy: ModuleType, fake_service: str,
                                                           shared_data: Path) -> None:
    from vp3d_blender.engine import LocalJob, RemoteJob, engine_options  # the installed add-on's engine module

    video = shared_data / "videos" / "taiji_indoor_720p.mp4"
    local = LocalJob(CONVERT, video, engine_options())
    deadline = time.monotonic() + 120
    while local.poll().stage in ("starting",) and time.monotonic() < deadline:
        time.sleep(0.1)  # until the engine reports progress: mid-run
    assert local.poll().state == "running"
    local.cancel()
    assert local.poll().state == "cancelled" and local.process.returncode in (143, -15)
    assert not local.folder.exists()
    _FakeService.hold = True
    remote = RemoteJob(fake_service, "", video, engine_options())
    while not _FakeService.jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    remote.cancel()
    assert remote.poll().state == "cancelled" and _FakeService.deleted == ["/api/jobs/0"]
    assert not remote.folder.exists()


@pytest.mark.blender
def test_disable_and_enable_again_leave_nothing_behind(bpy: ModuleType) -> None:
    assert bpy.ops.preferences.addon_disable(module="vp3d_blender") == {"FINISHED"}
    assert not [n for n in dir(bpy.types) if n.startswith("VP3D_")]
    assert not hasattr(bpy.types.Scene, "vp3d") and not hasattr(bpy.types.Object, "vp3d_bone_map")
    assert "import_video" not in dir(bpy.ops.vp3d) and "import_motion" not in dir(bpy.ops.vp3d)
    assert bpy.ops.preferences.addon_enable(module="vp3d_blender") == {"FINISHED"}
    panel = bpy.types.VP3D_PT_import
    assert (panel.bl_label, panel.bl_category, panel.bl_space_type) == ("Import pose from video", "vp3d", "VIEW_3D")
    assert hasattr(bpy.types.Scene, "vp3d") and "import_video" in dir(bpy.ops.vp3d)
    menu = [f.__name__ for f in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()]
    assert menu.count("menu_video") == 1 and menu.count("menu_motion") == 1  # once each, after re-enabling


def test_build_refuses_an_output_folder_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "dist"
    target.write_text("not a folder")
    done = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--out", str(target)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("build_addon.py: error:") and target.read_text() == \
        "not a folder"


def test_the_panels_menus_and_bounds_are_the_options_one_definition(bpy: ModuleType) -> None:
    """The add-on's settings are made from converters/options.py (bundled in the zip): each option
    the add-on offers, with the table's choices, bounds and default, and nothing else."""
    from converters.options import options_for

    props = bpy.types.Scene.bl_rna.properties["vp3d"].fixed_type.properties
    for opt in options_for("addon"):
        prop = props[opt.name]
        assert prop.description == opt.help, opt.name
        if opt.kind == "choice" and not opt.registry:
            assert [item.identifier for item in prop.enum_items] == opt.values(), opt.name
            assert prop.default == opt.default_for("addon"), opt.name
        elif opt.kind == "integer" and opt.choices:  # a menu of its numbers, then its words (person: 0..9, all)
            numbers = [str(n) for n in range(int(opt.low or 0), int(opt.high or 0) + 1)]
            assert [item.identifier for item in prop.enum_items] == numbers + opt.values(), opt.name
            assert prop.default == str(opt.default_for("addon")), opt.name
        elif opt.kind in ("number", "integer"):
            assert (prop.hard_min, prop.hard_max) == (opt.low, opt.high), opt.name
    operator = bpy.ops.vp3d.import_video.get_rna_type().properties
    assert {o.name for o in options_for("addon")} <= set(operator.keys())
    assert "device" not in operator.keys() and "formats" not in operator.keys()  # not the add-on's to set
