"""The lifter on real video against a 4-camera reference (pose2sim-multiperson, 100 frames at 60 fps).

Reference: MediaPipe 2D from every camera, left/right labels checked across views, undistorted and
triangulated per joint, dropping views that reproject more than 30 px away (``vp3d_engine.multiview``).
Each single camera is then converted with ``vp3d-convert`` (the shipped lifter with the default
left/right label-swap fix, the same with the detector's labels kept, and ``--lifter
blazepose-world``, MediaPipe's own 3D, as the anchor) and scored on the 12 limb joints (shoulders,
elbows, wrists, hips, knees, ankles) on the frames the reference has them:

- P-MPJPE (mm): after the per-frame similarity transform that best aligns the prediction;
- limb direction error (degrees): the 8 limbs (upper arms, forearms, thighs, shins) after the
  per-frame rotation that best aligns the prediction, mean angle.

The reference's own uncertainty: each camera left out in turn, the 3-camera reference against the
4-camera one (same figures). The reference is built from MediaPipe keypoints, so it favours
MediaPipe's joint placement (where its hips sit, for one); limb directions are the fairer figure:
a constant offset of a joint along its limb does not change them.

People: the man (``--person 1``) and the woman (``--person 0``). cam03 cannot tell them apart
(one person per BlazePose pass, and she stands behind him): its detections join the reference only
where they agree with the other views, and cam03 is scored for the woman only, where it keeps her.

    python benchmarks/multiview_accuracy.py [--checkpoint NAME_OR_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

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


def figures(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """P-MPJPE (mm) and mean limb direction error (degrees) of 12-joint sequences (same order)."""
    ok = np.isfinite(truth).all(axis=(1, 2)) & np.isfinite(pred).all(axis=(1, 2))
    pred, truth = pred[ok], truth[ok]
    aligned = _kabsch(pred, truth)
    angles = []
    for a, b in LIMBS:
        i, j = LIMB_JOINTS.index(a), LIMB_JOINTS.index(b)
        u, v = aligned[:, j] - aligned[:, i], truth[:, j] - truth[:, i]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return p_mpjpe(pred, truth) * 1000, float(np.mean(angles))


def detector_noise(person: str, views: list[str], xy: dict[str, np.ndarray], scores: dict[str, np.ndarray],
                   swaps: dict[str, int], reference: np.ndarray, cameras: dict, out: list) -> None:
    """Per view: MediaPipe's 2D less the reference's reprojection, per joint, as a share of the
    person's size (the noise model's measure: max(height, width / 2) over the clip); swaps; misses.
    The reference is triangulated from these same detections, so it follows each view's noise a
    little: the spread is a lower bound."""
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
        out.append((spread, swaps[cam] / len(reference), float((scores[cam] < 0.5).mean())))


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


#: What is compared: the shipped lifter through vp3d-convert (label swaps fixed, the default), the
#: same with the detector's labels kept, and MediaPipe's own 3D.
CONFIGS = {"vp3d": ("videopose3d", "fix"), "vp3d labels kept": ("videopose3d", "keep"),
           "blazepose": ("blazepose-world", "keep")}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="default", help="the lifter to score (default: the shipped one)")
    args = ap.parse_args()
    models: dict[str, Models] = {"videopose3d": Models(), "blazepose-world": Models()}
    coco = [COCO17.index(n) for n in LIMB_JOINTS]
    h36m = [H36M17.index(n) for n in LIMB_JOINTS]
    noise: list[tuple[np.ndarray, float, float]] = []
    shapes: dict[str, np.ndarray] = {}
    table: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    spreads: list[tuple[str, str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[tuple[str, str, str], np.ndarray] = {}
        detections: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for person, index in PEOPLE.items():
            for cam in CAMERAS:
                for name, (lifter, swaps) in CONFIGS.items():
                    options = ConvertOptions(pipeline=PipelineOptions(lifter=lifter, person=index, workers=1,
                                                                      label_swaps=swaps, checkpoint=args.checkpoint),
                                             formats=["npz"])
                    try:
                        done = convert(DATA / f"{cam}.mp4", options, Path(tmp) / f"{person}-{cam}-{lifter}-{swaps}",
                                       models=models[lifter])
                    except Exception as exc:  # cam03 loses the man: say so, go on
                        print(f"{person} {cam} {name}: {exc}")
                        continue
                    with np.load(done.files[0]) as npz:
                        results[(person, cam, name)] = npz["joints_3d"][:, h36m].astype(np.float64)
                        if name == "vp3d labels kept":  # the detector's own 2D builds the reference
                            detections[(person, cam)] = (npz["keypoints_2d"].astype(np.float64),
                                                         (npz["scores"] * npz["valid"]).astype(np.float64))
        print(f"{'person':7s}{'camera':8s}" + "".join(f"{name + ' P-MPJPE':>26s}{'limb deg':>10s}" for name in CONFIGS)
              + f"{'frames':>8s}")
        for person in PEOPLE:
            views = [c for c in CAMERAS if (person, c) in detections]
            xy = {c: detections[(person, c)][0] for c in views}
            scores = {c: detections[(person, c)][1] for c in views}
            cameras, error = pick_convention(DATA / "Calib.qca.txt", xy, scores)
            xy, scores, swaps = fix_swaps(xy, scores, cameras)
            reference, errors, used = triangulate(xy, scores, cameras)
            truth = reference[:, coco]
            for cam in SCORED[person]:
                row = []
                for name in CONFIGS:
                    pred = results.get((person, cam, name))
                    pair = figures(pred, truth) if pred is not None else (float("nan"), float("nan"))
                    table[name].append(pair)
                    row += list(pair)
                frames = int(np.isfinite(truth).all(axis=(1, 2)).sum())
                spreads.append((person, cam, [limb_spread(results[(person, cam, name)])
                                              if (person, cam, name) in results else float("nan")
                                              for name in CONFIGS] + [limb_spread(truth)]))
                print(f"{person:7s}{cam:8s}" + "".join(f"{a:26.1f}{b:10.1f}" for a, b in zip(row[::2], row[1::2],
                                                                                             strict=True))
                      + f"{frames:8d}")
            # The reference's own uncertainty: leave one camera out.
            spread = []
            for cam in views:
                rest = [c for c in views if c != cam]
                loo, _, _ = triangulate({c: xy[c] for c in rest}, {c: scores[c] for c in rest}, cameras)
                both = np.isfinite(loo[:, coco]).all(axis=(1, 2)) & np.isfinite(truth).all(axis=(1, 2))
                mpjpe = float(np.linalg.norm(loo[both][:, coco] - truth[both], axis=-1).mean() * 1000)
                spread.append((cam, mpjpe, *figures(loo[:, coco], truth)))
            print(f"  {person}: reference from {', '.join(views)}; median reprojection error "
                  f"{np.nanmedian(errors):.1f} px (convention check: {error:.1f} px), views per joint "
                  f"{np.nanmean(np.where(used > 0, used, np.nan)):.2f}, left/right swaps fixed {swaps}")
            for cam, mpjpe, pm, deg in spread:
                print(f"  leave out {cam}: MPJPE {mpjpe:.1f} mm, P-MPJPE {pm:.1f} mm, limb {deg:.1f} deg")
            detector_noise(person, views, xy, scores, swaps, reference, cameras, noise)
            shapes[person] = proportions(reference)
        print(f"{'mean':15s}" + "".join(f"{np.nanmean([a for a, _ in v]):26.1f}{np.nanmean([b for _, b in v]):10.1f}"
                                        for v in table.values()))
        print("Limb length spread: coefficient of variation (%) of the 8 limbs' lengths over the clip, mean")
        print("(raw lifted joints; the reference's own spread is the floor its noise sets):")
        print(f"{'person':7s}{'camera':8s}" + "".join(f"{name:>18s}" for name in [*CONFIGS, "reference"]))
        for person, cam, values in spreads:
            print(f"{person:7s}{cam:8s}" + "".join(f"{v:18.1f}" for v in values))
        print(f"{'mean':15s}" + "".join(f"{v:18.1f}" for v in np.nanmean([v for _, _, v in spreads], axis=0)))
        print("MediaPipe 2D against the reference reprojected (spread: robust std per joint, % of person size;")
        print("the training noise model's jitter at level 1 for comparison; its level is drawn from 0.3 to 2):")
        names = [n for n in COCO17.names]
        spread = np.nanmedian(np.array([v for v, _, _ in noise]), axis=0)
        print("  " + " ".join(f"{n.replace('left_', 'L').replace('right_', 'R')[:9]:>9s}" for n in names))
        print("  " + " ".join(f"{100 * v:9.2f}" for v in spread) + "  measured")
        print("  " + " ".join(f"{100 * v:9.2f}" for v in NoiseModel().jitter) + "  noise model")
        print("Where MediaPipe puts the joints: proportions of the reference (MediaPipe keypoints triangulated) and of")
        print("the training mocap's points, over the hip-to-shoulder distance (what BodyShape's ranges cover):")
        print("  " + "".join(f"{p:>16s}" for p in PARTS))
        for person, values in shapes.items():
            print(f"  {person:6s}" + "".join(f"{v:16.2f}" for v in values)[6:])
        print("  mocap " + "".join(f"{v:16.2f}" for v in mocap_proportions())[6:])
        print(f"  left/right swaps: {np.mean([s for _, s, _ in noise]):.1%} of frames per view (model "
              f"{NoiseModel().swap_rate:.1%} per joint pair and frame); joints scored under 0.5: "
              f"{np.mean([m for _, _, m in noise]):.1%} (model missing {NoiseModel().missing_rate:.1%})")


if __name__ == "__main__":
    main()
