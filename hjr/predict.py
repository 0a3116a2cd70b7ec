"""Predictions of a trained network, with the paper's test-time augmentation.

TTA: predict on the four 90-degree rotations of each image, rotate each prediction
back into the original frame (exactly, in the keypoint convention: pixel i covers
[i, i+1)) and average.
"""

import numpy as np
import tensorflow as tf

from data_pipeline.augment import rot90_keypoints


def predict_keypoints(net, images, tta: bool = True):
    """Keypoints float32 [B, 21, 2] of images uint8/float [B, S, S, 3].

    net: a network built by hjr.model.build_model (dict outputs with `keypoints`).
    """
    images = tf.cast(images, tf.float32)
    size = tf.cast(tf.shape(images)[1], tf.float32)
    if not tta:
        return net(images, training=False)["keypoints"]
    batch = tf.shape(images)[0]
    total = 0.0
    for k in range(4):
        rotated = net(tf.image.rot90(images, k), training=False)["keypoints"]
        back = tf.fill([batch], (4 - k) % 4)
        total += rot90_keypoints(rotated, back, size)
    return total / 4.0


def predict_dataset(net, dataset, tta: bool = True):
    """(ids int64 [N], keypoints float32 [N, 21, 2], labels [N, 21, 2]) over a
    dataset of batches from data_pipeline.pipeline.make_dataset, sorted by id."""
    step = tf.function(lambda images: predict_keypoints(net, images, tta))
    ids, predictions, labels = [], [], []
    for batch in dataset:
        predictions.append(step(batch["image"]).numpy())
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
    """Write the submission CSV of a run folder's best network on a split.

    Returns (ids, predictions, labels or None) with rows sorted by id.
    """
    from data_pipeline.kaggle_csv import write_keypoints_csv
    from data_pipeline.pipeline import is_labelled, make_dataset, open_split

    from .train import load_network

    net = load_network(model)
    builder, _ = open_split(source, split, crop, data_dir)
    dataset = make_dataset(source, split, batch_size, crop=crop, data_dir=data_dir)
    ids, predictions, labels = predict_dataset(net, dataset, tta)
    labels = labels if is_labelled(builder, split) else None
    if out is not None:
        write_keypoints_csv(out, ids, predictions)
    if visualize is not None:
        _visualize(net, dataset, visualize, ids, predictions, labels, num_visualize)
    return ids, predictions, labels


def _visualize(net, dataset, folder, ids, predictions, labels, count):
    """PNGs of images with predicted joints (rings: labels) and, for the map heads,
    the predicted maps (maximum over joints) beside them."""
    import cv2

    from data_pipeline.files import write_png

    from .draw import draw_keypoints

    folder.mkdir(parents=True, exist_ok=True)
    row = {int(i): n for n, i in enumerate(ids)}
    written = 0
    for batch in dataset:
        outputs = net(tf.cast(batch["image"], tf.float32), training=False)
        for b, index in enumerate(batch["id"].numpy()):
            if written == count:
                return
            n = row[int(index)]
            truth = None if labels is None else labels[n]
            panel = draw_keypoints(
                batch["image"][b].numpy(), predictions[n], truth=truth
            )
            if "maps" in outputs:
                maps = outputs["maps"][b].numpy().max(-1)
                maps = (255 * (maps - maps.min()) / max(np.ptp(maps), 1e-6)).astype(
                    np.uint8
                )
                maps = cv2.resize(
                    maps, panel.shape[:2], interpolation=cv2.INTER_NEAREST
                )
                heat = cv2.cvtColor(
                    cv2.applyColorMap(maps, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB
                )
                panel = np.concatenate([panel, heat], axis=1)
            write_png(folder / f"{int(index):05d}_prediction.png", panel)
            written += 1
