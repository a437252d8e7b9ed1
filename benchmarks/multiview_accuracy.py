"""The lifter on real video against a 4-camera reference (pose2sim-multiperson, 100 frames at 60 fps).

Reference: MediaPipe 2D from every camera, left/right labels checked across views, undistorted and
triangulated per joint, dropping views that reproject more than 30 px away (``vp3d_engine.multiview``).
Each single camera is then converted with ``vp3d-convert`` (as users run it: the shipped lifter
with the default left/right label-swap fix and MediaPipe's own 3D blended in at the default share;
the lifter alone, ``--mediapipe-3d 0``; the default with the detector's labels kept; and ``--lifter
blazepose-world``, MediaPipe's own 3D, as the anchor) and scored on the 12 limb joints (shoulders,
elbows, wrists, hips, knees, ankles) on the frames the reference has them:

- P-MPJPE (mm): after the per-frame similarity transform that best aligns the prediction;
- limb direction error (degrees): the 8 limbs (upper arms, forearms, thighs, shins) after the
  per-frame rotation that best aligns the prediction, mean angle.

The reference's own uncertainty: each camera left out in turn, the 3-camera reference against the
4-camera one (same figures). The reference is built from MediaPipe keypoints, so it favours
MediaPipe's joint placement (where its hips sit, for one); limb directions are the fairer figure:
a constant offset of a joint along its limb does not change them. It also holds the scored
camera's own 2D, whose errors MediaPipe's 3D from that camera shares; a second table therefore
scores every camera against the reference triangulated without it (independent of the scored
view, noisier where only two views remain).
Breakdowns of the limb direction error (all-camera reference): by limb and person, and by where
the person faces relative to the scored camera (facing it, side on, turned away; from the
reference's torso), with each person's distance from each camera.

What the lifter alone costs: the first checkpoint also lifts the reference reprojected into the
scored camera (labels and positions as the other views place them; where the reference lacks a
joint, the detection's), scored like the rest. What the detected 2D costs on top is the
difference; a lifter that trails MediaPipe's 3D even from this 2D lacks what MediaPipe reads from
the image (depth order, which way the person faces).

People: the man (``--person 1``) and the woman (``--person 0``). cam03 cannot tell them apart
(one person per BlazePose pass, and she stands behind him): its detections join the reference only
where they agree with the other views, and cam03 is scored for the woman only, where it keeps her.

    python benchmarks/multiview_accuracy.py [--checkpoint NAME_OR_DIR [NAME_OR_DIR ...]] [--shares W ...]

Several checkpoints are scored side by side in one run (columns vp3d, vp3d #2, ...). ``--shares``
adds the first with MediaPipe's 3D blended in at other shares than the default (columns ``share
W``; default 0.25 and 0.75; ``--shares`` alone: none).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.joints import COCO17, H36M17  # noqa: E402
from vp3d_engine.convert import ConvertOptions, Models, convert  # noqa: E402
from vp3d_engine.metrics import p_mpjpe  # noqa: E402
from vp3d_engine.multiview import fix_swaps, pick_convention, triangulate  # noqa: E402
from vp3d_engine.pipeline import PipelineOptions  # noqa: E402
from vp3d_engine.training.synthetic import NoiseModel  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "multiview" / "pose2sim-multiperson"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
LIMB_JOINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
               "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
LIMBS = [(f"{s}_{a}", f"{s}_{b}") for s in ("left", "right")
         for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))]
PEOPLE = {"man": 1, "woman": 0}
SCORED = {"man": ("cam01", "cam02", "cam04"), "woman": CAMERAS}


def _kabsch(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per frame, ``pred (T,J,3)`` centred and turned onto ``truth`` (no scale)."""
    p = pred - pred.mean(axis=1, keepdims=True)
    t = truth - truth.mean(axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(np.swapaxes(p, 1, 2) @ t)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= d[:, None]
    return p @ (u @ vt)


def limb_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames where both 12-joint sequences are whole, and there the direction error (degrees) of
    each of the 8 limbs ``(frames, 8)`` after the per-frame rotation that best aligns ``pred``."""
    ok = np.isfinite(truth).all(axis=(1, 2)) & np.isfinite(pred).all(axis=(1, 2))
    aligned, truth = _kabsch(pred[ok], truth[ok]), truth[ok]
    angles = []
    for a, b in LIMBS:
        i, j = LIMB_JOINTS.index(a), LIMB_JOINTS.index(b)
        u, v = aligned[:, j] - aligned[:, i], truth[:, j] - truth[:, i]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return ok, np.stack(angles, axis=1).reshape(-1, len(LIMBS))


def figures(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """P-MPJPE (mm) and mean limb direction error (degrees) of 12-joint sequences (same order)."""
    ok, angles = limb_errors(pred, truth)
    return p_mpjpe(pred[ok], truth[ok]) * 1000, float(angles.mean())


VIEW_BINS = ((0, 60, "facing the camera"), (60, 120, "side on"), (120, 181, "turned away"))


def torso_forward(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame of world COCO-17 ``points (T,17,3)``: where the torso faces (across the body from
    right to left, crossed with hips to shoulders), the hips' midpoint and the hips-to-shoulders vector."""
    j = COCO17.index
    hips = 0.5 * (points[:, j("left_hip")] + points[:, j("right_hip")])
    up = 0.5 * (points[:, j("left_shoulder")] + points[:, j("right_shoulder")]) - hips
    across = (points[:, j("left_hip")] - points[:, j("right_hip")]
              + points[:, j("left_shoulder")] - points[:, j("right_shoulder")])
    return np.cross(across, up), hips, up


def nose_agrees(points: np.ndarray) -> float:
    """Share of frames where the nose is ahead of the ears' midpoint along ``torso_forward``: the
    check that the facing direction points the way the face does."""
    j = COCO17.index
    forward, _, _ = torso_forward(points)
    face = points[:, j("nose")] - 0.5 * (points[:, j("left_ear")] + points[:, j("right_ear")])
    dot = (forward * face).sum(-1)
    return float((dot[np.isfinite(dot)] > 0).mean())


def view_angle(points: np.ndarray, camera: Any) -> np.ndarray:
    """Per frame of world COCO-17 ``points (T,17,3)``: degrees between where the torso faces
    (``torso_forward``, horizontal part) and the direction to ``camera``: 0 facing it, 180 turned
    away; NaN where a torso joint is missing."""
    forward, hips, up = torso_forward(points)
    to_camera = camera.centre[None] - hips
    mean_up = np.nanmean(up, axis=0)
    mean_up /= np.linalg.norm(mean_up)
    flat = [v - (v @ mean_up)[:, None] * mean_up for v in (forward, to_camera)]
    cos = (flat[0] * flat[1]).sum(-1) / np.linalg.norm(flat[0], axis=-1) / np.linalg.norm(flat[1], axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


Scored = list[tuple[str, list[tuple[np.ndarray, np.ndarray] | None]]]


def _pooled(values: list[np.ndarray], fmt: str) -> str:
    return fmt.format(np.concatenate(values).mean()) if sum(len(v) for v in values) else fmt.format(float("nan"))


def breakdowns(per_frame: Scored, names: list[str]) -> None:
    """Print the limb direction error (all-camera reference) by limb, and by where the person faces
    relative to the scored camera. ``per_frame``: per person-camera pair, the person and for each
    column (None where it has no result) the view angle and the 8 limb errors of its scored frames."""
    print("Limb direction error by limb (degrees), all-camera reference, frames of each person's cameras pooled:")
    print(f"{'limb':18s}" + "".join(f"{name + ' ' + person:>25s}" for name in names for person in PEOPLE))
    parts = {"shoulder": "upper arm", "elbow": "forearm", "hip": "thigh", "knee": "shin"}
    for k, (a, _) in enumerate(LIMBS):
        side, joint = a.split("_")
        cells = [_pooled([c[1][:, k] for who, cols in per_frame if who == person and (c := cols[i]) is not None],
                         "{:25.1f}") for i in range(len(names)) for person in PEOPLE]
        print(f"{side + ' ' + parts[joint]:18s}" + "".join(cells))
    print("By where the person faces (the reference's torso against the direction to the scored camera):")
    print(f"{'person':7s}{'view':19s}" + "".join(f"{name:>18s}" for name in names) + "    frames")
    for person in [*PEOPLE, "all"]:
        for lo, hi, label in VIEW_BINS:
            cells, frames = [], 0
            for i in range(len(names)):
                values = [c[1][(c[0] >= lo) & (c[0] < hi)].mean(axis=1) for who, cols in per_frame
                          if person in (who, "all") and (c := cols[i]) is not None]
                cells.append(_pooled(values, "{:18.1f}"))
                frames = max(frames, sum(len(v) for v in values))
            print(f"{person:7s}{label:19s}" + "".join(cells) + f"{frames:10d}")


def detector_noise(person: str, views: list[str], xy: dict[str, np.ndarray], scores: dict[str, np.ndarray],
                   swaps: dict[str, int], reference: np.ndarray, cameras: dict, out: list,
                   hidden: dict[str, np.ndarray]) -> None:
    """Per view: MediaPipe's 2D less the reference's reprojection, per joint, as a share of the
    person's size (the noise model's measure: max(height, width / 2) over the clip); swaps; misses;
    and the joints it placed but scored low (``hidden``): their share and their median distance
    from the reference, against that of the joints it saw. The reference is triangulated from these
    same detections, so it follows each view's noise a little: the spread is a lower bound."""
    for cam in views:
        seen = np.isfinite(reference).all(axis=-1) & (scores[cam] >= 0.5)
        residual = xy[cam] - cameras[cam].project(np.nan_to_num(reference))
        visible = np.where(scores[cam][..., None] >= 0.5, xy[cam], np.nan)
        size = max(np.nanmax(np.ptp(visible[..., 1], axis=1)), 0.5 * np.nanmax(np.ptp(visible[..., 0], axis=1)))
        spread = np.full(residual.shape[1], np.nan)
        for k in range(residual.shape[1]):
            r = residual[seen[:, k], k]
            if len(r) >= 10:
                r = r - np.median(r, axis=0)
                spread[k] = 1.4826 * np.median(np.abs(r)) / size
        distance = np.linalg.norm(residual, axis=-1) / size
        placed = hidden[cam] & np.isfinite(distance)
        out.append((spread, swaps[cam] / len(reference), float((scores[cam] < 0.5).mean()),
                    (float(hidden[cam].mean()), distance[placed], distance[seen])))


def limb_spread(points: np.ndarray) -> float:
    """Mean over the 8 limbs of the coefficient of variation (%) of their length over the frames of
    a 12-joint sequence: a real person's limbs keep their length, so this is the lifter's error."""
    ok = np.isfinite(points).all(axis=(1, 2))
    cvs = []
    for a, b in LIMBS:
        length = np.linalg.norm(points[ok, LIMB_JOINTS.index(a)] - points[ok, LIMB_JOINTS.index(b)], axis=-1)
        cvs.append(length.std() / length.mean())
    return 100 * float(np.mean(cvs))


PARTS = ("shoulder width", "hip width", "legs", "arms", "ear width")


def proportions(points: np.ndarray) -> np.ndarray:
    """Medians over frames of COCO-17 ``points (T,17,3)``: shoulder and hip width, legs (hip-knee-
    ankle) and arms (shoulder-elbow-wrist), ear spacing, each over the hip-to-shoulder distance."""
    j = COCO17.index

    def length(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(points[:, j(a)] - points[:, j(b)], axis=-1)

    hips = 0.5 * (points[:, j("left_hip")] + points[:, j("right_hip")])
    shoulders = 0.5 * (points[:, j("left_shoulder")] + points[:, j("right_shoulder")])
    torso = np.linalg.norm(shoulders - hips, axis=-1)
    sides = [(s, f"{s}_") for s in ("left", "right")]
    legs = sum(length(f"{p}hip", f"{p}knee") + length(f"{p}knee", f"{p}ankle") for _, p in sides) / 2
    arms = sum(length(f"{p}shoulder", f"{p}elbow") + length(f"{p}elbow", f"{p}wrist") for _, p in sides) / 2
    parts = [length("left_shoulder", "right_shoulder"), length("left_hip", "right_hip"), legs, arms,
             length("left_ear", "right_ear")]
    return np.array([np.nanmedian(p / torso) for p in parts])


def mocap_proportions() -> np.ndarray:
    """The same figures for the training mocap's COCO-17 points (every 20th take)."""
    from vp3d_engine.training.mocap_data import find_bvh_files, load_takes

    takes = load_takes(find_bvh_files([ROOT.parent / "shared" / "data" / "mocap"])[::20], 30.0)
    return proportions(np.concatenate([t.coco for t in takes]).astype(np.float64))


def lift_reprojected(lifter: Any, world: np.ndarray, detected: np.ndarray, timestamps: np.ndarray,
                     camera: Any) -> np.ndarray:
    """Lift world COCO-17 ``world (T,17,3)`` as ``camera`` sees it (the detection's 2D where a
    joint is missing): the lifter given perfect 2D. Returns camera-space H36M-17 joints."""
    from converters.types import Keypoints2D
    from vp3d_engine.lifting import lift_keypoints

    pixels = camera.project(world)
    pixels = np.where(np.isfinite(pixels), pixels, detected)
    t = len(pixels)
    kp = Keypoints2D(xy=pixels.astype(np.float32), score=np.ones((t, 17), np.float32), valid=np.ones((t, 17), bool),
                     format="coco17", image_size=camera.size, fps=float(1.0 / np.median(np.diff(timestamps))),
                     timestamps=timestamps)
    return lift_keypoints(kp, lifter).joints.astype(np.float64)


def blended(npz: Any, share: float) -> np.ndarray:
    """A lifter-alone result's camera-space joints with the MediaPipe 3D it keeps blended in."""
    from converters.types import Pose3D
    from vp3d_engine.lifters.blend import blend_detector_3d

    fps = float(json.loads(str(npz["meta"]))["fps"])
    times = npz["timestamps"].astype(np.float64)
    lifted = Pose3D(joints=npz["joints_3d_root_relative"].astype(np.float64), frame="camera", fps=fps,
                    timestamps=times, confidence=np.ones(len(times)))
    detector = Pose3D(joints=npz["detector_3d"].astype(np.float64), frame="camera", fps=fps, timestamps=times,
                      confidence=npz["detector_3d_seen"].astype(np.float64))
    return blend_detector_3d(lifted, detector, share).joints + npz["trajectory"].astype(np.float64)[:, None]


def configs(checkpoints: list[str]) -> dict[str, tuple[str, str, str, float]]:
    """What is compared, by column: each lifter through vp3d-convert as a user runs it (label swaps
    fixed, MediaPipe's 3D blended in at the default share), the first as the lifter alone (no
    MediaPipe 3D) and with the detector's labels kept, and MediaPipe's own 3D."""
    share = PipelineOptions().mediapipe_3d
    out = {("vp3d" if i == 0 else f"vp3d #{i + 1}"): ("videopose3d", "fix", c, share)
           for i, c in enumerate(checkpoints)}
    for i, c in enumerate(checkpoints):
        out["lifter alone" if i == 0 else f"alone #{i + 1}"] = ("videopose3d", "fix", c, 0.0)
    out["vp3d labels kept"] = ("videopose3d", "keep", checkpoints[0], share)
    out["blazepose"] = ("blazepose-world", "keep", "", 0.0)
    return out


def table_rows(title: str, rows: list[tuple[str, str, list[tuple[float, float]]]], names: list[str]) -> None:
    """Print one table of (person, camera, [(P-MPJPE, limb degrees) per column]) and its means."""
    print(title)
    print(f"{'person':7s}{'camera':8s}" + "".join(f"{name + ' P-MPJPE':>26s}{'limb deg':>10s}" for name in names))
    for person, cam, pairs in rows:
        print(f"{person:7s}{cam:8s}" + "".join(f"{a:26.1f}{b:10.1f}" for a, b in pairs))
    means = np.nanmean(np.array([pairs for _, _, pairs in rows]), axis=0)
    print(f"{'mean':15s}" + "".join(f"{a:26.1f}{b:10.1f}" for a, b in means))


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", nargs="+", default=["default"],
                    help="the lifters to score side by side (default: the shipped one)")
    ap.add_argument("--shares", nargs="*", type=float, default=[0.25, 0.75],
                    help="also score the first lifter with MediaPipe's 3D blended in at these shares (computed from "
                         "its lifter-alone result, which keeps MediaPipe's 3D; no further conversions)")
    args = ap.parse_args()
    if not all(0 <= w <= 1 for w in args.shares):
        ap.error("--shares: give shares from 0 to 1")
    from vp3d_engine.checkpoints import CheckpointError, load_checkpoint

    for checkpoint in args.checkpoint:  # one line now, not a crash after minutes of detection
        try:
            load_checkpoint(checkpoint)
        except (CheckpointError, OSError, ValueError) as exc:
            ap.error(f"--checkpoint {checkpoint}: {exc}")
    columns = configs(args.checkpoint)
    shares = [f"share {w:g}" for w in args.shares]
    names = list(columns) + shares
    for name, checkpoint in zip(names[:len(args.checkpoint)], args.checkpoint, strict=True):
        print(f"{name}: {checkpoint}")
    models: dict[tuple[str, str], Models] = {}
    coco = [COCO17.index(n) for n in LIMB_JOINTS]
    h36m = [H36M17.index(n) for n in LIMB_JOINTS]
    noise: list[tuple[np.ndarray, float, float, tuple[float, np.ndarray, np.ndarray]]] = []
    shapes: dict[str, np.ndarray] = {}
    rows: list[tuple[str, str, list[tuple[float, float]]]] = []
    held_out_rows: list[tuple[str, str, list[tuple[float, float]]]] = []
    perfect_rows: list[tuple[str, str, list[tuple[float, float]]]] = []
    first = load_checkpoint(args.checkpoint[0])
    spreads: list[tuple[str, str, list[float]]] = []
    per_frame: Scored = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[tuple[str, str, str], np.ndarray] = {}
        stamps: dict[tuple[str, str], np.ndarray] = {}
        detections: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # xy, scores, raw
        for person, index in PEOPLE.items():
            for cam in CAMERAS:
                for k, (name, (lifter, label_swaps, checkpoint, share)) in enumerate(columns.items()):
                    options = ConvertOptions(pipeline=PipelineOptions(lifter=lifter, person=index, workers=1,
                                                                      label_swaps=label_swaps, mediapipe_3d=share,
                                                                      checkpoint=checkpoint or "default"),
                                             formats=["npz"])
                    try:
                        done = convert(DATA / f"{cam}.mp4", options, Path(tmp) / f"{person}-{cam}-{k}",
                                       models=models.setdefault((lifter, checkpoint), Models()))
                    except Exception as exc:  # cam03 loses the man: say so, go on
                        print(f"{person} {cam} {name}: {exc}")
                        continue
                    with np.load(done.files[0]) as npz:
                        results[(person, cam, name)] = npz["joints_3d"][:, h36m].astype(np.float64)
                        if name == "lifter alone":
                            for w, column in zip(args.shares, shares, strict=True):
                                results[(person, cam, column)] = blended(npz, w)[:, h36m]
                        if name == "vp3d labels kept":  # the detector's own 2D builds the reference
                            detections[(person, cam)] = (npz["keypoints_2d"].astype(np.float64),
                                                         (npz["scores"] * npz["valid"]).astype(np.float64),
                                                         npz["scores"].astype(np.float64))
                            stamps[(person, cam)] = npz["timestamps"].astype(np.float64)
        for person in PEOPLE:
            views = [c for c in CAMERAS if (person, c) in detections]
            xy = {c: detections[(person, c)][0] for c in views}
            scores = {c: detections[(person, c)][1] for c in views}
            cameras, error = pick_convention(DATA / "Calib.qca.txt", xy, scores)
            # The detector's own scores, relabelled the same way (the swap check only counts joints
            # scored 0.5 or more, which keep their score either way): joints it placed but scored
            # under tracking's 0.3 are the hidden ones, whose estimate tracking keeps.
            raw = fix_swaps(xy, {c: detections[(person, c)][2] for c in views}, cameras)[1]
            hidden = {c: (raw[c] > 0) & (raw[c] < 0.3) for c in views}
            xy, scores, swaps = fix_swaps(xy, scores, cameras)
            reference, errors, used = triangulate(xy, scores, cameras)
            truth = reference[:, coco]
            # The reference without each camera: its own uncertainty, and an independent yardstick
            # for the camera left out.
            without: dict[str, np.ndarray] = {}
            without_all: dict[str, np.ndarray] = {}
            for cam in views:
                rest = [c for c in views if c != cam]
                without_all[cam] = triangulate({c: xy[c] for c in rest}, {c: scores[c] for c in rest}, cameras)[0]
                without[cam] = without_all[cam][:, coco]
            for cam in SCORED[person]:
                angle = view_angle(reference, cameras[cam])
                by_column: list[tuple[np.ndarray, np.ndarray] | None] = []
                for name in names:
                    pred = results.get((person, cam, name))
                    ok, limb_deg = limb_errors(pred, truth) if pred is not None else (None, None)
                    by_column.append((angle[ok], limb_deg) if ok is not None else None)
                per_frame.append((person, by_column))
                for target, into in ((truth, rows), (without.get(cam), held_out_rows)):
                    pairs = []
                    for name in names:
                        pred = results.get((person, cam, name))
                        pairs.append(figures(pred, target) if pred is not None and target is not None
                                     else (float("nan"), float("nan")))
                    into.append((person, cam, pairs))
                perfect = []
                for world, target in ((reference, truth), (without_all[cam], without[cam])):
                    pred = lift_reprojected(first, world, xy[cam], stamps[(person, cam)], cameras[cam])
                    perfect.append(figures(pred[:, h36m], target))
                perfect_rows.append((person, cam, perfect))
                spreads.append((person, cam, [limb_spread(results[(person, cam, name)])
                                              if (person, cam, name) in results else float("nan")
                                              for name in names] + [limb_spread(truth)]))
            notes.append(f"  {person}: reference from {', '.join(views)}; median reprojection error "
                         f"{np.nanmedian(errors):.1f} px (convention check: {error:.1f} px), views per joint "
                         f"{np.nanmean(np.where(used > 0, used, np.nan)):.2f}, left/right swaps fixed {swaps}, "
                         f"frames scored {int(np.isfinite(truth).all(axis=(1, 2)).sum())}, torso facing agrees "
                         f"with the nose in {nose_agrees(reference):.0%} of frames")
            for cam in views:
                loo = without[cam]
                both = np.isfinite(loo).all(axis=(1, 2)) & np.isfinite(truth).all(axis=(1, 2))
                mpjpe = float(np.linalg.norm(loo[both] - truth[both], axis=-1).mean() * 1000)
                pm, deg = figures(loo, truth)
                _, hips, _ = torso_forward(reference)
                distance = np.nanmedian(np.linalg.norm(hips - cameras[cam].centre, axis=-1))
                notes.append(f"  leave out {cam}: MPJPE {mpjpe:.1f} mm, P-MPJPE {pm:.1f} mm, limb {deg:.1f} deg "
                             f"({int(both.sum())} frames); the person's hips {distance:.1f} m from {cam} (median)")
            detector_noise(person, views, xy, scores, swaps, reference, cameras, noise, hidden)
            shapes[person] = proportions(reference)
        table_rows("Against the reference from all cameras (P-MPJPE mm, limb direction error degrees):", rows, names)
        for line in notes:
            print(line)
        table_rows("Against the reference without the scored camera (its own 2D left out):", held_out_rows, names)
        print(f"The lifter alone: {names[0]} from the reference reprojected into the scored camera (perfect 2D),")
        table_rows("against the all-camera reference and, reprojecting the one without the scored camera, that one:",
                   perfect_rows, ["all-camera ref", "held-out ref"])
        breakdowns(per_frame, names)
        print("Limb length spread: coefficient of variation (%) of the 8 limbs' lengths over the clip, mean")
        print("(raw lifted joints; the reference's own spread is the floor its noise sets):")
        print(f"{'person':7s}{'camera':8s}" + "".join(f"{name:>18s}" for name in [*names, "reference"]))
        for person, cam, values in spreads:
            print(f"{person:7s}{cam:8s}" + "".join(f"{v:18.1f}" for v in values))
        print(f"{'mean':15s}" + "".join(f"{v:18.1f}" for v in np.nanmean([v for _, _, v in spreads], axis=0)))
        print("MediaPipe 2D against the reference reprojected (spread: robust std per joint, % of person size;")
        print("the training noise model's jitter at level 1 for comparison; its level is drawn from 0.3 to 2):")
        spread = np.nanmedian(np.array([v for v, _, _, _ in noise]), axis=0)
        print("  " + " ".join(f"{n.replace('left_', 'L').replace('right_', 'R')[:9]:>9s}" for n in COCO17.names))
        print("  " + " ".join(f"{100 * v:9.2f}" for v in spread) + "  measured")
        print("  " + " ".join(f"{100 * v:9.2f}" for v in NoiseModel().jitter) + "  noise model")
        print("Where MediaPipe puts the joints: proportions of the reference (MediaPipe keypoints triangulated) and of")
        print("the training mocap's points, over the hip-to-shoulder distance (what BodyShape's ranges cover):")
        print("  " + "".join(f"{p:>16s}" for p in PARTS))
        for person, shape in shapes.items():
            print(f"  {person:6s}" + "".join(f"{v:16.2f}" for v in shape)[6:])
        print("  mocap " + "".join(f"{v:16.2f}" for v in mocap_proportions())[6:])
        print(f"  left/right swaps: {np.mean([s for _, s, _, _ in noise]):.1%} of frames per view (model "
              f"{NoiseModel().swap_rate:.1%} per joint pair and frame); joints scored under 0.5: "
              f"{np.mean([m for _, _, m, _ in noise]):.1%} (model missing {NoiseModel().missing_rate:.1%})")
        placed = np.concatenate([h[1] for _, _, _, h in noise])
        seen = np.concatenate([h[2] for _, _, _, h in noise])
        share = np.mean([h[0] for *_, h in noise])
        print(f"  hidden (placed, scored under 0.3; tracking keeps the estimate): {share:.1%} of joints per view;"
              f" their distance from the reference reprojected, median {100 * np.median(placed):.1f}% of person"
              f" size (p90 {100 * np.percentile(placed, 90):.1f}%; {len(placed)} with a reference), against "
              f"{100 * np.median(seen):.1f}% (p90 {100 * np.percentile(seen, 90):.1f}%) for joints seen at 0.5 or more")


if __name__ == "__main__":
    main()
