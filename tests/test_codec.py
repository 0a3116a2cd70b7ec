"""Keypoints -> maps -> expectation round trips, and the metrics on hand-made cases."""

import numpy as np
import pytest
import tensorflow as tf

from hjr.core import codec
from hjr.core.metrics import kaggle_mse, mean_joint_distance, mse_per_coordinate

SIZE = 128


def inner_keypoints(margin, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(margin, SIZE - margin, (batch, 21, 2)).astype(np.float32)


@pytest.mark.parametrize(
    "encode, margin, tolerance",
    [
        (lambda kp: codec.gaussian_maps(kp, SIZE, 100.0), 40, 0.05),
        (lambda kp: codec.disk_maps(kp, SIZE, 16.0), 17, 0.3),
        (lambda kp: codec.gaussian_maps(kp, SIZE, 4.0), 8, 0.05),
    ],
)
def test_maps_round_trip_to_keypoints(encode, margin, tolerance):
    keypoints = inner_keypoints(margin)
    decoded = codec.expectation(encode(keypoints)).numpy()
    np.testing.assert_allclose(decoded, keypoints, atol=tolerance)


def test_pixel_centre_convention():
    """A map with one hot pixel (c, r) decodes to its centre (c + 0.5, r + 0.5)."""
    maps = np.zeros((1, SIZE, SIZE, 21), np.float32)
    maps[0, 10, 100, :] = 1.0  # row 10, column 100
    np.testing.assert_allclose(codec.expectation(maps)[0], [[100.5, 10.5]] * 21)


def test_negative_scores_are_clipped_and_empty_maps_decode_to_centre():
    maps = np.full((1, SIZE, SIZE, 21), -1.0, np.float32)
    maps[0, 20, 30, 0] = 2.0
    decoded = codec.expectation(maps).numpy()[0]
    np.testing.assert_allclose(decoded[0], [30.5, 20.5])
    np.testing.assert_allclose(decoded[1:], 64.0)


def test_disk_radius_and_gaussian_peak():
    keypoints = np.full((1, 21, 2), 64.0, np.float32)
    disks = codec.disk_maps(keypoints, SIZE, 16.0).numpy()[0, ..., 0]
    assert abs(disks.sum() - np.pi * 16**2) < 0.03 * np.pi * 16**2
    gauss = codec.gaussian_maps(keypoints, SIZE, 100.0).numpy()[0, ..., 0]
    np.testing.assert_allclose(gauss[63:65, 63:65], np.exp(-0.5 / 200), rtol=1e-5)


@pytest.mark.parametrize("stride", [1, 4])
def test_offsets_targets_vote_back_to_the_keypoints_at_any_stride(stride):
    """The offsets head's targets (hjr.core.heads) decode to the keypoints: every pixel
    of a joint's disk votes for the joint exactly, at stride 1 and 4."""
    from hjr.config import configure
    from hjr.core.heads import HEADS

    keypoints = inner_keypoints(1)
    conf = configure("quick", {"head": "offsets", "map_stride": stride})
    target = HEADS["offsets"].target(keypoints, SIZE // stride, conf)
    decoded = codec.vote(target["maps"], target["offsets"], stride)
    np.testing.assert_allclose(decoded, keypoints, atol=1e-3)


def test_vote_weights_pixels_by_their_probability_squared():
    maps = np.zeros((1, 8, 8, 21), np.float32)
    offsets = np.zeros((1, 8, 8, 21, 2), np.float32)
    maps[0, 2, 5] = 0.8  # row 2, column 5: centre (5.5, 2.5) map pixels
    offsets[0, 2, 5] = [1.0, -2.0]  # image pixels: votes for (23, 8)
    maps[0, 6, 1] = 0.4  # votes for its own centre (1.5, 6.5) * 4 = (6, 26)
    decoded = codec.vote(maps, offsets, 4.0).numpy()[0]
    expected = (0.64 * np.array([23.0, 8.0]) + 0.16 * np.array([6.0, 26.0])) / 0.8
    np.testing.assert_allclose(decoded, np.tile(expected, (21, 1)), rtol=1e-5)


@pytest.mark.parametrize(
    "head, tolerance", [("scoremap", 0.2), ("classification", 1.0)]
)
def test_coarse_maps_decode_to_input_pixels(head, tolerance):
    """Map heads at map_stride 4: targets at 32x32, soft-argmax scaled back."""
    from hjr.config import configure
    from hjr.core.heads import HEADS
    from hjr.core.layers import Expectation

    keypoints = inner_keypoints(40)
    conf = configure("quick", {"head": head, "map_stride": 4})
    maps = HEADS[head].target(keypoints, SIZE // 4, conf)["maps"]
    assert tuple(maps.shape) == (3, 32, 32, 21)
    decoded = Expectation(4)(maps).numpy()
    np.testing.assert_allclose(decoded, keypoints, atol=tolerance)


def test_metrics_on_hand_computed_cases():
    truth = np.zeros((2, 21, 2), np.float32)
    pred = truth.copy()
    pred[0, :, 0] = 3.0  # image 0: every joint 3 px off in x -> d^2 = 9
    pred[1, 0] = [3.0, 4.0]  # image 1: one joint 5 px off -> d^2 = 25 on 1 of 21
    np.testing.assert_allclose(kaggle_mse(truth, pred), [9.0, 25 / 21], rtol=1e-6)
    np.testing.assert_allclose(mse_per_coordinate(truth, pred), [4.5, 12.5 / 21])
    np.testing.assert_allclose(
        mean_joint_distance(truth, pred), [3.0, 5 / 21], rtol=1e-5
    )


def test_codec_runs_under_xla():
    keypoints = inner_keypoints(40)
    fn = tf.function(
        lambda kp: codec.expectation(codec.gaussian_maps(kp, SIZE, 100.0)),
        jit_compile=True,
    )
    np.testing.assert_allclose(fn(keypoints), keypoints, atol=0.05)


@pytest.mark.parametrize("channels, side", [(7, 4), (16, 8)])
def test_fast_map_head_equals_upsampling_then_convolution(channels, side):
    """UpsampledConv == UpSampling2D(bilinear) + Conv2D(5x5, same), same weights,
    zero padding at the borders included."""
    import keras

    from hjr.core.layers import UpsampledConv

    features = np.random.default_rng(0).normal(size=(2, side, side, channels))
    features = features.astype(np.float32)
    fast = UpsampledConv(21, 5, SIZE // side)
    expected_layers = keras.Sequential(
        [
            keras.layers.UpSampling2D(SIZE // side, interpolation="bilinear"),
            keras.layers.Conv2D(21, 5, padding="same"),
        ]
    )
    out = fast(features)
    expected_layers(features)
    conv = expected_layers.layers[1]
    conv.set_weights([fast.kernel.numpy(), np.linspace(-1, 1, 21).astype(np.float32)])
    fast.bias.assign(conv.bias)
    out = fast(features).numpy()
    np.testing.assert_allclose(
        out, expected_layers(features).numpy(), atol=2e-4, rtol=1e-4
    )
    assert out.shape == (2, SIZE, SIZE, 21)
