"""The one place that turns keypoints into maps and maps back into keypoints.

Keypoints: float32 [B, 21, 2], x = column, y = row, pixel i covering [i, i+1), so
pixel (c, r) has its centre at (c + 0.5, r + 0.5). Maps: float32 [B, S, S, 21].

- `disk_maps`: 1 on pixels whose centre lies within `radius` of the joint, else 0
  (targets of the classification head).
- `gaussian_maps`: exp(-d^2 / (2 sigma^2)) of the distance d from each pixel centre
  (targets of the score-map head; sigma^2 = 100 in the paper).
- `expectation`: the sub-pixel soft-argmax, sum over pixels of w * centre with w the
  normalised map. Maps are clipped at zero before normalising: probabilities are
  never negative, and a score map's negative values carry no position (their
  Gaussian targets are >= 0) but would pull a signed average anywhere, even off the
  image. A map with no positive value decodes to the image centre.
Labels are made from keypoints on the device inside the training step, never stored.
The radius and sigma^2 of a run are its head's settings (hjr.heads.HEADS).
"""

import tensorflow as tf


def _squared_distances(keypoints, size):
    """[B, S, S, 21]: squared distance of every pixel centre to every joint."""
    keypoints = tf.cast(keypoints, tf.float32)
    centres = tf.range(size, dtype=tf.float32) + 0.5
    dx = centres[None, None, :, None] - keypoints[:, None, None, :, 0]
    dy = centres[None, :, None, None] - keypoints[:, None, None, :, 1]
    return dx * dx + dy * dy


def disk_maps(keypoints, size, radius):
    """Binary disks of `radius` around each joint: float32 [B, size, size, 21]."""
    return tf.cast(_squared_distances(keypoints, size) <= radius * radius, tf.float32)


def gaussian_maps(keypoints, size, sigma2):
    """Gaussians of variance `sigma2` around each joint: float32 [B, S, S, 21]."""
    return tf.exp(-_squared_distances(keypoints, size) / (2.0 * sigma2))


def expectation(maps):
    """Sub-pixel keypoints float32 [B, 21, 2] from maps [B, H, W, 21] (any sign)."""
    maps = tf.nn.relu(tf.cast(maps, tf.float32))
    height, width = tf.shape(maps)[1], tf.shape(maps)[2]
    total = tf.reduce_sum(maps, axis=[1, 2])  # [B, 21]
    col_mass = tf.reduce_sum(maps, axis=1)  # [B, W, 21]
    row_mass = tf.reduce_sum(maps, axis=2)  # [B, H, 21]
    cols = tf.range(tf.cast(width, tf.float32)) + 0.5
    rows = tf.range(tf.cast(height, tf.float32)) + 0.5
    x = tf.einsum("bwj,w->bj", col_mass, cols)
    y = tf.einsum("bhj,h->bj", row_mass, rows)
    empty = total <= 1e-12
    safe = tf.where(empty, tf.ones_like(total), total)
    x = tf.where(empty, tf.cast(width, tf.float32) / 2, x / safe)
    y = tf.where(empty, tf.cast(height, tf.float32) / 2, y / safe)
    return tf.stack([x, y], axis=-1)
