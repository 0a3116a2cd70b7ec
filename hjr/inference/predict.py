"""`hjr predict`: keypoints of a split from any predictor (hjr.inference.predictors),
with test-time augmentation (hjr.inference.tta), as the competition's CSV, COCO
keypoint results (a coco source, `--out *.json`) and PNGs.
"""

from pathlib import Path

import numpy as np

from hjr.inference.predictors import Predictor, load_predictor


def predict_split(predictor: Predictor, split, tta: bool = True, batch_size=64):
    """(ids int64 [N], keypoints float32 [N, 21, 2], labels [N, 21, 2]) of a
    prepared split (data_pipeline.store.Split), sorted by id."""
    from data_pipeline.loader import eval_batches

    predictions = [
        predictor.keypoints(batch["image"], tta)
        for batch in eval_batches(split, batch_size)
    ]
    predictions = np.concatenate(predictions) if predictions else np.zeros((0, 21, 2))
    order = np.argsort(split.id, kind="stable")
    return (
        split.id[order],
        predictions[order].astype(np.float32),
        split.keypoints[order],
    )


def predict(
    model,
    source,
    split="test",
    tta=True,
    batch_size=64,
    out=None,
    visualize=None,
    crop="biased",
    data_dir=None,
    num_visualize=16,
    box=None,
):
    """Predict a split with `model` (a run folder's best network, an exported
    SavedModel, or a Predictor already loaded); write to `out` the submission CSV
    or, for a coco source and a `.json` out, COCO keypoint results in the original
    images' pixels (data_pipeline.coco.results); PNGs to `visualize` when given.
    With `box` (shift, scale, seed), the split's crops cut from moved and scaled
    boxes (data_pipeline.boxes); COCO results are mapped back through them.

    Returns (ids, predictions, labels or None) with rows sorted by id.
    """
    from data_pipeline.coco import results
    from data_pipeline.errors import UserError
    from data_pipeline.files import write_json
    from data_pipeline.kaggle_csv import write_keypoints_csv
    from data_pipeline.store import open_split

    as_coco = out is not None and Path(out).suffix.lower() == ".json"
    if as_coco and source.kind != "coco":
        raise UserError(
            f"COCO results need a coco source, not {source}; write a .csv", "out", out
        )
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    prepared = open_split(source, split, crop, data_dir, box=box)
    ids, predictions, labels = predict_split(predictor, prepared, tta, batch_size)
    labels = labels if prepared.labelled else None
    if as_coco:
        order = source.options.get("order", "coco")
        write_json(out, results(prepared, ids, predictions, order))
    elif out is not None:
        write_keypoints_csv(out, ids, predictions)
    if visualize is not None:
        _visualize(
            predictor, prepared, visualize, ids, predictions, labels, num_visualize
        )
    return ids, predictions, labels


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
