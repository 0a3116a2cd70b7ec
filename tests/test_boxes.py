"""Imperfect crops (data_pipeline.boxes): boxes moved and scaled, for evaluation
(--shift/--scale) and training (--box-jitter), with the keypoints moved exactly."""

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC

from data_pipeline import boxes
from data_pipeline.crop import biased_box, cut_square
from data_pipeline.files import read_png
from data_pipeline.kaggle_csv import read_keypoints_csv
from data_pipeline.kaggle_h5 import write_kaggle_files
from data_pipeline.loader import train_batch, train_batches
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from hjr.cli import main

FRAME = 320
GROUPS = (slice(0, 1), slice(1, 11), slice(11, 21))  # joints of the R, G, B discs


def disc_frames(count, seed=0):
    """Frames with three discs (red, green, blue) and keypoints on their centres
    (joint 0 on the red, 1-10 on the green, 11-20 on the blue one)."""
    rng = np.random.default_rng(seed)
    import cv2

    frames = np.zeros((count, FRAME, FRAME, 3), np.uint8)
    keypoints = np.zeros((count, 21, 2), np.float32)
    for n in range(count):
        centre = rng.uniform(110, 210, 2)
        for channel, joints in enumerate(GROUPS):
            x, y = np.round(centre + rng.uniform(-45, 45, 2))
            plane = np.ascontiguousarray(frames[n, ..., channel])
            cv2.circle(plane, (int(x), int(y)), 4, 255, -1)
            frames[n, ..., channel] = plane
            keypoints[n, joints] = (x + 0.5, y + 0.5)  # pixel (x, y)'s centre
    return frames, keypoints


def centroids(crops):
    """[N, 3, 2]: the centroid of each colour channel of crops uint8 [N, S, S, 3]."""
    size = crops.shape[1]
    centres = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1) + 0.5
    weights = crops.astype(np.float64)
    mass = weights.sum((1, 2))  # [N, 3]
    moments = np.einsum("nhwc,hwd->ncd", weights, centres)
    return moments / mass[..., None]


def check_on_discs(crops, keypoints, atol=0.25):
    """Each disc's centroid in the crops sits on its joints' keypoints, where the
    disc lies wholly inside the crop (touches none of its border pixels), as most
    do; returns how many were checked."""
    with np.errstate(invalid="ignore"):
        found = centroids(crops)
    checked = 0
    for channel, joints in enumerate(GROUPS):
        expected = keypoints[:, joints.start]
        assert np.ptp(keypoints[:, joints], axis=1).max() < 1e-3
        plane = crops[..., channel]
        rows = np.concatenate([plane[:, :2], plane[:, -2:]], 1)
        columns = np.concatenate([plane[:, :, :2], plane[:, :, -2:]], 2)
        edge = np.maximum(rows.max((1, 2)), columns.max((1, 2)))
        inside = (edge == 0) & (plane.max((1, 2)) > 0)  # all of the disc is there
        np.testing.assert_allclose(found[inside, channel], expected[inside], atol=atol)
        checked += inside.sum()
    assert checked >= len(crops)  # a third of the discs
    return checked


@pytest.fixture
def discs(tmp_path):
    frames, keypoints = disc_frames(24)
    write_kaggle_files(tmp_path / "discs", frames, keypoints)
    return parse_source(f"{tmp_path / 'discs'}:validation=10")


def test_moved_crops_keep_the_drawn_points_on_their_joints(discs, data_dir):
    plain = open_split(discs, "validation", data_dir=data_dir)
    check_on_discs(plain.image, plain.keypoints)
    seen = {}
    for shift, scale in ((16, 1.25), (32, 1.0), (4, 1.25), (0, 1.25)):
        box = (shift, scale, 3)
        moved = seen[box] = open_split(discs, "validation", data_dir=data_dir, box=box)
        check_on_discs(moved.image, moved.keypoints)
        draws = boxes.evaluation_draws(moved.id, shift, scale, 3)
        assert np.allclose(np.hypot(draws[:, 0], draws[:, 1]), shift)
        assert (draws[:, 2] >= 1 / scale - 1e-12).all() and (draws[:, 2] <= scale).all()
        centre = (plain.keypoints - 64 - draws[:, None, :2]) / draws[:, None, 2:] + 64
        np.testing.assert_allclose(moved.keypoints, centre, atol=1e-4)
    again = open_split(discs, "validation", data_dir=data_dir, box=(16, 1.25, 3))
    other = open_split(discs, "validation", data_dir=data_dir, box=(16, 1.25, 4))
    assert np.array_equal(again.image, seen[16, 1.25, 3].image)  # seeded
    assert not np.allclose(again.keypoints, other.keypoints)


def test_moved_crops_are_one_cut_from_the_frame(discs, data_dir):
    """A moved crop is the moved box cut once, bilinearly, from the frame itself
    (not from stored crops or resampled surroundings); a box moved by nothing
    gives the stored crop (here, where no disc reaches the crop's outer ring, in
    which the competition's resize of the stored crop repeats the patch's edge)."""
    frames, keypoints = disc_frames(24)
    moved = open_split(discs, "validation", data_dir=data_dir, box=(24, 1.25, 1))
    draws = boxes.evaluation_draws(moved.id, 24, 1.25, 1)
    for row, index in enumerate(moved.id):
        box = biased_box(keypoints[index], FRAME, FRAME)
        (frame_box,) = boxes.frame_boxes([box], draws[row : row + 1])
        np.testing.assert_array_equal(
            moved.image[row], cut_square(frames[index], frame_box)
        )
    for split in ("train", "validation"):
        whole = open_split(discs, split, data_dir=data_dir, context=True)
        rows = np.arange(len(whole))
        still = np.tile([0.0, 0.0, 1.0], (len(whole), 1))
        crops, points = boxes.perturb(whole.context, rows, whole.keypoints, still)
        difference = np.abs(crops.astype(int) - whole.image).max()
        assert difference <= 1  # bilinear rounding at most (here: none)
        np.testing.assert_array_equal(points, whole.keypoints)


def test_a_source_of_crops_is_moved_within_its_crop(tmp_path, data_dir):
    """The competition's test crops have no frame: each is its own frame, so a
    move by whole pixels is a shift with zeros coming in."""
    crops = np.random.default_rng(0).integers(1, 256, (3, 128, 128, 3), np.uint8)
    frames, keypoints = disc_frames(4)
    write_kaggle_files(tmp_path / "k", frames, keypoints, crops)
    test = open_split(
        parse_source(f"{tmp_path / 'k'}:validation=1"),
        "test",
        data_dir=data_dir,
        context=True,
    )
    np.testing.assert_array_equal(test.image, crops)
    moved, points = boxes.perturb(
        test.context, [1], np.full((1, 21, 2), 40.0), [[5, -7, 1.0]]
    )
    np.testing.assert_array_equal(moved[0, 7:, :123], crops[1, :121, 5:])
    assert moved[0, :7].max() == 0 and moved[0, :, 123:].max() == 0
    np.testing.assert_allclose(points[0, 0], (35.0, 47.0))


def test_box_jitter_batches_are_seeded_and_keep_joints_on_the_points(discs, data_dir):
    train = open_split(discs, "train", data_dir=data_dir, context=True)
    plain = train_batch(train, 0, 5, 6)
    for off in (None, (0, 1)):
        assert_same_batch(train_batch(train, 0, 5, 6, jitter=off), plain)
    batch = train_batch(train, 0, 5, 6, jitter=(16.0, 1.25))
    assert np.array_equal(batch["id"], plain["id"])
    assert np.array_equal(batch["draws"], plain["draws"])  # augmentation unchanged
    assert not np.allclose(batch["keypoints"], plain["keypoints"])
    check_on_discs(batch["image"], batch["keypoints"])
    same = train_batch(train, 0, 5, 6, jitter=(16.0, 1.25))
    assert_same_batch(same, batch)
    other = train_batch(train, 1, 5, 6, jitter=(16.0, 1.25))
    assert not np.array_equal(other["image"], batch["image"])
    threaded = train_batches(train, 0, 6, 5, 7, workers=2, jitter=(16.0, 1.25))
    assert_same_batch(next(threaded), batch)


def assert_same_batch(got, want):
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_browse_shift_and_scale_draws_joints_on_the_points(discs, tmp_path, data_dir):
    out = tmp_path / "browse"
    argv = ["browse", "--data", f"{discs.path}:validation=10", "--split", "validation"]
    argv += ["--shift", "16", "--scale", "1.25", "--out", str(out)]
    assert main([*argv, "--data-dir", str(data_dir)]) == 0
    ids, keypoints = read_keypoints_csv(out / "keypoints.csv")
    crops = np.stack([read_png(out / f"{i:05d}.png") for i in ids])
    check_on_discs(crops, keypoints)


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--shift", "80", "--scale", "1.25"], "--shift 80 --scale 1.25: moves"),
        (["--scale", "0.5"], "--scale 0.5: expected a number >= 1"),
    ],
)
def test_moves_out_of_the_surroundings_are_refused(flags, expected, tmp_path, capsys):
    argv = ["browse", "--data", SMALL_SYNTHETIC, "--out", str(tmp_path / "b"), *flags]
    assert main([*argv, "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1] and "Traceback" not in "\n".join(err)


def test_box_jitter_setting_is_checked(tmp_path, capsys):
    argv = ["train", "--preset", "quick", "--head", "fc", "--box-jitter", "100,1.5"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--box-jitter 100,1.5: moves the box out" in err


def test_moved_coco_boxes_map_predictions_back_to_the_image(tmp_path):
    """A COCO source's moved crops carry their moved boxes: keypoints of a moved
    crop go back to the file's own points."""
    import json

    from datagen import write_coco_hands

    from data_pipeline import coco

    path = write_coco_hands(tmp_path / "h", 4)
    source = parse_source(f"coco:test={path}")
    moved = open_split(source, "test", data_dir=tmp_path / "p", box=(16, 1.25, 0))
    data = json.loads(path.read_text())
    for row, annotation in enumerate(data["annotations"]):
        points = np.reshape(annotation["keypoints"], (21, 3))
        back = coco.from_crop(moved.keypoints[row], moved.fields["box"][row])
        labelled = points[:, 2] > 0
        order = coco.file_joints("coco")
        np.testing.assert_allclose(
            back[order][labelled], points[labelled, :2], atol=1e-3
        )
