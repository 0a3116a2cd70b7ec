"""The biased crop on hand-computed cases, and the centred crop."""

import cv2
import numpy as np
import pytest

from data_pipeline.crop import biased_box, biased_keypoints, centered_box, crop_hand

W = H = 320


def hand(xs, ys):
    """21 keypoints spanning the given x and y ranges (first and last joints hit the
    extremes, the rest lie between)."""
    t = np.linspace(0, 1, 21)
    kp = np.stack([xs[0] + t * (xs[1] - xs[0]), ys[0] + t[::-1] * (ys[1] - ys[0])], 1)
    return kp.astype(np.float32)


def test_wide_hand_grows_down():
    # box x 101..150, y 201..220; margins -> x 93..158, y 193..228;
    # dx = 65 >= dy = 35, so y_max = 193 + 65 = 258.
    assert biased_box(hand((100.3, 150.7), (200.2, 220.9)), W, H) == (93, 193, 65)


def test_tall_hand_grows_right():
    # box x 51..60 -> 43..68 (dx 25); y 11..100 -> 3..108 (dy 105): x_max = 43 + 105.
    assert biased_box(hand((50.5, 60.2), (10.5, 100.4)), W, H) == (43, 3, 105)


def test_tall_hand_at_right_border_is_pushed_left():
    # x 301..310 -> 293..318; y 51..120 -> 43..128, dy = 85 > dx = 25;
    # 293 + 85 >= 320: x_min = 318 - (85 - (320 - 318 - 1)) = 234, x_max = 319.
    assert biased_box(hand((300.5, 310.2), (50.5, 120.4)), W, H) == (234, 43, 85)


def test_wide_hand_at_bottom_border_is_pushed_up():
    # x 21..120 -> 13..128 (dx 115); y 301..310 -> 293..318;
    # 293 + 115 >= 320: y_min = 318 - (115 - 1) = 204, y_max = 319.
    assert biased_box(hand((20.5, 120.4), (300.5, 310.2)), W, H) == (13, 204, 115)


def test_margin_only_where_it_fits_and_x_max_at_width():
    # x 3..320: x_max == W becomes 319; no room for either margin on x;
    # y 101..110 -> 93..118; dx = 316 > dy: 93 + 316 >= 320, pushed to the bottom:
    # y_min = 118 - (316 - (320 - 118 - 1)) = 3, y_max = 319.
    assert biased_box(hand((2.5, 320.0), (100.5, 110.0)), W, H) == (3, 3, 316)


def test_clamp_only_the_largest_keypoint_per_axis():
    # x 281..319 (floor 319.6) -> 273..319 (no room right); y 100..110 -> 92..118.
    kp = hand((280.2, 319.6), (100.0, 110.5))
    kp[10, 0] = 319.4  # second largest x: also past the crop, not clamped
    box = biased_box(kp, W, H)
    assert box == (273, 92, 46)
    local = biased_keypoints(kp, box)
    assert local[20, 0] == 46  # 319.6 - 273 = 46.6 clamped to the side
    assert local[10, 0] == pytest.approx(319.4 - 273)
    np.testing.assert_allclose(local[:, 1], kp[:, 1] - 92, atol=1e-5)


@pytest.mark.parametrize("crop", ["biased", "centered"])
def test_crop_resizes_pixels_and_scales_keypoints(crop):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    kp = hand((100.3, 150.7), (200.2, 220.9))
    patch, local = crop_hand(image, kp, crop)
    assert patch.shape == (128, 128, 3) and patch.dtype == np.uint8
    x, y, side = biased_box(kp, W, H) if crop == "biased" else centered_box(kp)
    expected = cv2.resize(image[y : y + side, x : x + side], (128, 128))
    np.testing.assert_array_equal(patch, expected)
    np.testing.assert_allclose(local, (kp - (x, y)) * 128 / side, atol=1e-4)


def test_centered_crop_centres_the_hand_and_pads_outside_the_frame():
    image = np.full((H, W, 3), 200, np.uint8)
    kp = hand((2.0, 42.0), (280.0, 316.0))
    patch, local = crop_hand(image, kp, "centered")
    centre = (local.min(0) + local.max(0)) / 2
    np.testing.assert_allclose(centre, (64, 64), atol=128 / 56)
    assert patch[0, 0].tolist() == [0, 0, 0]  # outside the frame: zeros
    assert patch[64, 64].tolist() == [200, 200, 200]
    assert (local >= 0).all() and (local <= 128).all()
