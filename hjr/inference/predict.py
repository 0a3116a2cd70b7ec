"""`hjr predict`: keypoints of a split from any predictor (hjr.inference.predictors),
with test-time augmentation (hjr.inference.tta), as the competition's CSV and PNGs.
"""

from pathlib import Path

import numpy as np

from hjr.inference.predictors import Predictor, load_predictor


def predict_dataset(predictor: Predictor, dataset, tta: bool = True):
    """(ids int64 [N], keypoints float32 [N, 21, 2], labels [N, 21, 2]) over a
    dataset of batches from data_pipeline.pipeline.make_dataset, sorted by id."""
    ids, predictions, labels = [], [], []
    for batch in dataset:
        predictions.append(predictor.keypoints(batch["image"], tta))
        ids.append(batch["id"].numpy())
        labels.append(batch["keypoints"].numpy())
    ids = np.concatenate(ids)
    order = np.argsort(ids, kind="stable")
    return ids[order], np.concatenate(predictions)[order], np.concatenate(labels)[order]


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
):
    """Predict a split with `model` (a run folder's best network, an exported
    SavedModel, or a Predictor already loaded); write the submission CSV to `out`
    and PNGs to `visualize` when given.

    Returns (ids, predictions, labels or None) with rows sorted by id.
    """
    from data_pipeline.kaggle_csv import write_keypoints_csv
    from data_pipeline.pipeline import is_labelled, make_dataset, open_split

    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    builder, _ = open_split(source, split, crop, data_dir)
    dataset = make_dataset(source, split, batch_size, crop=crop, data_dir=data_dir)
    ids, predictions, labels = predict_dataset(predictor, dataset, tta)
    labels = labels if is_labelled(builder, split) else None
    if out is not None:
        write_keypoints_csv(out, ids, predictions)
    if visualize is not None:
        _visualize(
            predictor, dataset, visualize, ids, predictions, labels, num_visualize
        )
    return ids, predictions, labels


def _visualize(predictor, dataset, folder, ids, predictions, labels, count):
    """PNGs of images with predicted joints (rings: labels) and, for the map heads,
    the predicted maps (maximum over joints) beside them."""
    import cv2

    from data_pipeline.files import write_png
    from hjr.draw import draw_keypoints

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row = {int(i): n for n, i in enumerate(ids[:count])}  # the first rows by id
    found = {}
    for batch in dataset:
        for image, index in zip(batch["image"].numpy(), batch["id"].numpy()):
            if int(index) in row:
                found[int(index)] = image
        if len(found) == len(row):
            break
    chosen = sorted(found)
    images = np.stack([found[i] for i in chosen])
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
