"""Test-time augmentation is exact in the keypoint convention."""

import keras
import numpy as np
import tensorflow as tf

from data_pipeline.augment import rot90_keypoints
from hjr.model import build_model
from hjr.predict import predict_keypoints

SIZE = 128


class BrightestPixel(keras.Model):
    """A rotation-equivariant 'network': every joint at the brightest pixel's
    centre (x = column + 0.5, y = row + 0.5)."""

    def call(self, images, training=False):
        grey = tf.reduce_sum(images, axis=-1)
        flat = tf.argmax(tf.reshape(grey, [tf.shape(grey)[0], -1]), axis=-1)
        rows = tf.cast(flat // SIZE, tf.float32) + 0.5
        cols = tf.cast(flat % SIZE, tf.float32) + 0.5
        point = tf.stack([cols, rows], axis=-1)[:, None, :]
        return {"keypoints": tf.tile(point, [1, 21, 1])}


def bright_dot_images(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 100, (batch, SIZE, SIZE, 3)).astype(np.uint8)
    spots = rng.integers(0, SIZE, (batch, 2))
    for b, (x, y) in enumerate(spots):
        images[b, y, x] = 255
    return images, spots + 0.5


def test_tta_of_an_equivariant_model_changes_nothing():
    images, spots = bright_dot_images()
    net = BrightestPixel()
    plain = predict_keypoints(net, images, tta=False).numpy()
    np.testing.assert_allclose(plain[:, 0], spots)
    np.testing.assert_allclose(
        predict_keypoints(net, images, tta=True), plain, atol=1e-5
    )


def test_predicting_on_rotated_images_gives_rotated_predictions():
    net = build_model({"head": "classification", "backbone": "tiny", "weights": "none"})
    images, _ = bright_dot_images(batch=2, seed=1)
    base = predict_keypoints(net, images, tta=True).numpy()
    for k in range(1, 4):
        rotated = predict_keypoints(net, np.rot90(images, k, axes=(1, 2)), tta=True)
        expected = rot90_keypoints(base, tf.fill([2], k), float(SIZE))
        np.testing.assert_allclose(rotated, expected, atol=1e-3)
