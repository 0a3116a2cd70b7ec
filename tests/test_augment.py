"""Augmentation (hjr.core.augment, keras.ops): dots drawn at the joints stay under the
transformed joints, the colour ops match TensorFlow's reference ops, it compiles under
XLA, draws map to parameters as documented and repeat, and JAX gives the same numbers
under jax.jit without TensorFlow (Keras fixes its backend per process: a subprocess)."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_python
from keras import ops

from hjr.core.augment import (
    NUM_DRAWS,
    adjust_saturation,
    augment_batch,
    rot90_images,
    rotate_images,
)

SIZE = 128
GEOMETRY_ONLY = {"brightness": 0.0, "saturation": (1.0, 1.0)}


def numpy(*tensors):
    return [ops.convert_to_numpy(t) for t in tensors]


def random_draws(batch, seed):
    """draws float32 [batch, NUM_DRAWS] uniform in [0, 1)."""
    return np.random.default_rng(seed).uniform(0, 1, (batch, NUM_DRAWS)).astype("f4")


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
    draws = random_draws(6, 0)
    draws[:, 0] = [0.0, 0.3, 0.6, 0.9, 0.999, 1.0]  # every k, and u = 1 clipped
    out, kp = numpy(*augment_batch(images, keypoints, draws, GEOMETRY_ONLY))
    assert np.all(values_at(out, kp) == 255)
    assert np.sum(out > 0) == np.sum(images > 0)


def test_rot90_keypoints_follow_numpy_rot90_with_k_from_the_draws():
    """Pixel i covers [i, i+1): pixel centres map to pixel centres exactly."""
    images, keypoints = dot_batch(batch=8)
    draws = random_draws(8, 1)
    out, kp = numpy(*augment_batch(images, keypoints, draws, GEOMETRY_ONLY))
    out = out.astype(np.uint8)
    rotations = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    for b in range(len(images)):
        k = next(k for k in range(4) if np.array_equal(rotations[k][b], out[b]))
        assert k == int(4 * draws[b, 0])
        expected = keypoints[b] - SIZE / 2
        for _ in range(k):  # CCW on screen with y down: (x, y) -> (y, -x)
            expected = np.stack([expected[:, 1], -expected[:, 0]], -1)
        np.testing.assert_allclose(kp[b], expected + SIZE / 2, atol=1e-4)


def test_flip_mirrors_dots_with_keypoints_and_leaves_the_turns_unchanged():
    """flip: the eighth of the rotation draw picks the mirror (odd: mirrored after
    the turn), pixel i covering [i, i+1) going to S - 1 - i, x to S - x."""
    images, keypoints = dot_batch(batch=8, radius=0)
    draws = random_draws(8, 2)
    draws[:, 0] = (np.arange(8) + 0.5) / 8  # each turn, mirrored and not
    turned, turned_kp = numpy(*augment_batch(images, keypoints, draws, GEOMETRY_ONLY))
    conf = {**GEOMETRY_ONLY, "flip": True}
    out, kp = numpy(*augment_batch(images, keypoints, draws, conf))
    assert np.all(values_at(out, kp) == 255)
    assert np.sum(out > 0) == np.sum(images > 0)
    for b in range(8):
        if b % 2:
            np.testing.assert_array_equal(out[b], turned[b][:, ::-1])
            np.testing.assert_allclose(kp[b, :, 0], SIZE - turned_kp[b, :, 0])
            np.testing.assert_allclose(kp[b, :, 1], turned_kp[b, :, 1])
        else:
            np.testing.assert_array_equal(out[b], turned[b])
            np.testing.assert_array_equal(kp[b], turned_kp[b])


def test_each_draw_column_sets_its_parameter():
    grey = np.full((5, 8, 8, 3), 100, np.uint8)
    grey[..., 0] = 160
    u = np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)
    keypoints = np.tile(np.float32([[4 + 2, 4]]), (5, 21, 1))  # 2 px right of centre
    off = {"rot90": False, "max_angle": 0.0, "brightness": 0.0, "saturation": (1, 1)}
    draws = np.full((5, NUM_DRAWS), 0.5, np.float32)

    def column(i, **conf):
        d = draws.copy()
        d[:, i] = u
        return numpy(*augment_batch(grey, keypoints, d, {**off, **conf}))

    _, kp = column(0, rot90=True)  # k = floor(4 u) clipped: 0, 1, 2, 3, 3
    np.testing.assert_allclose(kp[:, 0], [[6, 4], [4, 2], [2, 4], [4, 6], [4, 6]])
    _, kp = column(1, max_angle=40.0)  # (2u - 1) * 40 degrees, clockwise on screen
    angle = np.degrees(np.arctan2(kp[:, 0, 1] - 4, kp[:, 0, 0] - 4))
    np.testing.assert_allclose(angle, [-40, -20, 0, 20, 40], atol=0.01)
    out, _ = column(2, brightness=25.0)  # (2u - 1) * 25, as adjust_brightness
    shift = tf.constant((2 * u - 1) * 25, tf.float32)[:, None, None, None]
    reference = tf.clip_by_value(tf.image.adjust_brightness(grey / 1, shift), 0, 255)
    np.testing.assert_allclose(out, reference, atol=1e-4)
    out, _ = column(3, saturation=(0.5, 1.5))  # 0.5 + u
    for b, factor in enumerate(0.5 + u):
        expected = tf.image.adjust_saturation(grey[b] / 255.0, factor) * 255.0
        np.testing.assert_allclose(out[b], expected, atol=0.5)


@pytest.mark.parametrize("max_angle", [30.0, 180.0])
def test_arbitrary_rotation_keeps_dots_under_joints(max_angle):
    images, keypoints = dot_batch(batch=8, radius=2)
    conf = {**GEOMETRY_ONLY, "max_angle": max_angle}
    out, kp = numpy(*augment_batch(images, keypoints, random_draws(8, 7), conf))
    assert np.all((kp >= 0) & (kp <= SIZE))
    assert np.all(values_at(out, kp) > 200)
    # Without rotating the keypoints the check fails: it can tell.
    moved = np.any(np.abs(kp - keypoints) > 3, axis=-1)
    assert np.mean(values_at(out, keypoints)[moved] > 200) < 0.5


def test_rotations_by_zero_and_quarter_turns_match_numpy_and_tensorflow():
    images = np.random.default_rng(1).uniform(0, 255, (4, SIZE, SIZE, 3))
    images = images.astype(np.float32)
    (same,) = numpy(rotate_images(images, np.zeros(4, np.float32)))
    np.testing.assert_allclose(same, images, atol=1e-3)
    (quarter,) = numpy(rotate_images(images, np.full(4, -np.pi / 2, np.float32)))
    np.testing.assert_allclose(quarter, tf.image.rot90(images, 1), atol=1e-2)
    (turned,) = numpy(rot90_images(images, np.arange(4, dtype=np.int32)))
    for k in range(4):
        np.testing.assert_array_equal(turned[k], np.rot90(images[k], k))


def test_joints_never_leave_the_frame():
    rng = np.random.default_rng(2)
    keypoints = rng.uniform(0, SIZE, (64, 21, 2)).astype(np.float32)
    keypoints[:, 0] = [1.0, 1.0]  # a joint in the corner
    images = np.zeros((64, SIZE, SIZE, 3), np.uint8)
    conf = {"max_angle": 180.0}
    _, kp = numpy(*augment_batch(images, keypoints, random_draws(64, 2), conf))
    assert np.all((kp >= 0) & (kp <= SIZE))


def test_saturation_matches_tensorflow_hsv():
    images = np.random.default_rng(3).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    factors = np.array([0.5, 0.9, 1.2, 1.5], np.float32)
    (ours,) = numpy(adjust_saturation(images, factors))
    for b, factor in enumerate(factors):
        reference = tf.image.adjust_saturation(images[b] / 255.0, factor) * 255.0
        np.testing.assert_allclose(ours[b], reference, atol=0.5)


def test_colour_ranges():
    images = np.full((64, 8, 8, 3), 128, np.uint8)
    images[..., 0] = 200
    draws = random_draws(64, 5)
    keypoints = np.zeros((64, 21, 2))
    out, _ = numpy(*augment_batch(images, keypoints, draws, {"rot90": False}))
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
        lambda i, k, d: augment_batch(i, k, d, conf), jit_compile=True
    )
    draws = random_draws(4, 11)
    xla_images, xla_kp = compiled(images, keypoints, draws)
    eager_images, eager_kp = numpy(*augment_batch(images, keypoints, draws, conf))
    np.testing.assert_allclose(xla_kp, eager_kp, atol=1e-4)
    np.testing.assert_allclose(xla_images, eager_images, atol=1e-3)


def test_same_draws_same_output_other_draws_other_output():
    images, keypoints = dot_batch(batch=8)
    conf = {"max_angle": 20.0}
    a = numpy(*augment_batch(images, keypoints, random_draws(8, 9), conf))
    b = numpy(*augment_batch(images, keypoints, random_draws(8, 9), conf))
    c = numpy(*augment_batch(images, keypoints, random_draws(8, 10), conf))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert not np.array_equal(a[0], c[0])


JAX_CODE = """
import json, sys
import numpy as np
import jax
import keras
from hjr.core.augment import augment_batch

data = np.load(sys.argv[1])
out = {}
for name, conf in json.loads(sys.argv[3]).items():
    step = jax.jit(lambda i, k, d, conf=conf: augment_batch(i, k, d, conf))
    images, keypoints = step(data["images"], data["keypoints"], data["draws"])
    out[name + "_images"], out[name + "_keypoints"] = images, keypoints
np.savez(sys.argv[2], **{key: np.asarray(value) for key, value in out.items()})
imported = any(m.split(".")[0] == "tensorflow" for m in sys.modules)
print(json.dumps({"backend": keras.backend.backend(), "tensorflow": imported}))
"""


@pytest.mark.slow
def test_jax_gives_the_same_numbers_under_jit_without_tensorflow(tmp_path):
    images, keypoints = dot_batch(batch=8, radius=2)
    noise = np.random.default_rng(4).integers(0, 120, images.shape, np.uint8)
    images = np.maximum(images, noise)  # hard edges, colour: saturation matters
    keypoints[:2, :3] = [[1.0, 1.0], [127.0, 2.0], [3.0, 126.0]]  # angles halved
    draws = random_draws(8, 12)
    confs = {"paper": {"max_angle": 30.0}, "wide": {"max_angle": 180.0}}
    np.savez(tmp_path / "in.npz", images=images, keypoints=keypoints, draws=draws)
    args = (tmp_path / "in.npz", tmp_path / "out.npz", json.dumps(confs))
    proc = run_python(JAX_CODE, *args, KERAS_BACKEND="jax")
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = json.loads(proc.stdout.strip().splitlines()[-1])
    assert said == {"backend": "jax", "tensorflow": False}
    jax_out = np.load(tmp_path / "out.npz")
    for name, conf in confs.items():
        tf_images, tf_kp = numpy(*augment_batch(images, keypoints, draws, conf))
        assert not np.allclose(tf_kp, keypoints)
        np.testing.assert_allclose(jax_out[name + "_keypoints"], tf_kp, atol=1e-4)
        np.testing.assert_allclose(jax_out[name + "_images"], tf_images, atol=1e-3)
