"""Augmentation: dots drawn at the joints stay under the transformed joints, the
colour ops match TensorFlow's reference ops, it compiles under XLA, seeds repeat."""

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline.augment import adjust_saturation, augment_batch, rotate_images

SIZE = 128
GEOMETRY_ONLY = {"brightness": 0.0, "saturation": (1.0, 1.0)}


def dot_batch(batch=6, seed=0, radius=1):
    """Black images with a white square of side 2*radius+1 centred on each joint's
    pixel; joints spread apart so dots do not touch."""
    rng = np.random.default_rng(seed)
    images = np.zeros((batch, SIZE, SIZE, 3), np.uint8)
    keypoints = np.zeros((batch, 21, 2), np.float32)
    cells = np.stack(np.meshgrid(np.arange(5), np.arange(5)), -1).reshape(-1, 2)
    for b in range(batch):
        chosen = cells[rng.permutation(25)[:21]]
        # cells of 16 px inside [24, 104): far from the border
        keypoints[b] = 24 + chosen * 16 + rng.uniform(4, 12, (21, 2))
        for x, y in keypoints[b].astype(int):
            images[b, y - radius : y + radius + 1, x - radius : x + radius + 1] = 255
    return images, keypoints


def values_at(images, keypoints):
    """The image value of the pixel holding each keypoint: [B, 21]."""
    images = np.asarray(images)[..., 0]
    cols = np.clip(np.floor(keypoints[..., 0]).astype(int), 0, SIZE - 1)
    rows = np.clip(np.floor(keypoints[..., 1]).astype(int), 0, SIZE - 1)
    return np.stack([images[b, rows[b], cols[b]] for b in range(len(images))])


def test_rot90_moves_dots_with_keypoints_exactly():
    images, keypoints = dot_batch(radius=0)
    for seed in range(4):
        out, kp = augment_batch(
            images, keypoints, tf.constant([seed, 0]), GEOMETRY_ONLY
        )
        assert np.all(values_at(out, kp.numpy()) == 255)
        assert np.sum(out.numpy() > 0) == np.sum(images > 0)


def test_rot90_keypoints_follow_numpy_rot90():
    """Pixel i covers [i, i+1): pixel centres map to pixel centres exactly."""
    images, keypoints = dot_batch(batch=8)
    out, kp = augment_batch(images, keypoints, tf.constant([3, 1]), GEOMETRY_ONLY)
    out = out.numpy().astype(np.uint8)
    rotations = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    for b in range(len(images)):
        k = next(k for k in range(4) if np.array_equal(rotations[k][b], out[b]))
        centre = keypoints[b] - SIZE / 2
        expected = centre
        for _ in range(k):  # CCW on screen with y down: (x, y) -> (y, -x)
            expected = np.stack([expected[:, 1], -expected[:, 0]], -1)
        np.testing.assert_allclose(kp[b], expected + SIZE / 2, atol=1e-4)


@pytest.mark.parametrize("max_angle", [30.0, 180.0])
def test_arbitrary_rotation_keeps_dots_under_joints(max_angle):
    images, keypoints = dot_batch(batch=8, radius=2)
    conf = {**GEOMETRY_ONLY, "max_angle": max_angle}
    out, kp = augment_batch(images, keypoints, tf.constant([7, 3]), conf)
    assert np.all((kp.numpy() >= 0) & (kp.numpy() <= SIZE))
    assert np.all(values_at(out, kp.numpy()) > 200)
    # Without rotating the keypoints the check fails: it can tell.
    moved = np.any(np.abs(kp.numpy() - keypoints) > 3, axis=-1)
    assert np.mean(values_at(out, keypoints)[moved] > 200) < 0.5


def test_rotation_by_zero_is_identity_and_by_90_matches_rot90():
    images = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3))
    images = tf.constant(images, tf.float32)
    np.testing.assert_allclose(rotate_images(images, tf.zeros([2])), images, atol=1e-3)
    quarter = rotate_images(images, tf.fill([2], -np.pi / 2))
    np.testing.assert_allclose(quarter, tf.image.rot90(images, 1), atol=1e-2)


def test_joints_never_leave_the_frame():
    rng = np.random.default_rng(2)
    keypoints = rng.uniform(0, SIZE, (64, 21, 2)).astype(np.float32)
    keypoints[:, 0] = [1.0, 1.0]  # a joint in the corner
    images = np.zeros((64, SIZE, SIZE, 3), np.uint8)
    _, kp = augment_batch(images, keypoints, tf.constant([0, 0]), {"max_angle": 180.0})
    assert np.all((kp.numpy() >= 0) & (kp.numpy() <= SIZE))


def test_saturation_matches_tensorflow_hsv():
    images = np.random.default_rng(3).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    factors = np.array([0.5, 0.9, 1.2, 1.5], np.float32)
    ours = adjust_saturation(tf.constant(images), tf.constant(factors))
    for b, factor in enumerate(factors):
        reference = tf.image.adjust_saturation(images[b] / 255.0, factor) * 255.0
        np.testing.assert_allclose(ours[b], reference, atol=0.5)


def test_colour_ranges():
    images = np.full((64, 8, 8, 3), 128, np.uint8)
    images[..., 0] = 200
    out, _ = augment_batch(
        images, np.zeros((64, 21, 2)), tf.constant([5, 5]), {"rot90": False}
    )
    out = out.numpy()
    brightness = out[:, 0, 0, 2] - 128  # the minimum channel moves with brightness
    assert np.all(out >= 0) and np.all(out <= 255)
    assert brightness.std() > 5
    # the gap max - min is scaled by the saturation factor (before clipping)
    gap = out[:, 0, 0, 0] - out[:, 0, 0, 2]
    assert 0.5 * 72 - 1 < gap.min() and gap.max() < 1.5 * 72 + 1


def test_runs_inside_xla_and_matches_eager():
    images, keypoints = dot_batch(batch=4, radius=2)
    conf = {"max_angle": 45.0}
    compiled = tf.function(
        lambda i, k, s: augment_batch(i, k, s, conf), jit_compile=True
    )
    seed = tf.constant([11, 2])
    xla_images, xla_kp = compiled(images, keypoints, seed)
    eager_images, eager_kp = augment_batch(images, keypoints, seed, conf)
    np.testing.assert_allclose(xla_kp, eager_kp, atol=1e-3)
    np.testing.assert_allclose(xla_images, eager_images, atol=0.5)


def test_same_seed_same_draws_other_seed_other_draws():
    images, keypoints = dot_batch(batch=8)
    conf = {"max_angle": 20.0}
    a = augment_batch(images, keypoints, tf.constant([1, 9]), conf)
    b = augment_batch(images, keypoints, tf.constant([1, 9]), conf)
    c = augment_batch(images, keypoints, tf.constant([1, 10]), conf)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
