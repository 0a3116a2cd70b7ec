import cv2
import numpy as np
import pytest

from data_pipeline import synthetic
from data_pipeline.synthetic import FRAME_SIZE, render_hand

SAMPLES = 200


@pytest.fixture(scope="module")
def frames():
    """200 frames of seed 3 as (image, keypoints) pairs."""
    return [render_hand(3, i) for i in range(SAMPLES)]


def test_shapes_and_dtypes():
    image, keypoints = render_hand(0, 0)
    assert image.shape == (FRAME_SIZE, FRAME_SIZE, 3) and image.dtype == np.uint8
    assert keypoints.shape == (21, 2) and keypoints.dtype == np.float32


def test_deterministic_in_seed_and_index():
    image, keypoints = render_hand(5, 7)
    again_image, again_keypoints = render_hand(5, 7)
    assert np.array_equal(image, again_image)
    assert np.array_equal(keypoints, again_keypoints)
    for other in (render_hand(5, 8), render_hand(6, 7)):
        assert not np.array_equal(image, other[0])
        assert not np.allclose(keypoints, other[1])


def test_keypoints_inside_frame_with_margin(frames):
    keypoints = np.stack([k for _, k in frames])
    assert np.isfinite(keypoints).all()
    margin = synthetic.default_conf["margin"]
    assert margin >= 2
    assert keypoints.min() >= margin and keypoints.max() <= FRAME_SIZE - margin


def test_hand_box_sizes_span_the_range(frames):
    sides = np.array([np.ptp(k, axis=0).max() for _, k in frames])
    assert sides.min() >= 39.9 and sides.max() <= 140.1
    assert (sides < 60).mean() > 0.1 and (sides > 120).mean() > 0.1


def test_both_chiralities_occur(frames):
    """Left hands seen from the back look like right hands seen from the palm, so the
    image-space chirality (index base, wrist, little base) must take both signs."""
    keypoints = np.stack([k for _, k in frames])
    index = keypoints[:, 8] - keypoints[:, 0]
    little = keypoints[:, 20] - keypoints[:, 0]
    cross = index[:, 0] * little[:, 1] - index[:, 1] * little[:, 0]
    assert 0.3 < (cross > 0).mean() < 0.7


def test_left_and_right_hands_occur():
    conf = synthetic.default_conf
    poses = [synthetic._sample_pose(np.random.default_rng(i), conf) for i in range(100)]
    assert 0.3 < np.mean([pose["left"] for pose in poses]) < 0.7


def test_keypoints_lie_on_the_drawn_hand():
    """Hand pixels are where the frame differs from its background alone; nearly all
    keypoints fall on them, and keypoints moved by 20 px clearly do not."""
    on_hand, moved = [], []
    for i in range(60):
        image, keypoints = render_hand(4, i)
        background, same = render_hand(4, i, {"draw_hand": False})
        assert np.array_equal(keypoints, same)
        hand = np.abs(image.astype(int) - background).max(-1) > 10
        hand = cv2.dilate(hand.astype(np.uint8), np.ones((3, 3), np.uint8))

        def fraction(points):
            cols, rows = np.clip(np.floor(points), 0, FRAME_SIZE - 1).astype(int).T
            return hand[rows, cols].mean()

        on_hand.append(fraction(keypoints))
        moved.append(np.mean([fraction(keypoints + d) for d in ((20, 0), (0, -20))]))
    assert np.mean(on_hand) > 0.97
    assert np.mean(moved) < 0.8


def test_fixed_point_puts_pixel_centres_at_half():
    """A disk drawn through `_fixed` at (20.3, 30.7) has its centroid there."""
    mask = np.zeros((64, 64), np.uint8)
    centre = synthetic._fixed(np.array([20.3, 30.7]))
    shift = synthetic._SHIFT
    cv2.circle(mask, centre, 6 << shift, 255, -1, cv2.LINE_AA, shift)
    rows, cols = np.nonzero(mask)
    weights = mask[rows, cols] / mask.sum()
    centroid = np.array([(cols * weights).sum(), (rows * weights).sum()]) + 0.5
    np.testing.assert_allclose(centroid, [20.3, 30.7], atol=0.05)


def test_tips_are_farther_from_the_wrist_than_bases(frames):
    """RHD order runs tip -> base; on straight (extended) fingers the tip is farther."""
    keypoints = np.stack([k for _, k in frames])
    fingers = keypoints[:, 1:].reshape(-1, 5, 4, 2)
    wrist_distance = np.linalg.norm(fingers - keypoints[:, None, None, 0], axis=-1)
    farther = wrist_distance[..., 0] - wrist_distance[..., 3]
    span = np.linalg.norm(fingers[:, :, 0] - fingers[:, :, 3], axis=-1)
    path = np.linalg.norm(np.diff(fingers, axis=2), axis=-1).sum(-1)
    straight = span > 0.95 * path
    assert straight.sum() > 100
    assert (farther[straight] > 0).mean() > 0.9
    assert (farther.mean(0) > 0).all()
