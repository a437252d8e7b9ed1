"""Synthetic cameras, projection and the detector noise model."""

from __future__ import annotations

import numpy as np
import pytest

from converters.joints import COCO17, H36M17
from vp3d_engine.normalization import normalize_keypoints, unnormalize_keypoints
from vp3d_engine.training.batches import WindowSampler, render_view
from vp3d_engine.training.mocap_data import Take, action_of, is_validation, resample
from vp3d_engine.training.synthetic import (
    BodyShape,
    CameraRanges,
    NoiseModel,
    project,
    project_world,
    sample_cameras,
    world_to_camera,
)


def _walking_take(frames: int = 120, metres: float = 2.0) -> Take:
    """A stick figure walking ``metres`` along +X: enough structure for geometry checks."""
    rng = np.random.default_rng(0)
    base = rng.normal(scale=0.25, size=(17, 3)) + [0.0, 1.0, 0.0]
    base[0] = [0.0, 1.0, 0.0]
    shift = np.linspace(0, metres, frames)[:, None, None] * np.array([1.0, 0.0, 0.0])
    h36m = (base[None] + shift).astype(np.float32)
    coco = (rng.normal(scale=0.25, size=(17, 3)) + [0.0, 1.2, 0.0] + shift).astype(np.float32)
    # Shoulders are the same points in both sets; keep that so projections can be compared.
    coco[:, COCO17.index("left_shoulder")] = h36m[:, H36M17.index("left_shoulder")]
    coco[:, COCO17.index("right_shoulder")] = h36m[:, H36M17.index("right_shoulder")]
    return Take(name="walk", action="walk", h36m=h36m, coco=coco, fps=30.0)


def test_cameras_keep_the_subject_in_front_and_mostly_in_frame() -> None:
    rng = np.random.default_rng(1)
    take = _walking_take()
    ranges = CameraRanges()
    subject = np.repeat(take.h36m[None, :, 0].astype(np.float64), 500, axis=0)
    cams = sample_cameras(rng, subject, ranges)
    depth = world_to_camera(subject, cams)[..., 2]
    assert depth.min() >= ranges.min_depth_m - 1e-9
    # Camera rotations are proper rotations.
    assert np.allclose(np.linalg.det(cams.R), 1.0)
    uv = project(world_to_camera(subject[:, 60:61], cams), cams)[:, 0]
    inside = (uv >= 0).all(-1) & (uv[:, 0] <= cams.size[:, 0]) & (uv[:, 1] <= cams.size[:, 1])
    assert inside.mean() > 0.95


def test_camera_space_is_x_right_y_down_z_forward() -> None:
    rng = np.random.default_rng(2)
    take = _walking_take()
    view = render_view(take, rng, CameraRanges(pitch_deg=(0.0, 0.0), roll_std_deg=0.0, off_centre=0.0), None)
    # A level camera: camera y is world height, negated (y down), relative to the pelvis.
    world_up = take.h36m[:, :, 1] - take.h36m[:, :1, 1]
    assert np.allclose(view.pose[:, :, 1], -world_up, atol=1e-5)
    # Pixels and camera-space targets describe the same points: reproject the shoulders.
    w, h = view.size
    shoulder_2d = view.pixels[:, COCO17.index("left_shoulder")]
    p = view.pose[:, H36M17.index("left_shoulder")] + view.trajectory
    assert np.allclose(normalize_keypoints(shoulder_2d, w, h), view.inputs[:, COCO17.index("left_shoulder")],
                       atol=1e-5)
    assert np.allclose(view.focal * p[:, :2] / p[:, 2:] + view.centre, shoulder_2d, atol=1e-2)


def test_normalisation_round_trip_and_mirror() -> None:
    xy = np.random.default_rng(3).uniform(0, 640, size=(10, 17, 2))
    n = normalize_keypoints(xy, 640, 480)
    assert np.allclose(unnormalize_keypoints(n, 640, 480), xy)
    mirrored = xy.copy()
    mirrored[..., 0] = 640 - mirrored[..., 0]
    assert np.allclose(normalize_keypoints(mirrored, 640, 480)[..., 0], -n[..., 0])
    assert np.allclose(normalize_keypoints(np.array([[320.0, 240.0]]), 640, 480), [[0.0, 0.0]])


def test_detector_noise_scales_with_person_size_and_marks_missing_joints() -> None:
    rng = np.random.default_rng(4)
    take = _walking_take()
    small = np.repeat(take.coco[None, :, :, :2].astype(np.float64) * 100, 8, axis=0)
    big = small * 4
    noise = NoiseModel(outlier_rate=0.0, swap_rate=0.0, missing_rate=0.0)
    level = np.ones(8)
    e_small = np.abs(noise.apply(np.random.default_rng(5), small, level)[0] - small).mean()
    e_big = np.abs(noise.apply(np.random.default_rng(5), big, level)[0] - big).mean()
    assert e_big == pytest.approx(4 * e_small, rel=1e-6)
    height = np.ptp(small[..., 1], axis=-1).max()
    assert 0.003 * height < e_small < 0.03 * height
    clean, score, valid = noise.apply(rng, small, np.zeros(8))
    assert np.allclose(clean, small) and valid.all() and (score > 0.8).all()
    gappy = NoiseModel(missing_rate=0.2)
    out, score, valid = gappy.apply(rng, small, level)
    assert 0.1 < 1 - valid.mean() < 0.3
    assert (score[~valid] == 0).all()
    n, t, k = np.nonzero(~valid)
    ok = t > 0
    # A missing joint is held where it was last seen.
    assert np.allclose(out[n[ok], t[ok], k[ok]], out[n[ok], t[ok] - 1, k[ok]])


def test_window_sampler_shapes_flip_and_edges() -> None:
    take = _walking_take(30)
    sampler = WindowSampler([take], receptive_field=27, noise=NoiseModel(), flip=True)
    assert sampler.num_frames == 30
    batch = sampler.sample(np.random.default_rng(6), 64)
    assert batch.inputs.shape == (64, 27, 17, 2) and batch.inputs.dtype == np.float32
    assert batch.pose.shape == (64, 1, 17, 3) and np.allclose(batch.pose[:, :, 0], 0)
    assert batch.trajectory.shape == (64, 1, 3) and (batch.trajectory[..., 2] > 1.0).all()
    # Bone lengths survive camera transform and flip (rigid motions and mirrors).
    pose = batch.pose[:, 0]
    bones = np.linalg.norm(pose[:, 1:] - pose[:, list(H36M17.parents[1:])], axis=-1)
    ref = np.linalg.norm(take.h36m[0, 1:] - take.h36m[0, list(H36M17.parents[1:])], axis=-1)
    # (a flipped sample swaps left and right bones, so compare the sorted lengths)
    assert np.allclose(np.sort(bones, axis=1), np.sort(ref)[None], atol=1e-4)


def test_framing_a_longer_span_sees_travellers_off_axis_far_and_whole() -> None:
    """A camera aimed at and framing a stretch of a walk around its window, as a static camera
    filming the whole walk: the person at the window is off the camera's axis (towards the edges
    of the picture) and further away, and every point of the stretch lands inside the image."""
    take = _walking_take(300, metres=12.0)  # 12 m in 10 s; windows of 27 frames cover 1.1 m of it
    off_axis, depth = {}, {}
    for span in (0, 300):
        sampler = WindowSampler([take], receptive_field=27, noise=None, flip=False, frame_span=span)
        root = sampler.sample(np.random.default_rng(3), 512).trajectory[:, 0]
        angle = np.degrees(np.arctan2(np.linalg.norm(root[:, :2], axis=1), root[:, 2]))
        off_axis[span] = np.percentile(angle, 90)
        depth[span] = np.median(root[:, 2])
    # (measured: 90th percentile 12 -> 16.5 degrees, median depth 4.7 -> 6.9 m)
    assert off_axis[300] > off_axis[0] * 1.2 and depth[300] > depth[0] * 1.3
    # Whatever stretch is framed, it is inside the image: cameras from the sampler's own draw.
    sampler = WindowSampler([take], receptive_field=27, noise=None, flip=False, frame_span=300)
    rng = np.random.default_rng(4)
    pick = rng.integers(sampler.num_frames, size=64)
    idx = sampler.window_starts[pick, None] + np.arange(27)
    window = sampler.coco[idx][:, ::4].reshape(64, -1, 3)
    aim, framed = sampler._framed(rng, pick, sampler.h36m[idx, 0].astype(np.float64), window)
    assert aim.shape == (64, 16, 3) and framed.shape[1] == window.shape[1] + 16 * 17
    cams = sample_cameras(rng, aim, CameraRanges(), keep_in_frame=framed)
    uv = project_world(framed.astype(np.float64), cams)
    assert (uv >= 0).all() and (uv <= cams.size[:, None]).all()


def test_split_resample_and_action_names() -> None:
    names = [f"dataset-2_walk_normal_{i:03d}" for i in range(400)]
    held = [n for n in names if is_validation(n, 0.1)]
    assert 20 < len(held) < 60
    assert held == [n for n in names if is_validation(n, 0.1)]  # stable
    assert action_of("dataset-1_walk-back_proud_002") == "walk-back"
    assert action_of("131_02") == "cmu"
    x = np.arange(121, dtype=np.float64)[:, None]  # 1 s at 120 fps
    y = resample(x, 120.0, 30.0)
    assert y.shape == (31, 1) and np.allclose(y[:, 0], np.arange(0, 121, 4))


def test_chunked_windows_cover_consecutive_frames() -> None:
    take = _walking_take(60)
    sampler = WindowSampler([take], receptive_field=9, noise=None, flip=False, outputs=16)
    assert sampler.num_frames == 60 - 16 + 1
    batch = sampler.sample(np.random.default_rng(8), 4)
    assert batch.inputs.shape == (4, 9 + 16 - 1, 17, 2)
    assert batch.pose.shape == (4, 16, 17, 3) and batch.trajectory.shape == (4, 16, 3)
    # The figure walks along world +X at constant speed: consecutive outputs move the root steadily.
    step = np.linalg.norm(np.diff(batch.trajectory, axis=1), axis=-1)
    assert np.allclose(step, 2 / 59, rtol=1e-3)


def test_fused_projection_matches_the_two_step_one() -> None:
    rng = np.random.default_rng(9)
    pts = rng.normal(size=(16, 30, 17, 3)) + [0.0, 1.0, 0.0]
    cams = sample_cameras(rng, pts[:, :, 0], CameraRanges())
    two_step = project(world_to_camera(pts, cams), cams)
    assert np.allclose(project_world(pts, cams), two_step, rtol=1e-9, atol=1e-6)
    assert np.allclose(project_world(pts.astype(np.float32), cams), two_step, rtol=1e-4, atol=1e-2)


def test_cameras_frame_the_whole_action() -> None:
    # A take that travels 8 m: every joint of every frame stays in the picture.
    frames = 240
    rng = np.random.default_rng(10)
    base = rng.normal(scale=0.3, size=(17, 3)) + [0.0, 1.0, 0.0]
    path = np.linspace(-4, 4, frames)[:, None, None] * np.array([1.0, 0.0, 0.6])
    take = Take(name="dash", action="dash", h36m=(base + path).astype(np.float32),
                coco=(base + path).astype(np.float32), fps=30.0)
    for _ in range(20):
        view = render_view(take, rng, CameraRanges(), None)
        w, h = view.size
        assert (view.pixels >= 0).all() and (view.pixels[..., 0] <= w).all() and (view.pixels[..., 1] <= h).all()
        assert view.trajectory[:, 2].min() >= CameraRanges().min_depth_m - 1e-6


def _bone(points: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)


def test_body_shape_changes_proportions_of_input_and_target_alike() -> None:
    take = _walking_take(20)
    coco = take.coco.copy()
    for c, h in ((11, 4), (12, 1), (13, 5), (14, 2), (15, 6), (16, 3), (7, 12), (8, 15), (9, 13), (10, 16)):
        coco[:, c] = take.h36m[:, h]  # limb joints are the same points in both sets, as from a BVH
    h36m, coco = np.repeat(take.h36m[None], 3, 0), np.repeat(coco[None], 3, 0)
    shape = BodyShape(probability=1.0)
    scales = shape.sample(np.random.default_rng(0), 3)
    scales["ear_width"][:] = 0.5
    h2, c2 = shape.apply(h36m, coco, scales)
    assert np.array_equal(h2[:, :, 0], h36m[:, :, 0])  # the pelvis (the trajectory) stays
    for c, h in ((11, 4), (12, 1), (15, 6), (16, 3), (5, 11), (6, 14), (9, 13), (10, 16)):
        np.testing.assert_allclose(c2[:, :, c], h2[:, :, h], atol=1e-6)  # the 2D's points are the target's
    for (a, b), part in (((4, 5), "thigh"), ((12, 13), "forearm"), ((0, 8), "torso"), ((1, 4), "hip_width")):
        ratio = _bone(h2, a, b) / _bone(h36m, a, b)
        assert np.abs(ratio - scales[part][:, None]).max() < 1e-5, part
    ears = _bone(c2, 3, 4) / _bone(coco, 3, 4)  # the head's scale, and the ears' own: the input only
    assert np.abs(ears - 0.5 * scales["head"][:, None]).max() < 1e-5
    # Only the target frames of the 3D, as training asks: the same numbers, the 2D whole.
    h4, c4 = shape.apply(h36m, coco, scales, frames=np.array([3, 7]))
    assert h4.shape == (3, 2, 17, 3) and np.array_equal(h4, h2[:, [3, 7]]) and np.array_equal(c4, c2)
    # Windows left as they are: a probability of 0 changes nothing.
    same = BodyShape(probability=0.0)
    h3, c3 = same.apply(h36m, coco, same.sample(np.random.default_rng(0), 3))
    np.testing.assert_allclose(h3, h36m, atol=1e-6)
    np.testing.assert_allclose(c3, coco, atol=1e-6)


def test_portrait_cameras_are_narrow_across() -> None:
    """The field of view is drawn across the long side: a portrait phone clip is narrow across, as
    real ones are (the shared 4-camera recording: 36 degrees across 1088 pixels)."""
    rng = np.random.default_rng(3)
    subject = np.zeros((400, 1, 3)) + [0.0, 1.0, 0.0]
    ranges = CameraRanges(image_sizes=((1080, 1920),))
    cams = sample_cameras(rng, subject, ranges)
    across = np.degrees(2 * np.arctan(cams.size[:, 0] / 2 / cams.f))
    along = np.degrees(2 * np.arctan(cams.size[:, 1] / 2 / cams.f))
    assert along.min() >= ranges.long_side_fov_deg[0] - 1e-6 and along.max() <= ranges.long_side_fov_deg[1] + 1e-6
    assert across.min() < 36.0 and across.max() < 52.0
