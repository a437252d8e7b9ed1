"""The multi-camera reference: calibration read the right way round, robust triangulation, and
left/right labels made to agree, on the shared 4-camera lab recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.bvh import read_bvh
from converters.joints import COCO17
from converters.skeleton_maps import mocap_joints
from vp3d_engine.multiview import fix_swaps, load_qca, pick_convention, triangulate

pytestmark = pytest.mark.shared_data
VIEWS = ("cam01", "cam02", "cam03", "cam04")


@pytest.fixture(scope="module")
def calibration(shared_data: Path) -> Path:
    return shared_data / "multiview" / "pose2sim-multiperson" / "Calib.qca.txt"


@pytest.fixture(scope="module")
def walker(shared_data: Path) -> np.ndarray:
    """COCO-17 joints of a real walk (metres), stood in the middle of the lab (Z up)."""
    coco = mocap_joints(read_bvh(shared_data / "mocap" / "cmu" / "02_01.bvh")).coco[::6][:20]
    z_up = coco[..., [0, 2, 1]] * [1.0, -1.0, 1.0]  # Y up to Z up, right-handed
    return z_up - z_up[:, :1].mean(axis=0, keepdims=True) * [1.0, 1.0, 0.0]


def test_known_points_come_back_and_a_wrong_view_is_dropped(calibration: Path, walker: np.ndarray) -> None:
    cameras = load_qca(calibration)
    rng = np.random.default_rng(0)
    xy = {n: cameras[n].project(walker) + rng.normal(0, 1.0, walker.shape[:2] + (2,)) for n in VIEWS}
    scores = {n: np.ones(walker.shape[:2]) for n in VIEWS}
    xy["cam03"][:, COCO17.index("left_wrist")] += 80.0  # one view puts one joint far off
    points, errors, used = triangulate(xy, scores, cameras)
    assert np.abs(points - walker).max() < 0.01
    assert (used[:, COCO17.index("left_wrist")] == 3).all() and (used[:, COCO17.index("nose")] == 4).all()
    assert np.nanmax(errors) < 5.0
    scores["cam02"][:, :5] = 0.0  # not seen: the others still place it
    assert np.isfinite(triangulate(xy, scores, cameras)[0]).all()


def test_left_and_right_swapped_in_a_view_are_put_back(calibration: Path, walker: np.ndarray) -> None:
    cameras = load_qca(calibration)
    xy = {n: cameras[n].project(walker) for n in VIEWS}
    scores = {n: np.ones(walker.shape[:2]) for n in VIEWS}
    flipped = {n: v.copy() for n, v in xy.items()}
    flipped["cam04"][5:15] = xy["cam04"][5:15, COCO17.flip_permutation()]  # mislabelled frames
    fixed, _, counts = fix_swaps(flipped, scores, cameras)
    assert counts == {"cam01": 0, "cam02": 0, "cam03": 0, "cam04": 10}
    for n in VIEWS:
        np.testing.assert_allclose(fixed[n], xy[n])


def test_the_calibration_is_read_the_way_that_reprojects(calibration: Path, walker: np.ndarray) -> None:
    truth = load_qca(calibration)
    xy = {n: truth[n].project(walker) for n in VIEWS}
    scores = {n: np.ones(walker.shape[:2]) for n in VIEWS}
    cameras, error = pick_convention(calibration, xy, scores)
    assert error < 1.0 and np.allclose(cameras["cam01"].rotation, truth["cam01"].rotation)
    # As measured: cam01 is 1.90 m above the lab floor, looking 22.5 degrees down.
    forward = cameras["cam01"].rotation[2]  # OpenCV's z axis, in the world
    assert cameras["cam01"].centre[2] == pytest.approx(1.8965, abs=1e-3)
    assert np.degrees(np.arcsin(forward[2])) == pytest.approx(-22.5, abs=0.2)


def test_mediapipe_3d_of_the_second_person_follows_that_person(shared_data: Path) -> None:
    """--lifter blazepose-world --person 1: MediaPipe's own 3D of the person the track follows (the
    man on cam02), frame by frame, not the first pass's (the woman)."""
    from vp3d_engine.pipeline import PipelineOptions, run_pipeline

    video = shared_data / "multiview" / "pose2sim-multiperson" / "cam02.mp4"
    results = [run_pipeline(video, PipelineOptions(lifter="blazepose-world", person=p, workers=1)) for p in (0, 1)]
    woman, man = (r.pose for r in results)
    assert (man.confidence > 0).mean() > 0.95  # a matching detection in (nearly) every frame
    assert np.abs(man.joints - woman.joints).mean() > 0.05
    # The man's 2D track is the one --person 1 gives the shipped lifter (as detected: the lifter's
    # own run puts his mirrored stretch right, see test_swaps.py).
    lifted = run_pipeline(video, PipelineOptions(person=1, workers=1, label_swaps="keep"))
    np.testing.assert_allclose(results[1].keypoints.xy, lifted.keypoints.xy)


def test_benchmark_refuses_a_bad_checkpoint_in_one_line(tmp_path: Path) -> None:
    """benchmarks/multiview_accuracy.py --checkpoint: a missing or broken lifter is one usage line
    before any detection runs, not a traceback minutes later."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "multiview_accuracy.py"
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"not a checkpoint")
    for bad in (str(tmp_path / "missing"), str(broken)):
        run = subprocess.run([sys.executable, str(script), "--checkpoint", "default", bad],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2
        assert "Traceback" not in run.stderr
        assert run.stderr.strip().splitlines()[-1].startswith(f"multiview_accuracy.py: error: --checkpoint {bad}:")
        assert run.stdout == ""
    run = subprocess.run([sys.executable, str(script), "--shares", "0.5", "2"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].endswith("give shares from 0 to 1")


def test_benchmark_blends_a_lifter_alone_result_as_the_pipeline_does(walker: np.ndarray) -> None:
    """The --shares columns: a lifter-alone result and the MediaPipe 3D it keeps, blended as
    vp3d-convert blends them; share 0 is the result as it is."""
    import json

    from converters.types import Pose3D
    from vp3d_engine.lifters.blend import blend_detector_3d

    bench = _benchmark()
    t = len(walker)
    rng = np.random.default_rng(0)
    rel = walker - walker[:, :1]
    npz = {"meta": np.array(json.dumps({"fps": 20.0})), "timestamps": np.arange(t) / 20.0,
           "joints_3d_root_relative": rel, "trajectory": walker[:, 0] + [0, 0, 4.0],
           "detector_3d": rel + rng.normal(0, 0.02, rel.shape), "detector_3d_seen": np.arange(t) % 7 > 0}
    assert np.allclose(bench.blended(npz, 0.0), walker + [0, 0, 4.0])

    def pose(j: np.ndarray, seen: np.ndarray) -> Pose3D:
        return Pose3D(joints=j, frame="camera", fps=20.0, timestamps=npz["timestamps"], confidence=seen * 1.0)

    expected = blend_detector_3d(pose(rel, np.ones(t)), pose(npz["detector_3d"], npz["detector_3d_seen"]), 0.5)
    assert np.allclose(bench.blended(npz, 0.5), expected.joints + npz["trajectory"][:, None])
    assert not np.allclose(bench.blended(npz, 0.5), bench.blended(npz, 0.0))


def _benchmark() -> Any:
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "multiview_accuracy.py"
    spec = importlib.util.spec_from_file_location("multiview_accuracy", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_tells_a_person_facing_the_camera_from_one_turned_away(walker: np.ndarray) -> None:
    """The benchmark's facing breakdown: 0 degrees for a camera the walker walks towards, 180 for
    one behind, 90 for one beside; the torso's facing agrees with where the nose points."""
    from types import SimpleNamespace

    bench = _benchmark()
    assert bench.nose_agrees(walker) > 0.9
    nose = walker[:, COCO17.index("nose")]
    ears = 0.5 * (walker[:, COCO17.index("left_ear")] + walker[:, COCO17.index("right_ear")])
    ahead = (nose - ears).mean(axis=0) * [1.0, 1.0, 0.0]
    ahead /= np.linalg.norm(ahead)
    beside = np.cross([0.0, 0.0, 1.0], ahead)
    hips = walker[:, [COCO17.index("left_hip"), COCO17.index("right_hip")]].mean(axis=(0, 1))
    for direction, low, high in ((ahead, 0, 35), (-ahead, 145, 180), (beside, 55, 125)):
        camera = SimpleNamespace(centre=hips + 20.0 * direction + [0.0, 0.0, 0.5])
        angle = bench.view_angle(walker, camera)
        assert low <= np.median(angle) <= high, (direction, angle)


def test_benchmark_lifts_perfect_2d_of_a_real_walk_close_to_the_truth(calibration: Path, walker: np.ndarray) -> None:
    """The benchmark's "lifter alone" figure: the shipped lifter given the walk as a calibrated
    camera sees it gets its limbs' directions right; a joint the reference lacks takes the
    detection's 2D."""
    from converters.joints import H36M17
    from vp3d_engine.checkpoints import load_checkpoint

    bench = _benchmark()
    camera = load_qca(calibration)["cam04"]  # the one that sees the whole walk
    world = walker.copy()
    world[5, COCO17.index("left_wrist")] = np.nan
    detected = camera.project(walker)
    pred = bench.lift_reprojected(load_checkpoint("default"), world, detected, np.arange(len(walker)) / 20.0, camera)
    assert pred.shape == (len(walker), 17, 3) and np.isfinite(pred).all()
    limbs = [COCO17.index(n) for n in bench.LIMB_JOINTS], [H36M17.index(n) for n in bench.LIMB_JOINTS]
    p_mpjpe_mm, limb_deg = bench.figures(pred[:, limbs[1]], walker[:, limbs[0]])
    assert limb_deg < 12 and p_mpjpe_mm < 80, (p_mpjpe_mm, limb_deg)
    # Scrambled 2D is far off: the figure measures the lifter, not the scoring.
    rng = np.random.default_rng(0)
    wrong = bench.lift_reprojected(load_checkpoint("default"), walker[:, rng.permutation(17)], detected,
                                   np.arange(len(walker)) / 20.0, camera)
    assert bench.figures(wrong[:, limbs[1]], walker[:, limbs[0]])[1] > 2 * limb_deg


def test_benchmark_breakdowns_pair_each_column_with_its_own_frames(walker: np.ndarray,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Columns scored on different frames: each column's errors are binned by its own frames' view
    angles (here the turned-away half of the frames is missing from one column, and the other
    column's left forearm is wrong on exactly those frames)."""
    bench = _benchmark()
    truth = walker[:, [COCO17.index(n) for n in bench.LIMB_JOINTS]]
    t = len(truth)
    angle = np.where(np.arange(t) < t // 2, 10.0, 170.0)  # facing, then turned away
    gaps = truth.copy()
    gaps[t // 2:] = np.nan
    bent = truth.copy()
    wrist, elbow = bench.LIMB_JOINTS.index("left_wrist"), bench.LIMB_JOINTS.index("left_elbow")
    bent[t // 2:, wrist] = 2 * bent[t // 2:, elbow] - bent[t // 2:, wrist]  # forearm reversed: 180 degrees
    columns = []
    for pred in (gaps, bent):
        ok, errors = bench.limb_errors(pred, truth)
        columns.append((angle[ok], errors))
    capsys.readouterr()
    bench.breakdowns([("man", columns)], ["gaps", "bent"])
    lines = capsys.readouterr().out.splitlines()
    facing = next(line for line in lines if line.startswith("man    facing")).split("camera")[1].split()
    away = next(line for line in lines if line.startswith("man    turned")).split("away")[1].split()
    assert float(facing[0]) < 1.0 and float(facing[1]) < 1.0
    assert away[0] == "nan" and float(away[1]) > 5.0  # the bent frames are the turned-away ones
