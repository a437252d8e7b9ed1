"""The video pipeline and `vp3d-convert` on real clips with the real detector and shipped lifter."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gltf_tools import issue_lines, validate_gltf

from converters.bvh import forward_kinematics as bvh_fk
from converters.bvh import read_bvh
from converters.joints import COCO17, H36M17
from vp3d_engine.convert_cli import main
from vp3d_engine.pipeline import PipelineOptions, PipelineResult, run_pipeline

pytestmark = pytest.mark.shared_data

BONES = {  # (joint, joint): plausible adult/child length range in metres
    ("left_hip", "left_knee"): (0.25, 0.6), ("right_hip", "right_knee"): (0.25, 0.6),
    ("left_knee", "left_ankle"): (0.25, 0.6), ("right_knee", "right_ankle"): (0.25, 0.6),
    ("left_shoulder", "left_elbow"): (0.15, 0.4), ("right_shoulder", "right_elbow"): (0.15, 0.4),
    ("left_elbow", "left_wrist"): (0.12, 0.35), ("right_elbow", "right_wrist"): (0.12, 0.35),
}


@pytest.fixture(scope="module")
def taiji(shared_data: Path) -> PipelineResult:
    return run_pipeline(shared_data / "videos" / "taiji_green_336p.mp4", PipelineOptions(end=10.0))


@pytest.fixture(scope="module")
def taiji_alone(shared_data: Path) -> PipelineResult:
    """The same clip lifted without MediaPipe's 3D blended in."""
    return run_pipeline(shared_data / "videos" / "taiji_green_336p.mp4", PipelineOptions(end=10.0, mediapipe_3d=0.0))


def test_a_person_is_found_and_lifted_to_plausible_3d(taiji: PipelineResult) -> None:
    kp, pose = taiji.keypoints, taiji.pose
    assert kp.image_size == (448, 336) and kp.num_frames == pose.num_frames == 150
    assert taiji.track.frames_present > 0.95
    j = {n: pose.joints[:, i] for i, n in enumerate(H36M17.names)}
    for (a, b), (lo, hi) in BONES.items():
        length = np.linalg.norm(j[a] - j[b], axis=-1)
        assert lo < np.median(length) < hi, (a, b, np.median(length))
        # Stable over time: the lifter has no bone-length constraint (the rig solver adds one), and
        # arms seen end-on vary most; measured 0.05-0.17 for legs, up to 0.36 for forearms.
        limit = 0.25 if "hip" in a or "knee" in a else 0.45
        assert length.std() / length.mean() < limit, (a, b)
    # Camera y points down: the feet are below the head in (nearly) every frame.
    feet = np.maximum(j["left_ankle"][:, 1], j["right_ankle"][:, 1])
    assert (feet > j["head_top"][:, 1] + 0.8).mean() > 0.95
    # Left and right agree with the image: the 3D hips are ordered along x as the 2D hips are.
    sep2d = kp.xy[:, COCO17.index("left_hip"), 0] - kp.xy[:, COCO17.index("right_hip"), 0]
    sep3d = j["left_hip"][:, 0] - j["right_hip"][:, 0]
    clear = np.abs(sep2d) > 5
    assert (np.sign(sep2d[clear]) == np.sign(sep3d[clear])).mean() > 0.9
    assert pose.trajectory is not None and (pose.trajectory[:, 2] > 0.5).all()


def test_timestamps_follow_the_video(taiji: PipelineResult) -> None:
    t = taiji.keypoints.timestamps
    assert t[0] == pytest.approx(0.0) and np.allclose(np.diff(t), 1 / 15, atol=1e-3)
    assert taiji.pose.fps == pytest.approx(15.0)


def test_convert_command_writes_files_and_reports_bad_inputs(shared_data: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    videos = tmp_path / "in"
    videos.mkdir()
    shutil.copy(shared_data / "videos" / "dance_ball_480p.mp4", videos / "ball.mp4")
    (videos / "broken.mp4").write_bytes(b"\x00" * 4096)
    out = tmp_path / "out"
    code = main([str(videos), "--out", str(out), "--npz", "--json", "--bvh", "--end", "3", "--quiet"])
    assert code == 2  # one input failed, the other was converted
    captured = capsys.readouterr()
    err = captured.err
    assert "broken.mp4" in err and "not a video" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["ball.bvh", "ball.json", "ball.npz"]
    with np.load(out / "ball.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        assert npz["joints_3d"].shape == (npz["keypoints_2d"].shape[0], 17, 3)
        assert meta["joint_names_3d"] == list(H36M17.names) and meta["image_size"] == [853, 480]
        assert np.isfinite(npz["joints_3d"]).all() and npz["valid"].dtype == bool
        # The line says how much was interpolated and how much MediaPipe placed unseen.
        hidden = 1 - npz["valid"].mean() - meta["joints_filled"]
        line = next(x for x in (captured.out + captured.err).splitlines() if "ball.mp4: " in x and "frames" in x)
        said = f"{meta['joints_filled']:.1%} of joints filled, {hidden:.1%} hidden (the detector's estimate kept)"
        assert said in line, line
    data = json.loads((out / "ball.json").read_text())
    assert len(data["joints_3d"]) == len(data["timestamps"]) == data["meta"]["decode"]["frames"]
    # The BVH stands upright (Y up, cm), plays at the video's rate, and is re-made from the npz alone.
    bvh = read_bvh(out / "ball.bvh")
    assert bvh.fps == pytest.approx(25.05, abs=0.05) and abs(bvh.num_frames - len(data["timestamps"])) <= 1
    pos, _ = bvh_fk(bvh, scale=0.01)
    names = list(bvh.names)
    assert (pos[:, names.index("head_top"), 1] > pos[:, names.index("left_ankle"), 1] + 1.0).mean() > 0.95
    (out / "ball.bvh").unlink()
    assert main([str(out / "ball.npz"), "--bvh", "--out", str(out)]) == 0
    assert read_bvh(out / "ball.bvh").num_frames == bvh.num_frames
    assert main([str(out / "ball.npz"), "--json", "--out", str(out)]) == 2
    # The same result on the Mixamo rig, as BVH, GLB and FBX, without re-running anything.
    formats = ["--bvh", "--glb"] + (["--fbx"] if importlib.util.find_spec("bpy") else [])
    assert main([str(out / "ball.npz"), *formats, "--rig", "mixamo", "--out", str(out / "mixamo")]) == 0
    mixamo = read_bvh(out / "mixamo" / "ball.bvh")
    assert mixamo.names[0] == "mixamorig:Hips" and "mixamorig:LeftToeBase" in mixamo.names
    assert mixamo.num_frames == bvh.num_frames
    report = validate_gltf(out / "mixamo" / "ball.glb")
    assert report["issues"]["numErrors"] == 0, issue_lines(report)
    if "--fbx" in formats:  # Blender opens it standing up, every frame there
        from converters.blender_adapter import read_armature_positions

        fbx = read_armature_positions(out / "mixamo" / "ball.fbx")
        assert fbx.bone_names == list(mixamo.names) and fbx.positions.shape[0] == bvh.num_frames
        head, hips = fbx.bone_names.index("mixamorig:Head"), fbx.bone_names.index("mixamorig:Hips")
        assert (fbx.positions[:, head, 1] > fbx.positions[:, hips, 1] + 0.3).mean() > 0.95
    # Its 2D can be lifted again (here with the same checkpoint: the same 3D, MediaPipe's own 3D,
    # which the result keeps, blended in again) without detection.
    again = tmp_path / "again"
    assert main([str(videos / "ball.mp4"), "--keypoints", str(out / "ball.npz"), "--out", str(again), "--quiet"]) == 0
    with np.load(out / "ball.npz") as first, np.load(again / "ball.npz") as second:
        assert np.abs(first["joints_3d"] - second["joints_3d"]).max() < 1e-3
        # MediaPipe's own estimates of its hidden joints come back as they were written.
        assert json.loads(str(first["meta"]))["hidden_joints_placed"] is True
        assert json.loads(str(second["meta"]))["detector_3d_weight"] == 0.5
        assert np.array_equal(first["detector_3d"], second["detector_3d"])
        assert np.array_equal(first["keypoints_2d"], second["keypoints_2d"])
        assert np.array_equal(first["valid"], second["valid"])


def test_keypoints_from_another_tool_skip_detection(taiji: PipelineResult, taiji_alone: PipelineResult,
                                                    shared_data: Path, tmp_path: Path) -> None:
    # Write the detector's own 2D as an OpenPose BODY_25 folder, then lift from it.
    body25_of_coco = {0: 0, 2: 15, 1: 16, 4: 17, 3: 18, 6: 2, 8: 3, 10: 4, 5: 5, 7: 6, 9: 7, 12: 9, 14: 10,
                      16: 11, 11: 12, 13: 13, 15: 14}
    folder = tmp_path / "openpose"
    folder.mkdir()
    kp = taiji.keypoints
    for t in range(kp.num_frames):
        flat = np.zeros((25, 3))
        for c, b in body25_of_coco.items():
            flat[b] = [*kp.xy[t, c], max(kp.score[t, c], 0.01)]
        people = [{"pose_keypoints_2d": flat.ravel().tolist()}]
        (folder / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    result = run_pipeline(shared_data / "videos" / "taiji_green_336p.mp4", PipelineOptions(keypoints=folder))
    assert result.keypoints.num_frames == kp.num_frames
    # A keypoint file holds no MediaPipe 3D: the lifter alone, as from the video with --mediapipe-3d 0.
    assert result.pose.meta["detector_3d_weight"] == 0.0
    assert np.abs(result.pose.joints - taiji_alone.pose.joints).mean() < 0.02


def test_blazepose_world_lifter_gives_a_comparable_pose(taiji: PipelineResult, shared_data: Path) -> None:
    from vp3d_engine import metrics

    other = run_pipeline(shared_data / "videos" / "taiji_green_336p.mp4",
                         PipelineOptions(end=10.0, lifter="blazepose-world"))
    assert other.pose.joints.shape == taiji.pose.joints.shape and other.pose.trajectory is None
    assert other.pose.meta["lifter"] == "blazepose-world"
    # Two independent 3D estimates of the same clip agree up to alignment.
    assert metrics.p_mpjpe(other.pose.joints, taiji.pose.joints) < 0.12  # measured 0.082 on this clip
    thigh = np.linalg.norm(other.pose.joints[:, 1] - other.pose.joints[:, 2], axis=-1)
    assert 0.25 < np.median(thigh) < 0.6


def test_mediapipe_3d_is_blended_into_the_lifted_pose(taiji: PipelineResult, taiji_alone: PipelineResult,
                                                      shared_data: Path) -> None:
    from vp3d_engine import metrics

    mediapipe = run_pipeline(shared_data / "videos" / "taiji_green_336p.mp4",
                             PipelineOptions(end=10.0, lifter="blazepose-world")).pose.joints
    blended, alone = taiji.pose.joints, taiji_alone.pose.joints
    assert taiji.pose.meta["detector_3d_weight"] == 0.5 and taiji_alone.pose.meta["detector_3d_weight"] == 0.0
    # Half way between the two: nearer each than they are to each other (about half as far).
    apart = metrics.p_mpjpe(mediapipe, alone)
    assert 0.3 * apart < metrics.p_mpjpe(blended, alone) < 0.7 * apart
    assert 0.3 * apart < metrics.p_mpjpe(blended, mediapipe) < 0.7 * apart
    # Only the body's articulation changes: same 2D, same root path, the body turned the same way
    # (the torso within a few degrees of the lifted one in every frame).
    assert np.array_equal(taiji.keypoints.xy, taiji_alone.keypoints.xy)
    assert taiji.pose.trajectory is not None and taiji_alone.pose.trajectory is not None
    assert np.allclose(taiji.pose.trajectory, taiji_alone.pose.trajectory)

    def across(j: np.ndarray) -> np.ndarray:
        v = j[:, H36M17.index("left_shoulder")] - j[:, H36M17.index("right_shoulder")]
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    cosine = (across(blended) * across(alone)).sum(axis=-1)
    assert np.degrees(np.arccos(np.clip(cosine, -1, 1))).max() < 20
    # No shake added: frame-to-frame acceleration stays near the lifter's (MediaPipe's own is
    # several times larger; its 3D is smoothed over time before blending).

    def shake(j: np.ndarray) -> float:
        rel = j - j[:, :1]
        return float(np.linalg.norm(np.diff(rel, 2, axis=0), axis=-1).mean())

    assert shake(mediapipe) > 2 * shake(alone)
    assert shake(blended) < 1.5 * shake(alone)


def test_truncated_videos(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import av

    src = shared_data / "videos" / "dance_ball_480p.mp4"
    data = src.read_bytes()
    # This mp4 keeps its index at the end: cut short, nothing can be read, and the user is told.
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(data[: len(data) * 2 // 5])
    assert main([str(cut_mp4), "--out", str(tmp_path), "--quiet"]) == 2
    assert "is the file complete" in capsys.readouterr().err
    # A streamable container (the same packets remuxed to Matroska) cut short: the frames that are
    # there are converted.
    mkv = tmp_path / "ball.mkv"
    with av.open(str(src)) as inp, av.open(str(mkv), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    cut_mkv = tmp_path / "cut.mkv"
    cut_mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 2 // 5])
    assert main([str(cut_mkv), "--out", str(tmp_path), "--quiet"]) == 0
    assert "cut.mkv: " in capsys.readouterr().out
    with np.load(tmp_path / "cut.npz", allow_pickle=False) as npz:
        frames = npz["joints_3d"].shape[0]
    assert 60 < frames < 338


def test_an_original_videopose3d_bin_lifts_the_same_keypoints(taiji: PipelineResult, tmp_path: Path) -> None:
    from test_original_weights import write_original_bin  # the released file layout, random weights

    from vp3d_engine.checkpoints import load_checkpoint
    from vp3d_engine.lifting import lift_keypoints

    path = tmp_path / "pretrained_h36m_detectron_coco.bin"
    write_original_bin(path, [3, 3, 3], 16)  # random weights in the released layout
    pose = lift_keypoints(taiji.keypoints, load_checkpoint(path))
    assert pose.joints.shape == taiji.pose.joints.shape and np.isfinite(pose.joints).all()
    assert pose.trajectory is not None and pose.meta["checkpoint"].endswith(".bin")


def test_a_failing_detector_stops_decoding_without_leaking_the_thread(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from converters.errors import ConversionError
    from vp3d_engine.detectors import registry

    class Failing:
        name, batch_size = "failing", 1

        def __init__(self) -> None:
            self.seen = 0

        def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
            time.sleep(0.05)  # slower than decoding, so the decoder finishes and fills the queue
            self.seen += 1
            if self.seen == 5:
                failed_at.append(time.perf_counter())
                raise ConversionError("detector broke")
            return [np.zeros((0, 17, 3))]

        def extras(self) -> dict:
            return {}

        def close(self) -> None:
            pass

    failed_at: list[float] = []
    monkeypatch.setattr(registry, "create_detector", lambda name, device="cpu": Failing())
    from test_video import write_video

    clip = tmp_path / "short.mp4"
    write_video(clip, frames=21)  # 16 queued + 5 detected: the decoder waits to hand over "end"
    with pytest.raises(ConversionError, match="detector broke"):
        run_pipeline(clip, PipelineOptions())
    # The decoder, far ahead with a full queue, is stopped at once (not after join's 5 s timeout).
    assert time.perf_counter() - failed_at[0] < 2.0
    time.sleep(0.3)
    assert not any(t.name == "vp3d-decode" and t.is_alive() for t in threading.enumerate())
