"""COCO keypoint sources: hands in (crops, joint order, unlabelled joints,
COCO-WholeBody), COCO results out, mmpose's metrics, and bad input."""

import json

import cv2
import numpy as np
import pytest
from datagen import RHD_SAMPLES, write_coco_hands

from data_pipeline import coco
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from hjr.cli import main
from hjr.inference.mmpose_metrics import mmpose_scores

RHD_COCO = RHD_SAMPLES / "test_rhd.json"


def truths(path):
    """Our positions (RHD order, NaN: unlabelled) of each hand of a written file."""
    data = json.loads(path.read_text())
    return [np.array(t) for a in data["annotations"] for t in a["hjr_truth"]]


def check_crops(source, path, data_dir, splits=("train", "validation")):
    """Every prepared hand's keypoints are its written positions moved into its
    box's crop; returns {split: Split}."""
    expected, seen = truths(path), {}
    for split in splits:
        prepared = seen[split] = open_split(source, split, data_dir=data_dir)
        for row, index in enumerate(prepared.id):
            x0, y0, side = prepared.fields["box"][row]
            moved = (expected[index] - (x0, y0)) * 128 / side
            np.testing.assert_allclose(prepared.keypoints[row], moved, atol=1e-4)
            assert np.array_equal(
                np.isnan(prepared.keypoints[row]), np.isnan(expected[index])
            )
    return seen


def test_crop_puts_points_drawn_into_the_frame_on_their_joints(tmp_path):
    """Three joints drawn as discs of their own colour into a frame land, after
    the crop, at the crop keypoints (their discs' centroids), also near and past
    the frame's border (zeros)."""
    frame = np.zeros((200, 300, 3), np.uint8)
    index_px = np.array([[40.0, 60.0], [97.0, 130.0], [12.0, 183.0]])  # COCO's
    for channel, (x, y) in enumerate(index_px):
        plane = np.ascontiguousarray(frame[..., channel])
        cv2.circle(plane, (int(x), int(y)), 5, 255, -1)  # centre at pixel (x, y)
        frame[..., channel] = plane
    cv2.imwrite(str(tmp_path / "f.png"), frame[..., ::-1])
    flat = np.zeros((21, 3))
    joints = [0, 5, 20]  # hjr order; order=rhd keeps them
    flat[joints, :2], flat[joints, 2] = index_px, 2
    bbox = [10.0, 50.0, 100.0, 140.0]  # the crop reaches past the left border
    data = {
        "images": [{"id": 1, "file_name": "f.png", "width": 300, "height": 200}],
        "annotations": [
            {"id": 7, "image_id": 1, "bbox": bbox, "keypoints": flat.ravel().tolist()}
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(data))
    source = parse_source(f"coco:test={tmp_path / 'a.json'},order=rhd")
    prepared = open_split(source, "test", data_dir=tmp_path / "prep")
    x0, y0, side = prepared.fields["box"][0]
    assert side == pytest.approx(1.25 * 140) and x0 == pytest.approx(60 - side / 2)
    assert np.isnan(prepared.keypoints[0, 1]).all() and not prepared.visible[0, 1]
    crop = prepared.image[0].astype(np.float64)
    centres = np.stack(np.meshgrid(np.arange(128), np.arange(128)), -1) + 0.5
    for channel, joint in enumerate(joints):
        weights = crop[..., channel]
        centroid = (weights[..., None] * centres).sum((0, 1)) / weights.sum()
        expected = (index_px[channel] + 0.5 - (x0, y0)) * 128 / side
        np.testing.assert_allclose(prepared.keypoints[0, joint], expected, atol=1e-4)
        np.testing.assert_allclose(centroid, expected, atol=0.1)
    assert crop[:, :4].max() == 0  # left of the frame: zeros


def test_hand_file_with_hold_out(tmp_path):
    path = write_coco_hands(tmp_path / "hands", 12)
    source = parse_source(f"coco:{path},validation=3")
    seen = check_crops(source, path, tmp_path / "prep")
    assert len(seen["train"]) == 9 and len(seen["validation"]) == 3
    ids = sorted(np.concatenate([s.id for s in seen.values()]).tolist())
    assert ids == list(range(12))
    train = seen["train"]
    assert train.has_visibility and train.labelled and train.kind == "coco"
    assert np.isnan(train.keypoints).any()  # every third hand has one unlabelled
    labelled = ~np.isnan(train.keypoints[..., 0])
    assert (train.visible <= labelled).all()  # visible implies labelled
    assert 0 < train.visible[labelled].mean() < 1  # v = 1: hidden
    assert set(train.fields["image_id"].tolist()) <= set(range(100, 112))


def test_separate_files_and_joint_orders(tmp_path):
    coco_file = write_coco_hands(tmp_path / "c", 4, order="coco")
    rhd_file = write_coco_hands(tmp_path / "r", 4, order="rhd")
    spec = f"coco:train={coco_file},validation={coco_file},test={coco_file}"
    splits = ("train", "validation", "test")
    seen = check_crops(parse_source(spec), coco_file, tmp_path / "p1", splits)
    assert [len(seen[s]) for s in splits] == [4, 4, 4]
    as_rhd = check_crops(
        parse_source(f"coco:{rhd_file},order=rhd,validation=1"), rhd_file, tmp_path
    )
    assert len(as_rhd["train"]) == 3
    # the same file read in the wrong order puts the thumb's tip at its base
    wrong = open_split(
        parse_source(f"coco:test={coco_file},order=rhd"), "test", data_dir=tmp_path
    )
    np.testing.assert_allclose(
        wrong.keypoints[1, 1], seen["test"].keypoints[1, 4], atol=1e-5
    )


def test_wholebody_gives_each_valid_hand(tmp_path):
    path = write_coco_hands(tmp_path / "wb", 6, wholebody=True)
    source = parse_source(f"coco:{path},validation=2")
    seen = check_crops(source, path, tmp_path / "prep")
    hands = np.concatenate([s.fields["hand"] for s in seen.values()])
    assert len(hands) == 6 + 3  # a left hand each, a right one every other person
    assert sorted(hands.tolist()) == [1] * 6 + [2] * 3


def test_real_rhd_frames_in_mmpose_coco_file(tmp_path):
    """mmpose's RHD file (order=rhd, every v = 1: no visibility told): the crop
    keypoints map back to the file's, and a thumb's tip lies farther from the
    wrist than its base."""
    source = parse_source(f"coco:test={RHD_COCO},order=rhd")
    prepared = open_split(source, "test", data_dir=tmp_path)
    data = json.loads(RHD_COCO.read_text())
    assert len(prepared) == 3 and not prepared.has_visibility
    assert prepared.visible.all()
    for row, annotation in enumerate(data["annotations"]):
        back = coco.from_crop(prepared.keypoints[row], prepared.fields["box"][row])
        points = np.asarray(annotation["keypoints"])[:, :2]
        np.testing.assert_allclose(back, points, atol=1e-3)
        wrist, tip, base = prepared.keypoints[row, [0, 1, 4]]
        assert np.linalg.norm(tip - wrist) > np.linalg.norm(base - wrist)


def test_results_are_in_the_original_pixels_and_order(tmp_path):
    path = write_coco_hands(tmp_path / "wb", 4, wholebody=True)
    source = parse_source(f"coco:test={path}")
    prepared = open_split(source, "test", data_dir=tmp_path / "prep")
    labels = np.nan_to_num(prepared.keypoints, nan=64.0)
    out = coco.results(prepared, prepared.id, labels, "coco")
    data = json.loads(path.read_text())
    hands = [
        (a["image_id"], side, a[f"{side}hand_kpts"])
        for a in data["annotations"]
        for side in ("left", "right")
        if a[f"{side}hand_valid"]
    ]
    assert len(out) == len(hands) == 6
    for entry, (image_id, side, kpts) in zip(out, hands):
        assert entry["image_id"] == image_id and entry["hand"] == side
        assert entry["category_id"] == 1 and entry["score"] == 1.0
        mine = np.reshape(entry["keypoints"], (21, 3))
        theirs = np.reshape(kpts, (21, 3))
        labelled = theirs[:, 2] > 0
        np.testing.assert_allclose(mine[labelled, :2], theirs[labelled, :2], atol=2e-3)


def reference_mmpose(pred, gt, mask, sizes):
    """mmpose's keypoint_pck_accuracy / keypoint_auc / keypoint_epe, with loops."""

    def pck(norms, thr):
        accs = []
        for k in range(gt.shape[1]):
            d = [
                np.linalg.norm((pred[n, k] - gt[n, k]) / norms[n])
                for n in range(len(gt))
                if mask[n, k]
            ]
            if d:
                accs.append(np.mean(np.array(d) < thr))
        return np.mean(accs)

    boxes = np.repeat(sizes[:, None], 2, 1)
    flat = np.full((len(gt), 2), 30.0)
    epe = [np.linalg.norm(pred[n, k] - gt[n, k]) for n, k in zip(*np.nonzero(mask))]
    return (
        pck(boxes, 0.2),
        sum(pck(flat, i / 20) / 20 for i in range(20)),
        np.mean(epe),
    )


def test_mmpose_metrics_match_their_definitions():
    rng = np.random.default_rng(3)
    labels = rng.uniform(0, 128, (30, 21, 2))
    predictions = labels + rng.normal(0, 20, labels.shape)
    labels[rng.random((30, 21)) < 0.2] = np.nan
    sides = rng.uniform(60, 300, 30)
    sizes = sides / 1.25
    result = mmpose_scores(predictions, labels, sides, sizes)
    scale = sides[:, None, None] / 128
    mask = ~np.isnan(labels[..., 0])
    gt = np.nan_to_num(labels) * scale
    expected = reference_mmpose(predictions * scale, gt, mask, sizes)
    got = (result["mmpose_pck@0.2"], result["mmpose_auc"], result["mmpose_epe"])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert 0.1 < expected[0] < 0.95 and 0.1 < expected[1] < 0.95


def bad_coco_inputs(tmp_path):
    path = write_coco_hands(tmp_path / "ok", 3)
    good = json.loads(path.read_text())

    def variant(name, change):
        data = json.loads(json.dumps(good))
        change(data)
        (tmp_path / "ok" / "annotations" / f"{name}.json").write_text(json.dumps(data))
        return tmp_path / "ok" / "annotations" / f"{name}.json"

    missing = variant("missing", lambda d: d["images"][1].update(file_name="no.png"))
    zero = variant("zero", lambda d: d["annotations"][2]["bbox"].__setitem__(2, 0))
    short = variant("short", lambda d: d["annotations"][0]["keypoints"].pop())
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "text.json").write_text("not json")
    return [
        (f"coco:{missing},validation=1", "no.png"),
        (f"coco:{zero},validation=1", "annotation 1002, field 'bbox'"),
        (f"coco:{short},validation=1", "annotation 1000, field 'keypoints': 62"),
        (f"coco:{path},order=mmpose", "order 'mmpose'"),
        (f"coco:{tmp_path / 'list.json'}", "not a COCO keypoint file"),
        (f"coco:{tmp_path / 'text.json'}", "text.json: not JSON"),
        (f"coco:{tmp_path / 'none.json'}", "no such annotation file"),
        (f"coco:{path},padding=-1", "padding"),
        (f"coco:{path},colour=red", "unknown option 'colour'"),
    ]


def test_bad_coco_input_gives_one_line(tmp_path, capsys):
    for data, expected in bad_coco_inputs(tmp_path):
        capsys.readouterr()
        argv = ["prepare", "--data", data, "--data-dir", str(tmp_path / "prep")]
        assert main(argv) == 2, data
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("hjr: error: ") and expected in err[-1], (data, err)
        assert "Traceback" not in "\n".join(err)


@pytest.mark.slow
def test_train_predict_evaluate_browse_on_coco_wholebody(tmp_path, capsys):
    """The commands a user runs on their own COCO-WholeBody file, one after the
    other: the unlabelled joints of every third hand train, score and draw as
    absent."""
    from data_pipeline.files import read_png

    path = write_coco_hands(tmp_path / "wb", 16, wholebody=True)
    data = ["--data", f"coco:{path},validation=4", "--data-dir", str(tmp_path / "p")]
    run = tmp_path / "run"
    train = ["train", "--preset", "quick", "--head", "offsets", "--steps", "2"]
    train += ["--batch-size", "4", "--eval-every", "2", "--out", str(run), *data]
    assert main(train) == 0
    best = json.loads((run / "best.json").read_text())
    assert np.isfinite(best["val_kaggle_mse"])

    results = tmp_path / "results.json"
    predict = ["predict", "--model", str(run), "--split", "validation"]
    assert main([*predict, "--out", str(results), *data]) == 0
    written = json.loads(results.read_text())
    assert len(written) == 4 and {e["hand"] for e in written} <= {"left", "right"}
    for entry in written:  # on the hand's image, around its box
        x, y = np.reshape(entry["keypoints"], (21, 3))[:, :2].T
        assert (x > -200).all() and (x < 840).all() and (y > -200).all()

    capsys.readouterr()
    report = tmp_path / "eval" / "report.json"
    evaluate = ["evaluate", "--model", str(run), "--json", str(report), *data]
    assert main(evaluate) == 0
    shown = capsys.readouterr().out
    for key in ("mmpose_pck@0.2", "mmpose_auc", "mmpose_epe", "kaggle_mse"):
        assert key in shown
    result = json.loads(report.read_text())
    assert np.isfinite(result["mmpose_epe"]) and np.isfinite(result["epe"])
    assert report.with_suffix(".worst.png").is_file()

    out = tmp_path / "browse"
    browse = ["browse", "--split", "train", "--num", "6", "--out", str(out), *data]
    assert main(browse) == 0
    assert read_png(out / "grid.png").shape[0] >= 192
    assert len(list(out.glob("*_overlay.png"))) == 6


def test_boxes_without_keypoints_give_an_unlabelled_test_split(tmp_path):
    """A detector's boxes (every v = 0): one unlabelled sample per box, to predict
    on; they cannot be trained on."""
    path = write_coco_hands(tmp_path / "h", 3)
    data = json.loads(path.read_text())
    for annotation in data["annotations"]:
        annotation["keypoints"] = [0] * 63
    path.write_text(json.dumps(data))
    prepared = open_split(parse_source(f"coco:test={path}"), "test", data_dir=tmp_path)
    assert len(prepared) == 3 and not prepared.labelled
    assert np.isnan(prepared.keypoints).all()
    with pytest.raises(Exception, match="has no train split"):
        open_split(parse_source(f"coco:{path}"), "train", data_dir=tmp_path)


def test_unmoved_coco_crops_are_the_stored_crops(tmp_path):
    """A box moved by nothing, cut from the stored surroundings, gives the stored
    crop within bilinear rounding (a COCO box is not whole pixels)."""
    from data_pipeline import boxes

    path = write_coco_hands(tmp_path / "h", 6)
    split = open_split(
        parse_source(f"coco:test={path}"), "test", data_dir=tmp_path, context=True
    )
    still = np.tile([0.0, 0.0, 1.0], (len(split), 1))
    rows = np.arange(len(split))
    crops, points = boxes.perturb(split.context, rows, split.keypoints, still)
    assert np.abs(crops.astype(int) - split.image).max() <= 1
    np.testing.assert_array_equal(points, split.keypoints)
    np.testing.assert_array_equal(split.context.boxes, split.fields["box"])


def test_a_photos_large_hand_is_moved_from_a_smaller_copy(tmp_path):
    """A hand box of 512 image pixels or more keeps its surroundings averaged over
    blocks (2 to 3 stored pixels a crop pixel): discs drawn at its joints stay
    under the keypoints of the crops cut from them, moved or not."""
    from data_pipeline import boxes

    frame = np.zeros((1200, 1600, 3), np.uint8)
    index_px = np.array([[700.0, 500.0], [1000.0, 700.0], [800.0, 900.0]])
    for channel, (x, y) in enumerate(index_px):
        plane = np.ascontiguousarray(frame[..., channel])
        cv2.circle(plane, (int(x), int(y)), 24, 255, -1)
        frame[..., channel] = plane
    cv2.imwrite(str(tmp_path / "big.png"), frame[..., ::-1])
    flat = np.zeros((21, 3))
    joints = [0, 5, 20]
    flat[joints, :2], flat[joints, 2] = index_px, 2
    data = {
        "images": [{"id": 1, "file_name": "big.png", "width": 1600, "height": 1200}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "bbox": [600.0, 400.0, 520.0, 600.0],
                "keypoints": flat.ravel().tolist(),
            }
        ],
    }
    (tmp_path / "big.json").write_text(json.dumps(data))
    source = parse_source(f"coco:test={tmp_path / 'big.json'},order=rhd")
    whole = open_split(source, "test", data_dir=tmp_path / "p", context=True)
    assert whole.context.index[0, 5] == 2  # step: side 750 // 256
    centres = np.stack(np.meshgrid(np.arange(128), np.arange(128)), -1) + 0.5
    cuts = [boxes.perturb(whole.context, [0], whole.keypoints, [[0.0, 0.0, 1.0]])]
    for box in ((24, 1.25, 0), (24, 1.25, 1), (40, 1.0, 3)):
        split = open_split(source, "test", data_dir=tmp_path / "p", box=box)
        cuts.append((split.image, split.keypoints))
    for crops, keypoints in cuts:
        crop = crops[0].astype(np.float64)
        for channel, joint in enumerate(joints):
            weights = crop[..., channel]
            centroid = (weights[..., None] * centres).sum((0, 1)) / weights.sum()
            np.testing.assert_allclose(centroid, keypoints[0, joint], atol=0.1)
