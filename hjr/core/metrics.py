"""Keypoint metrics, in pixels of the 128x128 crop, as the competition scored them.

- kaggle_mse: squared x and y errors of a joint summed, averaged over joints and
  images (the authors' definition: mean squared joint distance).
- mse_per_coordinate: the plain mean over the 42 values (half of kaggle_mse).
- mean_joint_distance: the mean Euclidean joint error (EPE), pixels.
Each function takes keypoints float [B, 21, 2] and returns per-image values [B];
average them over images for the score.
"""

import keras
from keras import ops


def squared_distances(y_true, y_pred):
    """[B, 21] squared joint distances."""
    diff = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
    return ops.sum(diff * diff, axis=-1)


def kaggle_mse(y_true, y_pred):
    return ops.mean(squared_distances(y_true, y_pred), axis=-1)


def mse_per_coordinate(y_true, y_pred):
    return kaggle_mse(y_true, y_pred) / 2.0


def mean_joint_distance(y_true, y_pred):
    return ops.mean(ops.sqrt(squared_distances(y_true, y_pred) + 1e-12), axis=-1)


METRICS = {
    "kaggle_mse": kaggle_mse,
    "mse_per_coordinate": mse_per_coordinate,
    "mean_joint_distance": mean_joint_distance,
}


def keras_metrics():
    """Streaming Keras metrics (averaged over images) for training and validation."""
    return [
        keras.metrics.MeanMetricWrapper(fn, name=name) for name, fn in METRICS.items()
    ]
