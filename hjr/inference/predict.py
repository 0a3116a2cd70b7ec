"""`hjr predict`: keypoints of a split from any predictor (hjr.inference.predictors),
with test-time augmentation (hjr.inference.tta), as the competition's CSV, COCO
keypoint results (a coco or images source, `--out *.json`, with each joint's score)
and PNGs: of the crops, or for a coco or images source of the original images with
every hand drawn.
"""

from pathlib import Path

import numpy as np

from data_pipeline.store import HAS_FIELDS
from hjr.inference.predictors import Predictor, load_predictor


def predict_split(predictor: Predictor, split, tta: bool = True, batch_size=32):
    """(ids int64 [N], keypoints float32 [N, 21, 2], labels [N, 21, 2]) of a
    prepared split (data_pipeline.store.Split), sorted by id."""
    return predict_scored(predictor, split, tta, batch_size)[:3]


def predict_scored(predictor: Predictor, split, tta: bool = True, batch_size=32):
    """predict_split's (ids, keypoints, labels) and the joints' scores float32
    [N, 21] in (0, 1] (hjr.core.codec.joint_scores)."""
    from data_pipeline.loader import eval_batches

    parts = [
        predictor.joints(batch["image"], tta)
        for batch in eval_batches(split, batch_size)
    ]
    keypoints = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 21, 2))
    scores = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 21))
    order = np.argsort(split.id, kind="stable")
    return (
        split.id[order],
        keypoints[order].astype(np.float32),
        split.keypoints[order],
        scores[order].astype(np.float32),
    )


def predict(
    model,
    source,
    split="test",
    tta=True,
    batch_size=32,
    out=None,
    visualize=None,
    crop="biased",
    data_dir=None,
    num_visualize=16,
    box=None,
):
    """Predict a split with `model` (a run folder's best network, an exported
    SavedModel, or a Predictor already loaded); write to `out` the submission CSV
    or, for a coco or images source and a `.json` out, COCO keypoint results in the
    original images' pixels, with scores (data_pipeline.coco.results); PNGs to
    `visualize` when given: for a coco or images source every original image once,
    at its size, with its hands drawn; else the first `num_visualize` crops. With
    `box` (shift, scale, seed), the split's crops cut from moved and scaled boxes
    (data_pipeline.boxes); COCO results are mapped back through them.

    Returns (ids, predictions, labels or None) with rows sorted by id.
    """
    from data_pipeline.coco import results
    from data_pipeline.errors import UserError
    from data_pipeline.files import write_json
    from data_pipeline.kaggle_csv import write_keypoints_csv
    from data_pipeline.store import open_split

    as_coco = out is not None and Path(out).suffix.lower() == ".json"
    if as_coco and source.kind not in HAS_FIELDS:
        raise UserError(
            f"COCO results need a coco or images source, not {source}; write a .csv",
            "out",
            out,
        )
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    prepared = open_split(source, split, crop, data_dir, box=box)
    ids, predictions, labels, scores = predict_scored(
        predictor, prepared, tta, batch_size
    )
    labels = labels if prepared.labelled else None
    if as_coco:
        order = source.options.get("order", "coco")
        write_json(out, results(prepared, ids, predictions, order, scores))
    elif out is not None:
        write_keypoints_csv(out, ids, predictions)
    if visualize is not None and "path" in prepared.fields:
        draw_images(prepared, ids, predictions, scores, visualize)
    elif visualize is not None:
        _visualize(
            predictor, prepared, visualize, ids, predictions, labels, num_visualize
        )
    return ids, predictions, labels


def draw_images(split, ids, predictions, scores, folder) -> list:
    """Every image of a coco or images split once, at its size, with each of its
    hands drawn (box, bones, joints, score: hjr.draw.draw_hands), as
    `folder`/<image name>.png; returns the paths written."""
    from data_pipeline.coco import from_crop
    from data_pipeline.files import read_png, write_png
    from hjr.draw import draw_hands

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = split.positions(ids)
    fields = split.fields
    by_image = {}
    for row, points, joint_scores in zip(rows, predictions, scores):
        hand = {
            "bbox": fields["bbox"][row],
            "keypoints": from_crop(points, fields["box"][row]),
            "score": float(fields["score"][row]) * float(np.mean(joint_scores)),
        }
        by_image.setdefault(str(fields["path"][row]), []).append(hand)
    written, names = [], set()
    for path, hands in by_image.items():
        name = Path(path).stem
        if name in names:  # the same name in another folder
            name = f"{name}-{len(names)}"
        names.add(name)
        written.append(
            write_png(folder / f"{name}.png", draw_hands(read_png(path), hands))
        )
    return written


def _visualize(predictor, split, folder, ids, predictions, labels, count):
    """PNGs of images with predicted joints (rings: labels) and, for the map heads,
    the predicted maps (maximum over joints) beside them."""
    import cv2

    from data_pipeline.files import write_png
    from hjr.draw import draw_keypoints

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row = {int(i): n for n, i in enumerate(ids[:count])}  # the first rows by id
    chosen = sorted(row)
    images = split.rows(split.positions(chosen), ("image",))["image"]
    maps = predictor.maps(images)
    for b, index in enumerate(chosen):
        n = row[index]
        truth = None if labels is None else labels[n]
        panel = draw_keypoints(images[b], predictions[n], truth=truth)
        if maps is not None:
            heat = maps[b].max(-1)
            heat = (255 * (heat - heat.min()) / max(np.ptp(heat), 1e-6)).astype(
                np.uint8
            )
            heat = cv2.resize(heat, panel.shape[:2], interpolation=cv2.INTER_NEAREST)
            heat = cv2.cvtColor(
                cv2.applyColorMap(heat, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB
            )
            panel = np.concatenate([panel, heat], axis=1)
        write_png(folder / f"{index:05d}_prediction.png", panel)
    return len(chosen)
