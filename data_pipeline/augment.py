"""Training augmentation on a batch, on the accelerator, XLA-compatible.

Everything here is plain tensor arithmetic and gathers (no ImageProjectiveTransform,
no HSV ops), so it runs inside a `jit_compile=True` training step or on the CPU alike.
Random draws are stateless and keyed on a `seed` tensor int [2], so the same seed
gives the same draws whatever the device or the order of calls.

Geometry follows the one keypoint convention: x = column, y = row, pixel i covering
[i, i+1), so a square image of side S spans [0, S] and pixel centres sit at i + 0.5.

Joints and arbitrary angles: an angle that would rotate any joint out of the frame
is halved, up to three times, and dropped (0) if it still would. Joints therefore
never leave the frame and labels stay valid; hands near the border are rotated
less. Corners brought in from outside the image are black (zeros).
"""

import tensorflow as tf
from tensorflow.random.experimental import stateless_fold_in

from hjr.config import AUGMENT_KEYS, default_conf

# The settings and their defaults (the paper's) are a run's (hjr.config).
PAPER_CONF = {key: default_conf[key] for key in AUGMENT_KEYS}
ANGLE_TRIES = (1.0, 0.5, 0.25, 0.0)  # fractions of the drawn angle tried in order
# One algorithm on every device: "auto_select" differs between CPU and XLA.
RNG = "philox"


def _uniform(shape, seed, low, high):
    """Stateless float32 uniform in [low, high), the same on CPU and under XLA
    (their float draws differ; integer draws agree, so floats are built from them)."""
    bits = tf.random.stateless_uniform(shape, seed, 0, 1 << 24, dtype=tf.int32, alg=RNG)
    return low + (high - low) * tf.cast(bits, tf.float32) * (1.0 / (1 << 24))


def rot90_keypoints(keypoints, k, size):
    """Keypoints of an image rotated by k * 90 degrees counter-clockwise
    (as tf.image.rot90 / np.rot90). keypoints: float [B, 21, 2]; k: int [B]."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    k = tf.reshape(k % 4, [-1, 1])
    new_x = tf.where(
        k == 0, x, tf.where(k == 1, y, tf.where(k == 2, size - x, size - y))
    )
    new_y = tf.where(
        k == 0, y, tf.where(k == 1, size - x, tf.where(k == 2, size - y, x))
    )
    return tf.stack([new_x, new_y], axis=-1)


def rot90_images(images, k):
    """Each image of images [B, S, S, C] rotated by its own k[b] * 90 degrees CCW."""
    rotated = [tf.image.rot90(images, i) for i in range(4)]
    k = tf.reshape(k % 4, [-1, 1, 1, 1])
    out = rotated[0]
    for i in range(1, 4):
        out = tf.where(k == i, rotated[i], out)
    return out


def _rotation_matrices(angle):
    cos, sin = tf.cos(angle), tf.sin(angle)
    return tf.reshape(tf.stack([cos, -sin, sin, cos], axis=-1), [-1, 2, 2])


def rotate_keypoints(keypoints, angle, size):
    """Keypoints rotated by angle [B] (radians, clockwise on screen: y points down)
    about the image centre. keypoints: float [B, 21, 2]."""
    centre = size / 2.0
    rot = _rotation_matrices(angle)
    return tf.einsum("bij,bnj->bni", rot, keypoints - centre) + centre


def rotate_images(images, angle):
    """Bilinear rotation of images float [B, S, S, C] by angle [B] about the centre,
    matching rotate_keypoints; zeros outside. Written with gathers for XLA."""
    shape = tf.shape(images)
    batch, size, channels = shape[0], shape[1], shape[3]
    size_f = tf.cast(size, images.dtype)
    centres = tf.range(size_f) + 0.5
    grid_y, grid_x = tf.meshgrid(centres, centres, indexing="ij")
    out_xy = tf.reshape(tf.stack([grid_x, grid_y], axis=-1), [1, -1, 2])
    # Each output pixel samples the input at the inverse rotation of its centre.
    src = rotate_keypoints(tf.tile(out_xy, [batch, 1, 1]), -angle, size_f) - 0.5
    x0, y0 = tf.floor(src[..., 0]), tf.floor(src[..., 1])
    wx, wy = src[..., 0] - x0, src[..., 1] - y0
    flat = tf.reshape(images, [-1, channels])
    base = tf.reshape(tf.range(batch) * size * size, [-1, 1])
    out = tf.zeros([batch, size * size, channels], images.dtype)
    for dx, dy, weight in (
        (0, 0, (1 - wx) * (1 - wy)),
        (1, 0, wx * (1 - wy)),
        (0, 1, (1 - wx) * wy),
        (1, 1, wx * wy),
    ):
        xi = tf.cast(x0, tf.int32) + dx
        yi = tf.cast(y0, tf.int32) + dy
        inside = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        index = base + tf.clip_by_value(yi, 0, size - 1) * size
        index += tf.clip_by_value(xi, 0, size - 1)
        weight = tf.where(inside, weight, tf.zeros_like(weight))
        out += tf.gather(flat, index) * weight[..., None]
    return tf.reshape(out, shape)


def _keep_inside_angle(keypoints, angle, size):
    """The first of angle * ANGLE_TRIES that keeps every joint inside [0, size]."""
    chosen = tf.zeros_like(angle)
    for fraction in reversed(ANGLE_TRIES):
        candidate = angle * fraction
        moved = rotate_keypoints(keypoints, candidate, size)
        inside = tf.reduce_all((moved >= 0) & (moved <= size), axis=[1, 2])
        chosen = tf.where(inside, candidate, chosen)
    return chosen


def adjust_saturation(images, factor):
    """HSV saturation scaled by factor [B] (clipped to 1), hue and value kept,
    in closed form on RGB: c' = V - (V - c) * min(f, V / (V - min))."""
    value = tf.reduce_max(images, axis=-1, keepdims=True)
    spread = value - tf.reduce_min(images, axis=-1, keepdims=True)
    factor = tf.reshape(factor, [-1, 1, 1, 1])
    safe = tf.where(spread > 0, spread, tf.ones_like(spread))
    ratio = tf.where(spread > 0, tf.minimum(factor, value / safe), tf.ones_like(safe))
    return value - (value - images) * ratio


def augment_batch(images, keypoints, seed, conf=None):
    """The training augmentation of one batch.

    images: uint8 or float [B, S, S, 3] RGB 0..255; keypoints: float [B, 21, 2];
    seed: int [2] (e.g. (run seed, step)); conf: the settings of AUGMENT_KEYS,
    PAPER_CONF where left out.
    Returns (float32 [B, S, S, 3] in 0..255, float32 [B, 21, 2]).
    """
    conf = {**PAPER_CONF, **(conf or {})}
    images = tf.cast(images, tf.float32)
    keypoints = tf.cast(keypoints, tf.float32)
    size = tf.cast(tf.shape(images)[1], tf.float32)
    batch = tf.shape(images)[0]
    seeds = [stateless_fold_in(seed, i, alg=RNG) for i in range(4)]

    if conf["rot90"]:
        k = tf.random.stateless_uniform(
            [batch], seeds[0], 0, 4, dtype=tf.int32, alg=RNG
        )
        images = rot90_images(images, k)
        keypoints = rot90_keypoints(keypoints, k, size)
    if conf["max_angle"]:
        limit = conf["max_angle"] * 3.141592653589793 / 180.0
        angle = _uniform([batch], seeds[1], -limit, limit)
        angle = _keep_inside_angle(keypoints, angle, size)
        images = rotate_images(images, angle)
        keypoints = rotate_keypoints(keypoints, angle, size)
    if conf["brightness"]:
        delta = conf["brightness"]
        shift = _uniform([batch], seeds[2], -delta, delta)
        images = tf.clip_by_value(images + tf.reshape(shift, [-1, 1, 1, 1]), 0, 255)
    low, high = conf["saturation"]
    if (low, high) != (1, 1):
        factor = _uniform([batch], seeds[3], low, high)
        images = adjust_saturation(images, factor)
    return tf.clip_by_value(images, 0.0, 255.0), keypoints
