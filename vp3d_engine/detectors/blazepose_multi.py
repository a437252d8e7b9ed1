"""Every person in the frame, top-down, from the two models MediaPipe's wheel ships, run with
``tflite-runtime`` (MediaPipe's own solutions follow one person; its Tasks API refuses these files,
which carry no metadata).

1. **Detect** (``pose_detection.tflite``): the frame letterboxed into 224x224 (values in [-1, 1]),
   2254 SSD anchors (5 layers, strides 8, 16, 32, 32, 32, scales 0.1484375 to 0.75, unit size);
   each anchor gives a box and 4 keypoints as offsets in input pixels, and a score (a logit);
   those over :data:`MIN_DETECTION_SCORE` are kept and overlapping ones suppressed (IoU over 0.3,
   highest score first), at most ``max_people``.
2. **Region**: keypoint 0 is the middle of the hips, keypoint 1 a point whose distance from it sets
   the body's size: a square centred on keypoint 0, of side 2 x that distance x 1.25, turned so that
   keypoint 0 to keypoint 1 points up the square.
3. **Landmarks** (``pose_landmark_full.tflite``, the model of ``model_complexity=1``): the square
   warped to 256x256 (values in [0, 1]); 39 landmarks x (x, y, z, visibility, presence) in crop
   pixels, the first 33 BlazePose's, visibility a logit; a pose-presence logit under 0 (0.5 after
   the sigmoid) drops the person. World landmarks (39 x 3 metres, in the crop's axes) are turned
   back by the square's angle, as MediaPipe's own solution gives them.
4. The landmarks mapped back into the frame, COCO-17 by name, the score BlazePose's visibility
   (hidden joints still placed, as with the one-person detector).
5. **Smoothing**: each person's landmarks, visibility, world landmarks and alignment points pass
   through the filters MediaPipe's own solution keeps for the person it follows
   (:mod:`vp3d_engine.detectors.landmark_filter`); the next frame's region is set from the filtered
   alignment points, as MediaPipe sets it.

Each person found is followed into the next frame in the region its own landmarks set (as
MediaPipe follows its one person), and keeps an identity (extras ``identities``) that tracking
(:mod:`vp3d_engine.tracking`) takes; the detector runs on every frame for people new to the view,
on the whole frame and on squares along its long side. People are not ranked; a clip splits across
worker processes in time (identities then join at the parts' seams through tracking).
The facts above (anchor layout, scales, thresholds, region rule) are MediaPipe's published
configuration of these models; the code is vp3d's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import BackendUnavailableError, ConfigurationError
from vp3d_engine.detectors.landmark_filter import LandmarkSmoothing
from vp3d_engine.detectors.mediapipe_pose import BLAZEPOSE_TO_COCO17, _native_stderr_quiet

__all__ = ["BlazePoseMulti", "ssd_anchors"]

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
REGION_SCALE = 1.25
#: Detections whose region covers less than this share of the frame's shorter side are too small
#: for the landmark model to place joints reliably (a face in a crowd, a poster).
MIN_REGION_SHARE = 0.08
#: The landmark model's pose presence (a probability) under which a region holds no person.
MIN_PRESENCE = 0.5
#: The squares along a long frame are searched on every this many frames (the whole frame on every
#: one): someone the whole frame shows too small is found within this many frames, then followed.
SQUARES_EVERY = 4
#: Hips that move more than this share of the region's side between the region and the landmarks
#: found in it: the landmarks are someone else's (a person moves far less in one frame).
MOVED = 0.12
#: Two poses whose keypoints are this close (a share of the body's size, on average) are one person.
SAME_POSE = 0.1
#: Two detections whose hips are closer than this share of the larger region's side are one person.
SAME_HIPS = 0.1
#: A new detection whose box overlaps someone followed by more than this, with shoulders and hips
#: within this share of the body's size of theirs, is them found again (see :func:`_same_torso`).
SAME_BOX = 0.35
SAME_TORSO = 0.25
#: A person followed whose box overlaps someone already found by more than this is also looked for
#: with them painted out (the landmark model may mix two overlapping people).
OVERLAP = 0.3
#: Someone painted out (to find the person they overlap) is painted with strokes this share of
#: their body's size wide.
PAINT_WIDTH = 0.06
#: COCO-17 limbs painted out.
_LIMBS = ((5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13), (13, 15), (12, 14), (14, 16))


#: A person's region: centre x, y and side of a square in pixels, and its turn in radians.
Region = tuple[float, float, float, float]


@dataclass
class _Found:
    coco: np.ndarray  # (17,3) x, y pixels, visibility
    world: np.ndarray  # (33,4) x, y, z metres (camera axes), visibility
    box: np.ndarray  # (4,) x0, y0, x1, y1 pixels of the 33 landmarks
    next_region: Region  # where to look for this person in the next frame
    alignment: np.ndarray  # (2,2) pixels: the hips and the point that sets the body's size (as found)
    identity: int = -1  # the same number for the same person, frame after frame
    smoothing: LandmarkSmoothing | None = None  # the person's filters, carried from frame to frame


def _region(hip: np.ndarray, top: np.ndarray) -> Region:
    """The square around a body from its two alignment points: centred on the hips, side twice
    their distance (the body's circle) x 1.25, turned so that hips to top point up."""
    dx, dy = float(top[0] - hip[0]), float(top[1] - hip[1])
    turn = (math.pi / 2 - math.atan2(-dy, dx) + math.pi) % (2 * math.pi) - math.pi
    return float(hip[0]), float(hip[1]), 2.0 * math.hypot(dx, dy) * REGION_SCALE, turn


def _windows(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Where the detector looks (x0, y0, x1, y1): the whole frame, and for a frame much longer than
    wide (or the other way) squares along its long side, overlapping, from one end to the other."""
    long, short = max(w, h), min(w, h)
    if long < 1.3 * short:
        return [(0, 0, w, h)]
    count = math.ceil(long / short)
    starts = [round(k * (long - short) / (count - 1)) for k in range(count)] if count > 1 else [0]
    squares = [(s, 0, s + short, h) if w > h else (0, s, w, s + short) for s in starts]
    return [(0, 0, w, h), *squares]


def _same_hips(a: Region, b: Region) -> bool:
    """Two regions on one body: centred on the same hips (within :data:`SAME_HIPS` of the smaller
    side) at a similar size (two people overlapping in the picture are seldom the same size there)."""
    small, large = sorted((a[2], b[2]))
    return math.hypot(a[0] - b[0], a[1] - b[1]) < SAME_HIPS * small and large < 1.3 * small


def _moved_to(before: Region, after: Region) -> bool:
    """The landmarks found in region ``before`` set a region whose hips are far from where they
    were (over :data:`MOVED` of the side): they belong to someone else in the crop (two people
    overlapping), not to the person the region was for."""
    return math.hypot(after[0] - before[0], after[1] - before[1]) > MOVED * before[2]


def _pose_gap(followed: _Found, found: _Found | None) -> float:
    """How far ``found`` is from the last pose of the person ``followed`` (mean keypoint distance,
    in the size of their body); infinite for nobody."""
    if found is None:
        return math.inf
    diag = max(float(np.hypot(*(followed.box[2:] - followed.box[:2]))), 1e-6)
    return float(np.linalg.norm(found.coco[:, :2] - followed.coco[:, :2], axis=1).mean()) / diag


def _same_torso(a: _Found, b: _Found) -> bool:
    """A new detection that is someone already followed, found again with other limbs: boxes that
    overlap by over :data:`SAME_BOX` and shoulders and hips within :data:`SAME_TORSO` of the larger
    body's size (on average). Only new people are held to it: two people followed while they
    overlap keep their own poses."""
    diag = max(float(np.hypot(*(a.box[2:] - a.box[:2]))), float(np.hypot(*(b.box[2:] - b.box[:2]))), 1e-6)
    torso = [5, 6, 11, 12]
    gap = float(np.linalg.norm(a.coco[torso, :2] - b.coco[torso, :2], axis=1).mean()) / diag
    return gap < SAME_TORSO and float(_iou(a.box, b.box[None])[0]) > SAME_BOX


def _same_pose(a: _Found, b: _Found) -> bool:
    """One body found twice: the keypoints of the two poses within :data:`SAME_POSE` of the larger
    body's size on average (two people who overlap in the picture have their joints elsewhere)."""
    diag = max(float(np.hypot(*(a.box[2:] - a.box[:2]))), float(np.hypot(*(b.box[2:] - b.box[:2]))), 1e-6)
    return float(np.linalg.norm(a.coco[:, :2] - b.coco[:, :2], axis=1).mean()) < SAME_POSE * diag


def ssd_anchors(size: int = DETECTOR_SIZE, strides: Sequence[int] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """``(A,2)`` anchor centres, normalised to the input: consecutive layers with the same stride
    share one grid, with two anchors per cell for each layer on it (one aspect ratio and one
    interpolated scale: the layout of MediaPipe's pose detector)."""
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)
        cells = math.ceil(size / strides[layer])
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer = last
    return np.concatenate(centres)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box (x0, y0, x1, y1) with ``(N,4)`` boxes."""
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def _suppress(boxes: np.ndarray, scores: np.ndarray, limit: int) -> list[int]:
    """Indices kept by non-maximum suppression, best first."""
    order = list(np.argsort(-scores))
    kept: list[int] = []
    while order and len(kept) < limit:
        best = order.pop(0)
        kept.append(best)
        if order:
            rest = np.array(order)
            order = list(rest[_iou(boxes[best], boxes[rest]) <= NMS_IOU])
    return kept


def _model_folder() -> Path:
    try:
        import mediapipe
    except ImportError as exc:
        raise BackendUnavailableError(f"the blazepose-multi detector uses the models in mediapipe 0.10.21's wheel "
                                      f"({exc}); run scripts/setup.sh") from None
    return Path(mediapipe.__file__).resolve().parent / "modules"


def _interpreter(path: Path, threads: int) -> Any:
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        raise BackendUnavailableError("the blazepose-multi detector runs MediaPipe's models with tflite-runtime: "
                                      "pip install -c constraints.txt tflite-runtime (scripts/setup.sh does)") from None
    if not path.is_file():
        raise BackendUnavailableError(f"{path} is missing from the mediapipe wheel; reinstall mediapipe==0.10.21")
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


class BlazePoseMulti:
    """Every person per frame (at most ``max_people``), their COCO-17 keypoints in pixels."""

    name = "blazepose-multi"
    batch_size = 1

    def __init__(self, device: str = "cpu", max_people: int = 8, threads: int = 1) -> None:
        if device not in ("cpu", "auto"):
            raise ConfigurationError("the blazepose-multi detector runs on the CPU only; use --device cpu or auto")
        if not 1 <= max_people <= 64:
            raise ConfigurationError(f"max_people must be from 1 to 64, not {max_people}")
        folder = _model_folder()
        self.max_people = max_people
        with _native_stderr_quiet():  # tflite-runtime's "Created TensorFlow Lite XNNPACK delegate" note
            self._detector = _interpreter(folder / "pose_detection" / "pose_detection.tflite", threads)
            self._landmarks = _interpreter(folder / "pose_landmark" / "pose_landmark_full.tflite", threads)
        self._anchors = ssd_anchors()
        self._detector_in = self._detector.get_input_details()[0]["index"]
        self._landmarks_in_index = self._landmarks.get_input_details()[0]["index"]
        outputs = {tuple(d["shape"]): d["index"] for d in self._detector.get_output_details()}
        self._boxes_out, self._scores_out = outputs[(1, len(self._anchors), 12)], outputs[(1, len(self._anchors), 1)]
        shaped = {tuple(d["shape"]): d["index"] for d in self._landmarks.get_output_details()}
        self._landmarks_out, self._presence_out = shaped[(1, 195)], shaped[(1, 1)]
        self._world_out = shaped[(1, 117)]
        self._world_people: list[list[np.ndarray]] = []
        self._followed: list[_Found] = []  # the people of the last frame
        self._identities: list[np.ndarray] = []  # per frame, each person's identity
        self._next_identity = 0
        self._frames = 0  # frames detected since the start (the squares run on every SQUARES_EVERY-th)

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._detect_frame(image) for image in images]

    def _regions(self, image: np.ndarray) -> list[Region]:
        """The detector's people in the whole frame and in squares along its long side (where people
        are larger to the detector: in a portrait phone frame letterboxed whole, a person in the
        background is too small for it), each as a region, the same person found in two windows
        kept once (the better score)."""
        h, w = image.shape[:2]
        found: list[tuple[float, Region]] = []
        windows = _windows(w, h)
        if self._frames % SQUARES_EVERY:  # people already found are followed: the squares look for new ones
            windows = windows[:1]
        self._frames += 1
        for x0, y0, x1, y1 in windows:
            found += self._detect_window(image[y0:y1, x0:x1], (x0, y0), min(h, w))
        found.sort(key=lambda item: -item[0])
        kept: list[Region] = []
        for _, region in found:
            if not any(_same_hips(region, k) for k in kept):
                kept.append(region)
        return kept[: self.max_people]

    def _detect_window(self, window: np.ndarray, origin: tuple[int, int], short_side: int
                       ) -> list[tuple[float, Region]]:
        """The detector on one window of the frame, letterboxed: (score, region in frame pixels)."""
        import cv2

        h, w = window.shape[:2]
        scale = DETECTOR_SIZE / max(h, w)
        small = cv2.resize(window, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
        top, left = (DETECTOR_SIZE - small.shape[0]) // 2, (DETECTOR_SIZE - small.shape[1]) // 2
        canvas[top:top + small.shape[0], left:left + small.shape[1]] = small.astype(np.float32) / 127.5 - 1.0
        self._detector.set_tensor(self._detector_in, canvas[None])
        self._detector.invoke()
        raw = self._detector.get_tensor(self._boxes_out)[0]
        scores = _sigmoid(self._detector.get_tensor(self._scores_out)[0, :, 0])
        keep = scores >= MIN_DETECTION_SCORE
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        # Offsets in input pixels from the anchor's centre (unit anchors): to input pixels, then frame pixels.
        centre = raw[:, 0:2] + anchors * DETECTOR_SIZE
        size = raw[:, 2:4]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        points = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :] * DETECTOR_SIZE
        to_frame = lambda p: (p - np.array([left, top], np.float32)) / scale + np.array(origin)  # noqa: E731
        out = []
        for i in _suppress(boxes, scores, self.max_people):
            region = _region(to_frame(points[i, 0]), to_frame(points[i, 1]))
            if region[2] >= MIN_REGION_SHARE * short_side:
                out.append((float(scores[i]), region))
        return out

    def _landmarks_in(self, image: np.ndarray, region: Region) -> _Found | None:
        """The person in ``region`` (None if the landmark model sees no pose there)."""
        import cv2

        cx, cy, side, turn = region
        cos, sin = math.cos(turn), math.sin(turn)
        # Crop pixel (u, v) -> frame: centre + R(turn) @ ((u, v) / size - 0.5) * side (y down).
        k = side / LANDMARK_SIZE
        to_frame = np.array([[k * cos, -k * sin, cx - (cos - sin) * side / 2],
                             [k * sin, k * cos, cy - (sin + cos) * side / 2]], np.float64)
        crop = cv2.warpAffine(image, to_frame, (LANDMARK_SIZE, LANDMARK_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        self._landmarks.set_tensor(self._landmarks_in_index,
                                   crop.astype(np.float32)[None] / 255.0)
        self._landmarks.invoke()
        if float(self._landmarks.get_tensor(self._presence_out)[0, 0]) < MIN_PRESENCE:  # a probability already
            return None
        raw = self._landmarks.get_tensor(self._landmarks_out)[0].reshape(39, 5)
        xy = raw[:, :2] @ to_frame[:, :2].T + to_frame[:, 2]
        visibility = _sigmoid(raw[:33, 3])
        person = np.concatenate([xy[:33], visibility[:, None]], axis=1)
        world = self._landmarks.get_tensor(self._world_out)[0].reshape(39, 3)[:33]
        turned = world.copy()
        turned[:, 0] = cos * world[:, 0] - sin * world[:, 1]
        turned[:, 1] = sin * world[:, 0] + cos * world[:, 1]
        body = xy[:33]
        return _Found(coco=person[BLAZEPOSE_TO_COCO17], world=np.concatenate([turned, visibility[:, None]], axis=1),
                      box=np.array([*body.min(axis=0), *body.max(axis=0)]), next_region=_region(xy[33], xy[34]),
                      alignment=xy[33:35].astype(np.float64))

    def _detect_frame(self, image: np.ndarray) -> np.ndarray:
        """The people followed from the last frame, in the regions their own landmarks set (as
        MediaPipe follows one person); then the detector's people not among them, whose rough
        region is set again from a first pass of the landmarks. One body found twice is kept once."""
        kept: list[_Found] = []

        def keep(found: _Found | None) -> None:
            if found is not None and len(kept) < self.max_people and not any(_same_pose(found, k) for k in kept):
                kept.append(found)

        def look(region: Region, refine: bool) -> _Found | None:
            """The person whose region this is (None where the landmarks take someone else in the
            crop instead: two people overlapping)."""
            found = self._landmarks_in(image, region)
            if found is not None and refine and not _moved_to(region, found.next_region):
                again = self._landmarks_in(image, found.next_region)  # a detector's region is rough
                found = again if again is not None and not _moved_to(region, again.next_region) else found
            return None if found is None or _moved_to(region, found.next_region) else found

        # Everyone followed is looked for first; where two people overlap, the landmark model may give
        # both regions the same body: it goes to the person it fits best (their last pose), and the
        # other is looked for again with the people already found painted out.
        claims = [(followed, look(followed.next_region, refine=False)) for followed in self._followed]
        claims.sort(key=lambda claim: _pose_gap(claim[0], claim[1]))
        for followed, found in claims:
            if found is not None and any(_same_pose(found, k) for k in kept):
                found = self._behind(image, followed.next_region, kept)
            elif found is not None and any(float(_iou(found.box, k.box[None])[0]) > OVERLAP for k in kept):
                # Overlapping someone: the crop may mix the two. Looked at again with them painted
                # out, the pose nearer this person's last one is theirs.
                other = self._behind(image, followed.next_region, kept)
                if other is not None and _pose_gap(followed, other) < _pose_gap(followed, found):
                    found = other
            if found is not None:
                found.identity = followed.identity
            keep(found)
        for region in self._regions(image):
            if len(kept) >= self.max_people:
                break
            if not any(_same_hips(region, k.next_region) for k in kept):  # not someone already found
                found = look(region, refine=True)
                if found is None or not any(_same_torso(found, k) for k in kept):  # nor found again
                    keep(found)
        last = {followed.identity: followed.smoothing for followed in self._followed}
        for found in kept:
            if found.identity < 0:
                found.identity, self._next_identity = self._next_identity, self._next_identity + 1
            found.smoothing = last.get(found.identity) or LandmarkSmoothing()  # a person found anew: fresh filters
            found.coco, alignment, found.world = found.smoothing.apply(found.coco, found.alignment, found.world)
            found.next_region = _region(alignment[0], alignment[1])
        self._followed = kept
        self._world_people.append([f.world for f in kept])
        self._identities.append(np.array([f.identity for f in kept], np.int64))
        return np.stack([f.coco for f in kept]) if kept else np.zeros((0, 17, 3))

    def _behind(self, image: np.ndarray, region: Region, kept: list[_Found]) -> _Found | None:
        """The person in ``region`` with the people already found painted out (each their torso,
        limbs and head in the frame's median colour): someone the landmark model passed over for
        the person overlapping them. None where nobody else is there."""
        import cv2

        painted = image.copy()
        colour = tuple(int(v) for v in np.median(image[::8, ::8].reshape(-1, image.shape[2]), axis=0))
        for other in kept:
            xy = np.round(other.coco[:, :2]).astype(np.int32)
            width = max(2, round(PAINT_WIDTH * float(np.hypot(*(other.box[2:] - other.box[:2])))))
            cv2.fillConvexPoly(painted, xy[[5, 6, 12, 11]], colour)
            for a, b in _LIMBS:
                cv2.line(painted, (int(xy[a, 0]), int(xy[a, 1])), (int(xy[b, 0]), int(xy[b, 1])), colour, width)
            cv2.circle(painted, (int(xy[0, 0]), int(xy[0, 1])), round(1.2 * width), colour, -1)
        found = self._landmarks_in(painted, region)
        if found is None or _moved_to(region, found.next_region) or any(_same_pose(found, k) for k in kept):
            return None
        return found

    def reset(self) -> None:
        """Start a new video: nobody followed, no landmarks collected."""
        self._followed = []
        self._world_people.clear()
        self._identities.clear()
        self._next_identity = 0
        self._frames = 0

    def extras(self) -> dict[str, Any]:
        return {"blazepose_world_people": list(self._world_people), "identities": list(self._identities)}

    def close(self) -> None:
        self._world_people.clear()
