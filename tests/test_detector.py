"""Behind a detector: a COCO file of boxes, a detection results list and a folder of
images give test splits to predict on; results carry scores; --visualize draws on
the original images; bad input is one line."""

import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, train_small_run
from datagen import RHD_SAMPLES, write_coco_hands

from data_pipeline import coco
from data_pipeline.files import read_png
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from hjr.cli import main


def _boxes_and_detections(path, folder, extra=()):
    """(a COCO file of the labelled file's boxes alone, with scores; a detection
    results list of the same boxes plus `extra` entries)."""
    data = json.loads(path.read_text())
    annotations = data["annotations"]
    bbox = [a.get("bbox") for a in annotations]
    boxes = {
        "images": data["images"],
        "annotations": [
            {"id": a["id"], "image_id": a["image_id"], "bbox": b, "score": 0.9}
            for a, b in zip(annotations, bbox)
        ],
    }
    found = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": b, "score": 0.8}
        for a, b in zip(annotations, bbox)
    ]
    boxes_path, found_path = path.parent / "boxes.json", folder / "detections.json"
    boxes_path.write_text(json.dumps(boxes))
    found_path.write_text(json.dumps([*found, *extra]))
    return boxes_path, found_path


def _rhd_copy(tmp_path):
    """The three real RHD frames in mmpose's COCO file, copied with their images."""
    folder = tmp_path / "rhd"
    shutil.copytree(RHD_SAMPLES, folder)
    return folder / "test_rhd.json"


@pytest.mark.parametrize("kind", ["generated", "rhd"])
def test_boxes_detections_and_labels_cut_the_same_crops(tmp_path, kind):
    if kind == "rhd":
        path, options = _rhd_copy(tmp_path), ",order=rhd"
    else:
        path, options = write_coco_hands(tmp_path / "h", 4), ""
    boxes, found = _boxes_and_detections(path, tmp_path)
    where = dict(data_dir=tmp_path / "prepared")
    sources = {
        "labels": f"coco:test={path}{options}",
        "boxes": f"coco:{boxes}{options}",
        "detections": f"coco:{path},boxes={found}{options}",
    }
    splits = {
        k: open_split(parse_source(v), "test", **where) for k, v in sources.items()
    }
    count = len(json.loads(path.read_text())["annotations"])
    assert {k: len(v) for k, v in splits.items()} == dict.fromkeys(sources, count)
    for name in ("boxes", "detections"):
        assert np.array_equal(splits[name].image, splits["labels"].image), name
        np.testing.assert_array_equal(
            splits[name].fields["box"], splits["labels"].fields["box"]
        )
    assert not splits["boxes"].labelled and np.isnan(splits["boxes"].keypoints).all()
    # The labelled file's hands, found by the detections, label them.
    assert splits["detections"].labelled
    np.testing.assert_allclose(
        splits["detections"].keypoints, splits["labels"].keypoints, atol=1e-5
    )
    assert set(splits["boxes"].fields["score"]) == {0.9}
    assert set(splits["detections"].fields["score"]) == {0.8}


def test_detections_are_matched_to_hands_as_coco_does(tmp_path):
    path = write_coco_hands(tmp_path / "h", 4)
    data = json.loads(path.read_text())
    first = data["annotations"][0]
    x, y, w, h = first["bbox"]
    extra = [
        {"image_id": first["image_id"], "bbox": [x + w, y, w, h], "score": 0.95},
        {"image_id": first["image_id"], "bbox": [x + 1, y, w, h], "score": 0.99},
        {"image_id": first["image_id"], "bbox": [x, y, w, h], "score": 0.1},
    ]
    _, found = _boxes_and_detections(path, tmp_path, extra)
    entries = json.loads(found.read_text())
    del entries[2]  # hand 2: no detection
    found.write_text(json.dumps(entries))
    split = open_split(
        parse_source(f"coco:{path},boxes={found},min_score=0.5"),
        "test",
        data_dir=tmp_path / "prepared",
    )
    assert len(split) == 5  # 3 boxes at 0.8, the shifted one, the nudged one
    labelled = ~np.isnan(split.keypoints).all(axis=(1, 2))
    # By score: the nudged box (0.99) takes hand 0, the box beside it (0.95)
    # overlaps no hand, hand 0's own box (0.8) finds it taken; hands 1 and 3.
    scores = split.fields["score"]
    assert list(labelled[np.argsort(-scores, kind="stable")]) == [
        True, False, False, True, True,
    ]  # fmt: skip
    info = json.loads(next((tmp_path / "prepared").rglob("info.json")).read_text())
    assert info["metadata"]["missed"] == 1 and info["metadata"]["hands"] == 4


def test_iou_and_greedy_matching():
    a = (0.0, 0.0, 10.0, 10.0)
    assert coco.iou(a, a) == 1.0 and coco.iou(a, (10.0, 0.0, 5.0, 5.0)) == 0.0
    assert coco.iou(a, (5.0, 0.0, 10.0, 10.0)) == pytest.approx(50 / 150)

    def hand(box, score=1.0, image=1):
        points, flags = np.zeros((21, 2)), np.full(21, 2)
        return coco.Hand(0, image, "x.png", box, points, flags, 1, 0, 0, score)

    truth = [hand(a), hand((20.0, 0.0, 10.0, 10.0))]
    found = [hand((1.0, 0.0, 10.0, 10.0), 0.5), hand(a, 0.9), hand(a, 0.7, image=2)]
    pairs = coco.match(truth, found)
    assert pairs[1] is truth[0]  # the higher score takes the hand
    assert pairs[0] is None and pairs[2] is None  # taken; another image


def _crops_folder(crops, folder):
    """A folder of a split's crops as PNGs, <id>.png, and a file that is not one."""
    folder.mkdir()
    for image, index in zip(crops.image, crops.id):
        cv2.imwrite(str(folder / f"{index:05d}.png"), image[..., ::-1].copy())
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def test_an_images_folder_holds_its_crops_as_they_are(tmp_path):
    crops = open_split(parse_source(SMALL_SYNTHETIC), "test", data_dir=tmp_path / "p")
    folder = _crops_folder(crops, tmp_path / "crops")
    split = open_split(
        parse_source(f"images:{folder}"), "test", data_dir=tmp_path / "p"
    )
    assert len(split) == len(crops) and not split.labelled
    assert np.array_equal(split.image, crops.image)  # padding 1: the image itself
    assert list(split.fields["file_name"]) == [f"{i:05d}.png" for i in crops.id]
    np.testing.assert_array_equal(split.fields["box"], [[0, 0, 128]] * len(crops))


BAD = [
    ("coco:{file},boxes={dets}", "image_id", [{"image_id": 5, "bbox": [0, 0, 9, 9]}]),
    ("coco:{file},boxes={dets}", "'bbox'", [{"image_id": 100, "bbox": [0, 0, 0, 9]}]),
    ("coco:{file},boxes={dets}", "'score'",
     [{"image_id": 100, "bbox": [0, 0, 9, 9], "score": 3}]),
    ("coco:{file},boxes={dets},min_score=1.5", "min_score must be in [0, 1]", []),
    ("coco:{file},min_score=0.5", "min_score goes with boxes=", []),
    ("images:{empty}", "no image files", []),
    ("images:{broken}", "could not be decoded", []),
]  # fmt: skip


@pytest.mark.parametrize("spec, expected, detections", BAD)
def test_bad_detector_input_is_one_line(tmp_path, capsys, spec, expected, detections):
    file = write_coco_hands(tmp_path / "h", 1)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(detections))
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    spec = spec.format(
        file=file, dets=dets, empty=tmp_path / "empty", broken=tmp_path / "broken"
    )
    argv = ["prepare", "--data", spec, "--data-dir", str(tmp_path / "p")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_predict_behind_a_detector_scores_and_draws_the_photos(tmp_path, capsys):
    """The whole path a user takes: a run, a detector's boxes on photos (two hands
    per image, COCO-WholeBody style), results with scores, the photos drawn."""
    run = train_small_run(tmp_path / "run", tmp_path / "prepared", head="offsets")
    path = write_coco_hands(tmp_path / "wb", 3, wholebody=True)
    truth = coco.read_hands(path)[0]
    found = [
        {"image_id": h.image_id, "category_id": 1, "bbox": list(h.bbox), "score": s}
        for h, s in zip(truth, (0.9, 0.8, 0.7, 0.6, 0.5))
    ]
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(found))
    out, pictures = tmp_path / "results.json", tmp_path / "drawn"
    data = [
        "--data",
        f"coco:{path},boxes={dets}",
        "--data-dir",
        str(tmp_path / "prepared"),
    ]
    argv = [
        "predict",
        "--model",
        str(run),
        *data,
        "--out",
        str(out),
        "--visualize",
        str(pictures),
    ]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert len(results) == 5
    for entry, box in zip(results, found):
        joint_scores = np.reshape(entry["keypoints"], (21, 3))[:, 2]
        assert (joint_scores > 0).all() and (joint_scores <= 1).all()
        assert entry["score"] == pytest.approx(
            box["score"] * joint_scores.mean(), abs=1e-4
        )
    images = json.loads(path.read_text())["images"]
    drawn = sorted(pictures.glob("*.png"))
    assert [p.name for p in drawn] == sorted(
        f"{i['file_name'][7:-4]}.png" for i in images
    )
    for image, picture in zip(sorted(images, key=lambda i: i["file_name"]), drawn):
        original = read_png(path.parent.parent / image["file_name"])
        mine = read_png(picture)
        assert mine.shape == original.shape == (image["height"], image["width"], 3)
        assert (mine != original).any(axis=-1).mean() > 0.002  # hands drawn on it
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), *data, "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "0 of 5 labelled hands were found by none of the 5 detections" in out


@pytest.mark.slow
def test_an_images_folder_predicts_what_its_crops_predict(tmp_path):
    run = train_small_run(tmp_path / "run", tmp_path / "prepared")
    predict = ["predict", "--model", str(run), "--no-tta"]
    predict += ["--data-dir", str(tmp_path / "prepared")]
    csv, out = tmp_path / "crops.csv", tmp_path / "results.json"
    assert main([*predict, "--data", SMALL_SYNTHETIC, "--out", str(csv)]) == 0
    crops = open_split(
        parse_source(SMALL_SYNTHETIC), "test", data_dir=tmp_path / "prepared"
    )
    folder = _crops_folder(crops, tmp_path / "crops")
    assert main([*predict, "--data", f"images:{folder}", "--out", str(out)]) == 0
    expected = np.loadtxt(csv, delimiter=",", skiprows=1)[:, 1:].reshape(-1, 21, 2)
    results = json.loads(out.read_text())
    assert [r["file_name"] for r in results] == [f"{i:05d}.png" for i in crops.id]
    points = np.array([np.reshape(r["keypoints"], (21, 3))[:, :2] for r in results])
    points = points[:, coco.file_joints("coco")]  # COCO's order back to hjr's
    np.testing.assert_allclose(points + 0.5, expected, atol=2e-3)  # pixel indices
