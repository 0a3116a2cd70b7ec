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


FIST = {"grip": (1.0, 1.0), "curl_noise": 0.0}  # every finger fully curled
FLAT = {  # an open hand in the image plane, fingers and thumb apart
    "grip": (0.0, 0.0),
    "curl_noise": 0.0,
    "tilt": 0.0,
    "spread": (1.0, 1.0),
    "thumb_angle": (-55.0, -55.0),
}
TIPS = [1, 5, 9, 13, 17]
WRIST_AND_BASES = [0, 4, 8, 12, 16, 20]


def visibility(conf=None, seed=6, count=60):
    """bool [count, 21]: the visible joints of frames 0..count-1 of seed."""
    return np.stack(
        [synthetic.render_hand_with_visibility(seed, i, conf)[2] for i in range(count)]
    )


def test_visibility_comes_with_render_hands_frame():
    image, keypoints, visible = synthetic.render_hand_with_visibility(5, 7)
    again_image, again_keypoints = render_hand(5, 7)
    assert np.array_equal(image, again_image)
    assert np.array_equal(keypoints, again_keypoints)
    assert visible.shape == (21,) and visible.dtype == bool


def test_visibility_is_a_function_of_seed_and_index():
    """The same (seed, index) gives the same flags, whatever is drawn around the
    hand (background, noise, blur, or no hand at all); other frames differ."""
    first = visibility()
    np.testing.assert_array_equal(first, visibility())
    around = {
        "draw_hand": False,
        "noise": (0, 0),
        "blur_prob": 1.0,
        "busy_prob": 1.0,
        "sleeve_prob": 1.0,
    }
    np.testing.assert_array_equal(first, visibility(around))
    assert not np.array_equal(first, visibility(seed=7))
    assert 0.05 < (~first).mean() < 0.4  # some hidden joints, most visible


def test_flat_open_hands_show_every_joint():
    """Without curl, tilt or crossing fingers nothing covers a joint: every joint
    of every frame, tips (inside their caps) and bases (on the palm) too."""
    for palm_facing in (0.0, 1.0):
        assert visibility(dict(FLAT, palm_facing_prob=palm_facing)).all()


def test_fingers_curled_behind_the_palm_hide_their_tips():
    """Seen from the back, a fist's fingers curl behind the palm: their tips are
    hidden, the wrist and the finger bases (on the palm) stay visible."""
    visible = visibility(dict(FIST, palm_facing_prob=0.0))
    assert (~visible).any(1).all()
    assert (~visible[:, TIPS]).mean() > 0.9
    assert visible[:, WRIST_AND_BASES].all()


def test_fingers_curled_in_front_of_the_palm_hide_joints():
    """Seen from the palm, a fist's fingers curl towards the camera over the palm
    and each other: every frame has hidden joints, but fewer than seen from the
    back, where the palm covers all four fingers' ends."""
    visible = visibility(dict(FIST, palm_facing_prob=1.0))
    assert (~visible).any(1).all()
    behind = visibility(dict(FIST, palm_facing_prob=0.0))
    assert (~visible).mean() < (~behind).mean() - 0.1


def test_part_map_is_the_drawn_hand():
    """The part map covers the pixels the hand is drawn on: hardly any part pixel
    off the drawn hand, and the drawn hand less its anti-aliased 1-px rim inside
    the parts."""
    conf = {"blur_prob": 0.0, "noise": (0, 0)}
    for i in range(30):
        image, pose = synthetic._render(4, i, conf)
        background, _ = synthetic._render(4, i, dict(conf, draw_hand=False))
        hand = (np.abs(image.astype(int) - background).max(-1) > 0).astype(np.uint8)
        core = cv2.erode(hand, np.ones((3, 3), np.uint8)) > 0
        parts = synthetic.part_map(pose) > 0
        assert (parts & (hand == 0)).sum() <= 0.005 * parts.sum()
        assert (core & ~parts).sum() <= 0.03 * core.sum()
