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
