"""The competition HDF5 reader and the RHD reader on files in the exact layouts."""

import pickle
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from datagen import (
    BAD_FRAME_ID,
    HIDDEN_JOINTS,
    OUT_OF_FRAME_JOINT,
    png_bytes,
    random_frames,
    write_h5,
    write_rhd_tree,
)

from data_pipeline.errors import UserError
from data_pipeline.kaggle_h5 import open_kaggle, to_bgr_chw, write_kaggle_files
from data_pipeline.rhd import choose_hand, open_rhd

H, W = 24, 32  # non-square, so a swapped axis shows


def _named(path: Path, *parts: str) -> str:
    """A regex matching a message that names path and then each part, in order."""
    return ".*".join(re.escape(str(p)) for p in (path, *parts))


# ---------------------------------------------------------------- competition HDF5


def test_train_round_trip(tmp_path):
    images, keypoints = random_frames(5, H, W)
    keypoints[0, 0] = (W, H)
    keypoints[0, 1] = (0, 0)
    write_kaggle_files(tmp_path, images, keypoints, None)
    with h5py.File(tmp_path / "training.h5", "r") as h5:
        assert h5["train/img"].shape == (5, 3, H, W)
        np.testing.assert_array_equal(h5["train/img"][2, 0], images[2, :, :, 2])
    with open_kaggle(tmp_path / "training.h5", "train", chunk_size=2) as reader:
        assert len(reader) == 5 and reader.image_size == (H, W)
        items = list(reader)
        assert reader.skipped == []
    assert [index for index, _, _ in items] == list(range(5))
    for index, image, points in items:
        assert image.dtype == np.uint8 and image.shape == (H, W, 3)
        np.testing.assert_array_equal(image, images[index])
        assert points.dtype == np.float32 and points.shape == (21, 2)
        np.testing.assert_array_equal(points, keypoints[index])


def test_folder_path_and_test_split(tmp_path):
    images, keypoints = random_frames(3, H, W)
    crops, _ = random_frames(4, 128, 128, seed=1)
    write_kaggle_files(tmp_path, images, keypoints, crops)
    with open_kaggle(tmp_path, "train") as reader:
        assert reader.path == tmp_path / "training.h5" and len(reader) == 3
    with open_kaggle(tmp_path, "test") as reader:
        items = list(reader)
        assert reader.path.name == "testing.h5" and reader.skipped == []
    assert [index for index, _, _ in items] == [0, 1, 2, 3]
    for index, image, points in items:
        assert points is None
        np.testing.assert_array_equal(image, crops[index])


def test_float_images_are_rounded_and_clipped(tmp_path):
    rgb = np.array([[[12.6, -4.0, 300.0]]], np.float32)
    stored = to_bgr_chw(rgb[None]).astype(np.float32)
    path = write_h5(
        tmp_path / "testing.h5", {"test/img": np.tile(stored, (1, 1, 128, 128))}
    )
    with open_kaggle(path, "test") as reader:
        [(_, image, _)] = list(reader)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image[5, 7], [13, 0, 255])


def _train(n=5, channels=3, kp_shape=None, n_kp=None, dtype=np.uint8):
    images, keypoints = random_frames(n, H, W)
    img = to_bgr_chw(images).astype(dtype)
    if channels != 3:
        img = np.concatenate([img, img], axis=1)[:, :channels]
    kp = keypoints[:n_kp] if n_kp is not None else keypoints
    if kp_shape is not None:
        kp = np.zeros(kp_shape, np.float32)
    return {"train/img": img, "train/kp_2D": kp}


_ZEROS = np.zeros((1, 3, 4, 4))
BAD_LAYOUTS = {  # id: (datasets, split, what the message names, in order)
    "group": ({"training/img": _ZEROS}, "train", ["group 'train'", "training"]),
    "img-name": ({"train/image": _ZEROS}, "train", ["train/img", "'image'"]),
    "kp-missing": ({"train/img": _ZEROS}, "train", ["train/kp_2D"]),
    "4-channels": (_train(channels=4), "train", ["train/img", "(5, 4, 24, 32)"]),
    "1-channel": (_train(channels=1), "train", ["train/img", "[N, 3, H, W]"]),
    "img-rank": ({"train/img": _ZEROS[0]}, "train", ["train/img", "(3, 4, 4)"]),
    "kp-xyz": (_train(kp_shape=(5, 21, 3)), "train", ["kp_2D", "(5, 21, 3)"]),
    "kp-flat": (_train(kp_shape=(5, 42)), "train", ["kp_2D", "(5, 21, 2)"]),
    "mismatched-n": (_train(n_kp=4), "train", ["kp_2D", "(4, 21, 2)", "(5, 21, 2)"]),
    "bool-dtype": (_train(dtype=bool), "train", ["train/img", "dtype bool"]),
    "test-64": (
        {"test/img": np.zeros((2, 3, 64, 64), np.uint8)},
        "test",
        ["test/img", "(2, 3, 64, 64)", "[N, 3, 128, 128]"],
    ),
    "test-hwc": ({"test/img": _ZEROS.transpose(0, 2, 3, 1)}, "test", ["test/img"]),
}


@pytest.mark.parametrize(
    "datasets, split, parts", list(BAD_LAYOUTS.values()), ids=list(BAD_LAYOUTS)
)
def test_bad_layouts_raise(tmp_path, datasets, split, parts):
    path = write_h5(tmp_path / "file.h5", datasets)
    with pytest.raises(UserError, match=_named(path, *parts)):
        open_kaggle(path, split)


def test_missing_and_unreadable_files_raise(tmp_path):
    with pytest.raises(UserError, match=_named(tmp_path / "training.h5", "not found")):
        open_kaggle(tmp_path, "train")
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file\n")
    with pytest.raises(UserError, match=_named(text, "not a readable HDF5")):
        open_kaggle(text, "train")
    write_kaggle_files(tmp_path, *random_frames(50, H, W))
    full = (tmp_path / "training.h5").read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(UserError, match=_named(cut, "HDF5")):
        list(open_kaggle(cut, "train"))
    with pytest.raises(UserError, match="split 'val'"):
        open_kaggle(tmp_path, "val")


@pytest.mark.parametrize(
    "index, point, what",
    [
        (3, (np.nan, 5.0), "not finite"),
        (2, (W + 0.5, 1.0), "outside"),
        (7, (1.0, -0.1), "outside"),
        (0, (np.inf, 1.0), "not finite"),
    ],
)
def test_bad_keypoints_raise_in_small_file(tmp_path, index, point, what):
    images, keypoints = random_frames(10, H, W)
    keypoints[index, 6] = point
    write_kaggle_files(tmp_path, images, keypoints)
    parts = ["kp_2D", f"sample {index}", "joint 6 at", what, f"[0, {W}] x [0, {H}]"]
    with pytest.raises(UserError, match=_named(tmp_path / "training.h5", *parts)):
        open_kaggle(tmp_path, "train")


@pytest.mark.parametrize("n_bad, raises", [(1, False), (10, False), (11, True)])
def test_bad_keypoints_skipped_up_to_one_percent(tmp_path, n_bad, raises):
    images, keypoints = random_frames(1000, 4, 4)
    bad = list(range(17, 17 + 30 * n_bad, 30))
    keypoints[bad, 0, 0] = np.nan
    write_kaggle_files(tmp_path, images, keypoints)
    if raises:
        with pytest.raises(
            UserError, match=_named(tmp_path, "11 of 1000", "sample 17")
        ):
            open_kaggle(tmp_path, "train")
        return
    with open_kaggle(tmp_path, "train", chunk_size=256) as reader:
        indices = [index for index, _, _ in reader]
        assert [index for index, _ in reader.skipped] == bad
        assert "joint 0" in reader.skipped[0][1]
    assert indices == sorted(set(range(1000)) - set(bad))
    with pytest.raises(UserError, match="max_bad_fraction=0"):
        open_kaggle(tmp_path, "train", max_bad_fraction=0)


# ---------------------------------------------------------------------------- RHD


@pytest.fixture
def rhd(tmp_path):
    return write_rhd_tree(tmp_path)


def test_real_frames_through_rhd_layout(rhd, tmp_path):
    expected = rhd["training"]
    reader = open_rhd(tmp_path, "training")
    assert len(reader) == 4
    items = list(reader)
    assert [sample_id for sample_id, _, _ in items] == [111, 1111, 11111]
    assert [sample_id for sample_id, _ in reader.skipped] == [BAD_FRAME_ID]
    assert re.search(f"joint {OUT_OF_FRAME_JOINT} .* outside", reader.skipped[0][1])
    assert expected["hand"][11111] == "right" and expected["hand"][111] == "left"
    for sample_id, image, keypoints in items:
        assert keypoints.dtype == np.float32 and keypoints.shape == (21, 2)
        np.testing.assert_array_equal(keypoints, expected["keypoints"][sample_id])
        bgr = cv2.imread(str(expected["png"][sample_id]))
        assert image.dtype == np.uint8 and image.shape == (320, 320, 3)
        np.testing.assert_array_equal(image, bgr[..., ::-1])
    assert expected["uv_vis"][1111][21 + 1, 0] < 0, "other hand out of frame: no skip"


def test_rhd_visibility_is_the_chosen_hands_flags(rhd):
    """The fixtures' annotation flags every joint visible; the tree flags
    HIDDEN_JOINTS of frame 1111's hand hidden and every joint of the other hand."""
    reader = open_rhd(rhd["rhd_dir"], "training")
    flags = {i: visible for i, _, _, visible in reader.samples(visibility=True)}
    assert sorted(flags) == [111, 1111, 11111]
    for sample_id, visible in flags.items():
        assert visible.dtype == bool and visible.shape == (21,)
        np.testing.assert_array_equal(visible, rhd["training"]["visible"][sample_id])
    assert np.flatnonzero(~flags[1111]).tolist() == HIDDEN_JOINTS
    assert flags[111].all() and flags[11111].all()
    assert [len(sample) for sample in reader.samples([111])] == [3]


def test_evaluation_split_from_rhd_folder(rhd):
    reader = open_rhd(rhd["rhd_dir"], "evaluation")
    items = list(reader)
    assert [sample_id for sample_id, _, _ in items] == [0, 1, 2]
    assert reader.skipped == []
    for sample_id, _, keypoints in items:
        np.testing.assert_array_equal(
            keypoints, rhd["evaluation"]["keypoints"][sample_id]
        )


def test_colour_is_rgb(rhd):
    rgb = np.zeros((320, 320, 3), np.uint8)
    rgb[:10] = (255, 0, 0)
    rgb[10:20] = (0, 255, 0)
    rgb[20:30, :5] = (1, 2, 3)
    colour = rhd["rhd_dir"] / "evaluation" / "color" / "00000.png"
    colour.write_bytes(png_bytes(rgb))
    np.testing.assert_array_equal(
        open_rhd(rhd["rhd_dir"], "evaluation").read_image(0), rgb
    )


@pytest.mark.parametrize(
    "left, right, hand, channels",
    [
        (201, 200, "left", 1),
        (200, 200, "right", 1),
        (200, 201, "right", 1),
        (0, 0, "right", 1),
        (201, 200, "left", 3),
    ],
)
def test_hand_with_more_mask_pixels_wins(rhd, left, right, hand, channels):
    mask = np.ones(320 * 320, np.uint8)
    mask[:left] = np.arange(left) % 16 + 2
    mask[1000 : 1000 + right] = np.arange(right) % 16 + 18
    mask = mask.reshape(320, 320)
    if channels == 3:
        mask = np.repeat(mask[..., None], 3, axis=2)
    cv2.imwrite(str(rhd["rhd_dir"] / "evaluation" / "mask" / "00000.png"), mask)
    uv_vis = rhd["evaluation"]["uv_vis"][0]
    expected = uv_vis[:21, :2] if hand == "left" else uv_vis[21:, :2]
    _, _, keypoints = next(iter(open_rhd(rhd["rhd_dir"], "evaluation")))
    np.testing.assert_array_equal(keypoints, expected)


def test_choose_hand_label_ranges():
    assert choose_hand(np.array([[2, 17, 1, 1, 0]])) == "left"
    assert choose_hand(np.array([[2, 17, 18, 33, 1]])) == "right"
    assert choose_hand(np.array([[18, 1, 1, 1, 17, 16]])) == "left"


def test_rhd_layout_errors(rhd, tmp_path):
    with pytest.raises(
        UserError, match=_named(tmp_path / "nowhere", "RHD_published_v2")
    ):
        open_rhd(tmp_path / "nowhere", "training")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        UserError, match=_named(tmp_path / "empty", "'training' folder")
    ):
        open_rhd(tmp_path / "empty", "training")
    with pytest.raises(UserError, match="split 'train'"):
        open_rhd(tmp_path, "train")
    anno = rhd["rhd_dir"] / "evaluation" / "anno_evaluation.pickle"
    anno.unlink()
    with pytest.raises(UserError, match=_named(anno, "not found")):
        open_rhd(tmp_path, "evaluation")


@pytest.mark.parametrize(
    "content, parts",
    [
        (b"\x00garbage", ["not a readable pickle"]),
        ([1, 2], ["holds a list", "dict"]),
        ({0: {"xyz": np.zeros((42, 3))}}, ["sample 0", "'uv_vis'"]),
        ({0: {"uv_vis": np.zeros((21, 3))}}, ["sample 0", "'uv_vis'", "(21, 3)"]),
        ({"0": {"uv_vis": np.zeros((42, 3))}}, ["key '0'", "int"]),
    ],
    ids=["garbage", "list", "no-uv_vis", "uv_vis-shape", "str-key"],
)
def test_bad_pickle_raises(rhd, content, parts):
    anno = rhd["rhd_dir"] / "training" / "anno_training.pickle"
    anno.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content))
    with pytest.raises(UserError, match=_named(anno, *parts)):
        open_rhd(rhd["rhd_dir"], "training")


@pytest.mark.parametrize("kind", ["color", "mask"])
@pytest.mark.parametrize("damage", ["garbage", "missing", "empty", "wrong-size"])
def test_bad_png_raises_naming_file_and_sample(rhd, kind, damage):
    path = rhd["rhd_dir"] / "training" / kind / "01111.png"
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"\x89PNG not really" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        cv2.imwrite(str(path), np.zeros((100, 320, 3), np.uint8))
    reader = open_rhd(rhd["rhd_dir"], "training")
    with pytest.raises(UserError, match=_named(path, "sample 1111")):
        list(reader)
