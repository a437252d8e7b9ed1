"""Reading 2D keypoints written by other tools: exact values, joint order, scores, frames, clear errors,
and no code run from pickled payloads."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.errors import InputFileError
from converters.joints import COCO17
from converters.types import Keypoints2D
from vp3d_engine.detectors.files import (
    read_coco_json,
    read_detectron_npz,
    read_keypoints_file,
    read_openpose_folder,
    read_videopose3d_custom,
    read_vp3d_keypoints,
)

SYMMETRY = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
L_WRIST, R_EAR = COCO17.index("left_wrist"), COCO17.index("right_ear")


def _savez(path: Path, **arrays: Any) -> None:
    """``np.savez_compressed`` as the tools call it (dicts and lists become 0-d / 1-d object arrays)."""
    np.savez_compressed(path, **arrays)


def _xy(frame: int, person: int = 0) -> np.ndarray:
    """(17, 2) distinct coordinates, exact in float32: joint j at (100 f + 10 p + j, 200 + 0.5 j)."""
    j = np.arange(17, dtype=np.float64)
    return np.stack([100.0 * frame + 10.0 * person + j, 200.0 + 0.5 * j], axis=-1)


# ---- 1. VideoPose3D custom dataset ---------------------------------------------------------------


def _write_custom(path: Path, videos: dict[str, np.ndarray]) -> Path:
    positions = {name: {"custom": [xy.astype(np.float32)]} for name, xy in videos.items()}
    meta = {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": SYMMETRY,
            "video_metadata": {name: {"w": 1920, "h": 1080} for name in videos}}
    _savez(path, positions_2d=positions, metadata=meta)
    return path


def test_videopose3d_custom_reads_one_person_per_frame_with_score_one(tmp_path: Path) -> None:
    xy = np.stack([_xy(t) for t in range(4)])
    path = _write_custom(tmp_path / "data_2d_custom_myvideos.npz", {"walk.mp4": xy})
    for det in (read_videopose3d_custom(path), read_keypoints_file(path)):
        assert det.num_frames == 4
        assert all(p.shape == (1, 17, 3) for p in det.people)
        np.testing.assert_array_equal(det.people[2][0, :, :2], xy[2])
        np.testing.assert_array_equal(det.people[3][0, :, 2], np.ones(17))
        assert det.image_size == (1920, 1080)
        assert det.meta["video"] == "walk.mp4"
        assert det.fps is None and det.timestamps is None


def test_videopose3d_custom_with_two_videos_needs_a_choice(tmp_path: Path) -> None:
    path = _write_custom(tmp_path / "data_2d_custom_two.npz",
                         {"a.mp4": np.stack([_xy(0)]), "b.mp4": np.stack([_xy(5), _xy(6)])})
    with pytest.raises(InputFileError, match=r"2 videos \(a\.mp4, b\.mp4\).*video=") as err:
        read_keypoints_file(path)
    assert str(path) in str(err.value)
    det = read_keypoints_file(path, video="b.mp4")
    assert det.num_frames == 2
    np.testing.assert_array_equal(det.people[1][0, :, :2], _xy(6))
    with pytest.raises(InputFileError, match=r"no video 'c\.mp4'; it holds a\.mp4, b\.mp4"):
        read_videopose3d_custom(path, video="c.mp4")


def test_videopose3d_custom_wrong_shape_and_missing_metadata(tmp_path: Path) -> None:
    bad = tmp_path / "data_2d_custom_bad.npz"
    _savez(bad, positions_2d={"v": {"custom": [np.zeros((3, 17, 3), np.float32)]}},
                        metadata={"layout_name": "coco", "num_joints": 17})
    with pytest.raises(InputFileError, match=r"shape \(3, 17, 3\), expected \(T,17,2\)"):
        read_videopose3d_custom(bad)
    no_meta = tmp_path / "data_2d_custom_nometa.npz"
    _savez(no_meta, positions_2d={"v": {"custom": [np.zeros((3, 17, 2), np.float32)]}})
    with pytest.raises(InputFileError, match="missing metadata") as err:
        read_keypoints_file(no_meta)
    assert str(no_meta) in str(err.value)


# ---- 2. VideoPose3D Detectron2 inference .npz ----------------------------------------------------


def _d2_person(frame: int, person: int, prob: float) -> np.ndarray:
    """(4, 17) rows x, y, logit, probability, as the inference script writes them."""
    xy = _xy(frame, person)
    return np.stack([xy[:, 0], xy[:, 1], np.zeros(17), np.full(17, prob)])


def _write_detectron(path: Path, frames: list[list[tuple[int, float]]], collapse: bool) -> Path:
    boxes: list[list[Any]] = []
    keypoints: list[list[Any]] = []
    for t, people in enumerate(frames):
        kps: Any
        bbox: Any
        if people:
            kps = np.stack([_d2_person(t, p, prob) for p, prob in people]).astype(np.float32)
            bbox = np.array([[0, 0, 50, 90, prob] for _, prob in people], np.float32)
        else:  # the script writes plain empty lists for a frame with nobody
            kps, bbox = [], []
        boxes.append([[], bbox])
        keypoints.append([[], kps])
    if collapse:  # how an older numpy turns the per-frame lists into an object array
        boxes_arr, kp_arr = np.array(boxes, dtype=object), np.array(keypoints, dtype=object)
    else:
        boxes_arr, kp_arr = np.empty(len(frames), dtype=object), np.empty(len(frames), dtype=object)
        for t in range(len(frames)):
            boxes_arr[t], kp_arr[t] = boxes[t], keypoints[t]
    segments = np.empty(len(frames), dtype=object)
    _savez(path, boxes=boxes_arr, segments=segments, keypoints=kp_arr,
                        metadata={"w": np.int64(1280), "h": 720})
    return path


@pytest.mark.parametrize("collapse", [False, True])
def test_detectron_npz_keeps_every_person_and_empty_frames(tmp_path: Path, collapse: bool) -> None:
    frames = [[(0, 0.75)], [], [(0, 0.5), (1, 1.25)]]
    path = _write_detectron(tmp_path / "walk.mp4.npz", frames, collapse)
    for det in (read_detectron_npz(path), read_keypoints_file(path)):
        assert [p.shape for p in det.people] == [(1, 17, 3), (0, 17, 3), (2, 17, 3)]
        np.testing.assert_array_equal(det.people[0][0, :, :2], _xy(0, 0))
        np.testing.assert_array_equal(det.people[2][1, :, :2], _xy(2, 1))
        np.testing.assert_array_equal(det.people[0][0, :, 2], np.full(17, 0.75))
        np.testing.assert_array_equal(det.people[2][:, 0, 2], [0.5, 1.0])  # probability clipped to 1
        assert det.image_size == (1280, 720)


def test_detectron_npz_wrong_shape_and_missing_keys(tmp_path: Path) -> None:
    kp = np.empty(1, dtype=object)
    kp[0] = [[], np.zeros((1, 3, 17), np.float32)]
    bad = tmp_path / "bad.npz"
    _savez(bad, boxes=kp, keypoints=kp, metadata={"w": 1, "h": 1})
    with pytest.raises(InputFileError, match=r"frame 0 has shape \(1, 3, 17\), expected \(N,4,17\)"):
        read_keypoints_file(bad)
    no_kp = tmp_path / "nokp.npz"
    _savez(no_kp, boxes=kp, metadata={"w": 1, "h": 1})
    with pytest.raises(InputFileError, match=r"missing keypoints \(it holds boxes, metadata\)"):
        read_detectron_npz(no_kp)
    other = tmp_path / "other.npz"
    _savez(other, foo=np.zeros(3))
    with pytest.raises(InputFileError, match=r"other\.npz: an array of shape \(3,\); vp3d reads"):
        read_keypoints_file(other)


# ---- pickle safety -------------------------------------------------------------------------------


def _touch(path: str) -> str:
    Path(path).write_text("code ran")
    return path


class _WritesMarker:
    """Unpickling this calls ``_touch(marker)``: what a malicious file would do with ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _touch, (str(self.marker),)


def _object_array(value: object) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = value
    return arr


def test_pickled_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    control, marker = tmp_path / "control-marker", tmp_path / "marker"
    naive = tmp_path / "naive.npz"
    _savez(naive, boxes=_object_array(1), keypoints=_object_array(_WritesMarker(control)))
    with np.load(naive, allow_pickle=True) as data:  # the attack is real: a plain np.load runs it
        data["keypoints"]
    assert control.read_text() == "code ran"

    evil = tmp_path / "evil.npz"
    _savez(evil, boxes=_object_array(1), keypoints=_object_array(_WritesMarker(marker)),
                        metadata={"w": 1, "h": 1})
    with pytest.raises(InputFileError, match=r"refusing to unpickle .*_touch from .*evil\.npz\[keypoints\]"):
        read_keypoints_file(evil)
    assert not marker.exists()


def test_objects_of_other_classes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data_2d_custom_counter.npz"
    _savez(path, positions_2d=_object_array(Counter(a=1)), metadata={"num_joints": 17})
    with pytest.raises(InputFileError, match=r"refusing to unpickle collections\.Counter from .*counter\.npz"):
        read_videopose3d_custom(path)


def test_truncated_garbage_and_corrupt_npz(tmp_path: Path) -> None:
    good = _write_detectron(tmp_path / "good.npz", [[(0, 0.5)]] * 3, collapse=False)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    for path in (truncated, garbage):
        with pytest.raises(InputFileError, match=r"not a readable \.npz") as err:
            read_keypoints_file(path)
        assert str(path) in str(err.value)
    header = b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(127) + b"\n"
    corrupt = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(corrupt, "w") as zf:
        zf.writestr("boxes.npy", header + b"\x80\x03garbage")
        zf.writestr("keypoints.npy", header + b"\x80\x03garbage")
    with pytest.raises(InputFileError, match=r"corrupt\.npz\[keypoints\]: corrupt object array"):
        read_keypoints_file(corrupt)


# ---- 3. COCO keypoint JSON -----------------------------------------------------------------------


def _coco_kps(xy: np.ndarray, v: np.ndarray) -> list[float]:
    return np.concatenate([xy, v[:, None]], axis=1).ravel().tolist()


def test_coco_results_list_with_gaps_and_visibility_flags(tmp_path: Path) -> None:
    flags = np.array([2, 1, 0] + [2] * 14, dtype=float)
    results = [
        {"image_id": 3, "category_id": 1, "keypoints": _coco_kps(_xy(3), np.full(17, 0.25)), "score": 0.9},
        {"image_id": 0, "category_id": 1, "keypoints": _coco_kps(_xy(0), np.linspace(0, 1, 17)), "score": 0.9},
        {"image_id": 1, "category_id": 1, "keypoints": _coco_kps(_xy(1, 0), flags), "score": 0.8},
        {"image_id": 1, "category_id": 1, "keypoints": _coco_kps(_xy(1, 1), np.full(17, 0.5)), "score": 0.7},
        {"image_id": 1, "category_id": 3, "keypoints": [0.0] * 51, "score": 0.99},  # not a person
    ]
    path = tmp_path / "person_keypoints_results.json"
    path.write_text(json.dumps(results))
    for det in (read_coco_json(path), read_keypoints_file(path)):
        assert [p.shape[0] for p in det.people] == [1, 2, 0, 1]  # image 2 had nobody
        assert det.meta["image_ids"] == [0, 1, 2, 3]
        np.testing.assert_array_equal(det.people[0][0, :, 2], np.linspace(0, 1, 17))
        np.testing.assert_array_equal(det.people[1][0, :, :2], _xy(1, 0))
        np.testing.assert_array_equal(det.people[1][0, :3, 2], [0.8, 0.8, 0.0])  # flags 2, 1, 0
        np.testing.assert_array_equal(det.people[1][1, :, :2], _xy(1, 1))
        np.testing.assert_array_equal(det.people[3][0, :, :2], _xy(3))
        assert det.image_size is None


def test_coco_sparse_ids_are_not_frame_numbers(tmp_path: Path) -> None:
    path = tmp_path / "sparse.json"
    path.write_text(json.dumps([{"image_id": i, "category_id": 1, "keypoints": _coco_kps(_xy(0), np.ones(17)),
                                 "score": 1.0} for i in (1, 1000)]))
    det = read_coco_json(path)
    assert det.num_frames == 2 and det.meta["image_ids"] == [1, 1000]


def test_coco_ground_truth_form_takes_size_and_frames_from_images(tmp_path: Path) -> None:
    flags = np.array([2] * 9 + [0] + [1] * 7, dtype=float)
    data = {"images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in (7, 5, 6)],
            "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "keypoints": _coco_kps(_xy(5), flags)},
                            {"id": 2, "image_id": 7, "category_id": 1, "keypoints": _coco_kps(_xy(7), flags)}],
            "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "person_keypoints_val.json"
    path.write_text(json.dumps(data))
    det = read_keypoints_file(path)
    assert det.image_size == (640, 480)
    assert [p.shape[0] for p in det.people] == [1, 0, 1]
    np.testing.assert_array_equal(det.people[2][0, :, :2], _xy(7))
    np.testing.assert_array_equal(det.people[0][0, :, 2], np.where(flags > 0, 1.0, 0.0))


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"foo": 1}', "expected a COCO keypoint list"),
    ("[1, 2]", "expected an object with 'image_id' and 'keypoints'"),
    ('[{"image_id": 1, "keypoints": [1, 2, 3]}]', "has 3 numbers, expected 51"),
    ('[{"image_id": 1, "keypoints": ["a", "b", "c"]}]', "keypoints are not numbers"),
])
def test_malformed_coco_json(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(InputFileError, match=message) as err:
        read_keypoints_file(path)
    assert str(path) in str(err.value)


# ---- 4. OpenPose JSON folder ---------------------------------------------------------------------


def _openpose_person(n_joints: int, missing: int) -> dict[str, list[float]]:
    """Joint i at (1000 + i, 2000 + i) with confidence 0.5, except ``missing`` written as 0, 0, 0."""
    kp = [[1000.0 + i, 2000.0 + i, 0.5] for i in range(n_joints)]
    kp[missing] = [0.0, 0.0, 0.0]
    return {"pose_keypoints_2d": [v for row in kp for v in row], "face_keypoints_2d": []}


def _write_openpose(folder: Path, index: int, people: list[dict[str, list[float]]]) -> None:
    (folder / f"clip_{index:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))


def test_openpose_body25_and_coco18_map_to_coco17(tmp_path: Path) -> None:
    _write_openpose(tmp_path, 10, [])
    _write_openpose(tmp_path, 11, [_openpose_person(25, missing=0), _openpose_person(25, missing=3)])
    _write_openpose(tmp_path, 13, [_openpose_person(18, missing=1)])
    (tmp_path / "notes.txt").write_text("not a keypoint file")
    for det in (read_openpose_folder(tmp_path), read_keypoints_file(tmp_path)):
        assert [p.shape[0] for p in det.people] == [0, 2, 0, 1]  # frame 12 has no file
        body25, coco18 = det.people[1][0], det.people[3][0]
        np.testing.assert_array_equal(body25[L_WRIST], [1007.0, 2007.0, 0.5])  # BODY_25 LWrist is 7
        np.testing.assert_array_equal(body25[R_EAR], [1017.0, 2017.0, 0.5])  # BODY_25 REar is 17
        np.testing.assert_array_equal(body25[COCO17.index("left_hip")], [1012.0, 2012.0, 0.5])
        np.testing.assert_array_equal(body25[0], [0.0, 0.0, 0.0])  # nose missing
        assert det.people[1][1, COCO17.index("right_elbow"), 2] == 0.0  # BODY_25 RElbow (3) missing
        np.testing.assert_array_equal(coco18[R_EAR], [1016.0, 2016.0, 0.5])  # COCO-18 REar is 16
        np.testing.assert_array_equal(coco18[COCO17.index("right_hip")], [1008.0, 2008.0, 0.5])
        np.testing.assert_array_equal(coco18[COCO17.index("left_ankle")], [1013.0, 2013.0, 0.5])
        assert det.meta["first_frame"] == 10 and det.meta["openpose_models"] == ["BODY_25", "COCO"]


def test_openpose_errors(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(InputFileError, match="no OpenPose files named like"):
        read_keypoints_file(tmp_path)
    _write_openpose(tmp_path, 0, [{"pose_keypoints_2d": [1.0] * 60}])
    with pytest.raises(InputFileError, match=r"has 60 pose numbers; expected 75 \(BODY_25\) or 54") as err:
        read_keypoints_file(tmp_path)
    assert "clip_000000000000_keypoints.json" in str(err.value)
    with pytest.raises(InputFileError, match="single OpenPose frame; pass the folder"):
        read_keypoints_file(tmp_path / "clip_000000000000_keypoints.json")


# ---- 5. vp3d's own keypoints file ----------------------------------------------------------------


def test_vp3d_keypoints_become_one_person_per_frame(tmp_path: Path) -> None:
    xy = np.stack([_xy(t) for t in range(3)])
    score = np.full((3, 17), 0.75)
    valid = np.ones((3, 17), bool)
    valid[1, L_WRIST] = False
    kp = Keypoints2D(xy=xy, score=score, valid=valid, format="coco17", image_size=(1280, 720), fps=25.0,
                     timestamps=np.array([0.0, 0.04, 0.1]))
    path = kp.save(tmp_path / "walk.keypoints.npz")
    for det in (read_vp3d_keypoints(path), read_keypoints_file(path)):
        assert [p.shape for p in det.people] == [(1, 17, 3)] * 3
        np.testing.assert_array_equal(det.people[1][0, :, :2], xy[1])
        assert det.people[1][0, L_WRIST, 2] == 0.0 and det.people[1][0, R_EAR, 2] == 0.75
        assert det.image_size == (1280, 720) and det.fps == 25.0
        assert det.timestamps is not None
        np.testing.assert_array_equal(det.timestamps, [0.0, 0.04, 0.1])


# ---- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_keypoints_file, read_coco_json, read_detectron_npz,
                                    read_videopose3d_custom, read_vp3d_keypoints, read_openpose_folder])
def test_nonexistent_path(tmp_path: Path, reader: Any) -> None:
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(InputFileError, match=r"no such file|not a folder") as err:
        reader(missing)
    assert str(missing) in str(err.value)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "keypoints.csv"
    path.write_text("x,y\n")
    with pytest.raises(InputFileError, match=r"unsupported file type '\.csv'"):
        read_keypoints_file(path)
