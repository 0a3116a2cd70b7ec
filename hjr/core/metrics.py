"""Keypoint metrics, in pixels of the 128x128 crop, as the competition scored them.

- kaggle_mse: squared x and y errors of a joint summed, averaged over joints and
  images (the authors' definition: mean squared joint distance).
- mse_per_coordinate: the plain mean over the 42 values (half of kaggle_mse).
- mean_joint_distance: the mean Euclidean joint error (EPE), pixels.
Each function takes keypoints float [B, 21, 2] and returns per-image values [B];
average them over images for the score. Unlabelled joints of y_true (NaN,
data_pipeline.keypoints) are left out: an image's value is the mean over its
labelled joints, and an image without any labelled joint gives 0 (it still counts
as an image in the average over images).
"""

import keras
from keras import ops


def labelled(y_true):
    """float32 [B, 21]: 1 where both coordinates of a joint are finite (labelled),
    0 where it is unlabelled (NaN)."""
    finite = ops.all(ops.isfinite(ops.cast(y_true, "float32")), axis=-1)
    return ops.cast(finite, "float32")


def fill_unlabelled(y_true, mask):
    """y_true float32 [B, 21, 2] with the joints that mask [B, 21] (labelled)
    marks 0 set to 0: finite everywhere, so that nothing computed from them is NaN,
    gradients included, once masked."""
    y_true = ops.cast(y_true, "float32")
    return ops.where(mask[..., None] > 0, y_true, ops.zeros_like(y_true))


def squared_distances(y_true, y_pred):
    """[B, 21] squared joint distances (NaN at unlabelled joints)."""
    diff = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
    return ops.sum(diff * diff, axis=-1)


def joint_mean(values, mask, axis=-1):
    """The mean of values [B, 21] over the joints that mask (float, 1: labelled)
    marks, along axis (None: over all); 0 where there is none. values must be
    finite where mask is 0."""
    total = ops.sum(values * mask, axis=axis)
    return total / ops.maximum(ops.sum(mask, axis=axis), 1.0)


def _labelled_squared_distances(y_true, y_pred):
    """Squared joint distances [B, 21] (finite, those of unlabelled joints
    meaningless) and labelled(y_true)."""
    mask = labelled(y_true)
    return squared_distances(fill_unlabelled(y_true, mask), y_pred), mask


def kaggle_mse(y_true, y_pred):
    squared, mask = _labelled_squared_distances(y_true, y_pred)
    return joint_mean(squared, mask)


def mse_per_coordinate(y_true, y_pred):
    return kaggle_mse(y_true, y_pred) / 2.0


def mean_joint_distance(y_true, y_pred):
    squared, mask = _labelled_squared_distances(y_true, y_pred)
    return joint_mean(ops.sqrt(squared + 1e-12), mask)


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
