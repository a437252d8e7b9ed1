"""The web page in Debian's Chromium driven by Playwright, against a real ``vp3d serve`` running
the real pipeline on real clips, and one end-to-end job through the API."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.bvh import read_bvh
from converters.motion_file import load_motion_file
from tests.service.conftest import Server

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.shared_data


def test_a_real_clip_through_the_real_pipeline(serve: Callable[..., Server], shared_data: Path,
                                               tmp_path: Path) -> None:
    server = serve()
    clip = shared_data / "videos" / "taiji_green_336p.mp4"
    job = server.wait(server.upload(clip, end="2", formats="motion,bvh,glb,fbx", rig="mixamo",
                                    mediapipe_3d="0.25")[1]["id"])
    assert job["state"] == "done", job
    assert sorted(job["files"]) == ["taiji_green_336p.bvh", "taiji_green_336p.fbx", "taiji_green_336p.glb",
                                    "taiji_green_336p.motion.npz"]  # FBX: Blender's module in the worker process
    for name in job["files"]:
        status, data = server.request(f"/api/jobs/{job['id']}/files/{name}")
        assert status == 200
        (tmp_path / name).write_bytes(data)
    bvh = read_bvh(tmp_path / "taiji_green_336p.bvh")
    motion = load_motion_file(tmp_path / "taiji_green_336p.motion.npz").motion
    assert bvh.num_frames == motion.num_frames and abs(motion.num_frames / motion.fps - 2.0) < 0.1
    assert motion.rig.preset == "mixamo" and motion.meta["feet"] == "lock"
    assert motion.meta["detector_3d_weight"] == 0.25  # the form's share of MediaPipe's 3D reached the pipeline


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail("Chromium is not installed: bash scripts/setup.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--use-gl=swiftshader",
                                                                     "--enable-unsafe-swiftshader"])
        yield launched
        launched.close()


def _canvas(page: Any) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator("#view canvas").screenshot())).convert("RGB"), dtype=float)


def _open(context: Any, url: str) -> Any:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.errors = errors
    return page


@pytest.mark.browser
def test_upload_watch_turn_play_download_refresh_share(serve: Callable[..., Server], browser: Any,
                                                       shared_data: Path, tmp_path: Path) -> None:
    server = serve()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = _open(context, server.url + "/")
    clip = shared_data / "videos" / "dance_ball_480p.mp4"
    page.set_input_files("#file", str(clip))
    page.wait_for_url("**/jobs/*", timeout=60_000)
    page.wait_for_function("document.getElementById('job-status').textContent.includes('%')", timeout=120_000)
    page.wait_for_function("window.vp3d.ready", timeout=300_000)
    assert page.locator("#job-name").text_content() == "dance_ball_480p.mp4"
    assert page.evaluate("window.vp3d.bones") == 22 and page.evaluate("window.vp3d.duration") > 10
    # The skeleton is drawn, and turns when dragged.
    before = _canvas(page)
    assert before.std() > 5  # not a blank canvas
    box = page.locator("#view canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 200, box["y"] + box["height"] / 2 + 40, steps=10)
    page.mouse.up()
    page.wait_for_timeout(300)
    assert np.abs(_canvas(page) - before).mean() > 1.0
    # Play: time moves, the skeleton moves with it.
    page.click("#play")
    page.wait_for_timeout(1500)
    assert page.evaluate("window.vp3d.time") > 0.5 and page.evaluate("window.vp3d.playing")
    # Download the BVH and read it back.
    with page.expect_download() as info:
        page.click("text=dance_ball_480p.bvh")
    saved = tmp_path / "downloaded.bvh"
    info.value.save_as(saved)
    assert read_bvh(saved).num_frames > 300
    # Refresh: the same job, the same result; a shared link in another browser context too.
    url = page.url
    page.reload()
    page.wait_for_function("window.vp3d.ready", timeout=60_000)
    assert page.locator("#job-name").text_content() == "dance_ball_480p.mp4"
    other = _open(browser.new_context(), url)
    other.wait_for_function("window.vp3d.ready", timeout=60_000)
    assert other.evaluate("window.vp3d.job.id") == url.rsplit("/", 1)[-1]
    # Back to the upload page and forward to the job again.
    page.go_back()
    page.wait_for_function("!document.getElementById('upload').hidden")
    page.go_forward()
    page.wait_for_function("window.vp3d.ready", timeout=60_000)
    assert page.errors == [] and other.errors == []


@pytest.mark.browser
def test_four_uploads_at_once_each_get_their_own_result(serve: Callable[..., Server], browser: Any,
                                                        shared_data: Path, tmp_path: Path) -> None:
    server = serve("--workers", "2")
    clips = []
    for k, name in enumerate(("taiji_green_336p.mp4", "dance_ball_480p.mp4", "taiji_green_336p.mp4",
                              "dance_ball_480p.mp4")):
        copy = tmp_path / f"clip{k}_{name}"  # two pairs of the same video under different names
        shutil.copy(shared_data / "videos" / name, copy)
        clips.append(copy)
    pages = [_open(browser.new_context(), server.url + "/") for _ in clips]
    rigs = ["mixamo", "ue", "h36m", "mixamo"]
    for page, clip, rig in zip(pages, clips, rigs, strict=True):
        page.select_option("#rig", rig)
        page.set_input_files("#file", str(clip))
    for page in pages:
        page.wait_for_function("window.vp3d.ready", timeout=600_000)
    jobs = [page.evaluate("window.vp3d.job") for page in pages]
    assert len({j["id"] for j in jobs}) == 4
    assert [j["name"] for j in jobs] == [c.name for c in clips]
    assert [j["options"]["rig"] for j in jobs] == rigs
    bones = [page.evaluate("window.vp3d.bones") for page in pages]
    assert bones == [22, 22, 17, 22]
    durations = [page.evaluate("window.vp3d.duration") for page in pages]
    assert abs(durations[0] - durations[2]) < 0.05 and abs(durations[0] - durations[1]) > 1.0
    assert all(page.errors == [] for page in pages)
