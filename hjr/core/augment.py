"""Training augmentation on a batch, on the accelerator, on every Keras backend.

Written with keras.ops only (plain tensor arithmetic and gathers: no projective
transform, no HSV ops), so it runs on TensorFlow, JAX and PyTorch, eagerly or
compiled (`tf.function(jit_compile=True)`, `jax.jit`), given a static image size.

Random numbers are not drawn here. Each batch carries its draws: float32 [B, 4]
uniform in [0, 1), one row per sample (data_pipeline.pipeline.batch_draws), and
this module only maps them to parameters, column by column:
    0: rot90, k = floor(4 u) clipped to 0..3 (k quarter turns counter-clockwise),
       and the mirror: flipped left to right after the turn where floor(8 u) is
       odd (the next bit of the same draw, so that turning on `flip` changes no
       other draw, and the turn and the mirror are independent, each of the 8
       pairs equally likely)
    1: extra angle, (2 u - 1) * max_angle degrees
    2: brightness shift, (2 u - 1) * brightness on the 0..255 scale
    3: saturation factor, low + (high - low) * u
So the same draws give the same augmentation on every backend and device, and a
batch split over replicas splits its draws with its samples.

Geometry follows the one keypoint convention: x = column, y = row, pixel i covering
[i, i+1), so a square image of side S spans [0, S] and pixel centres sit at i + 0.5.

Joints and arbitrary angles: an angle that would rotate any joint out of the frame
is halved, up to three times, and dropped (0) if it still would. Joints therefore
never leave the frame and labels stay valid; hands near the border are rotated
less. Corners brought in from outside the image are black (zeros).

Unlabelled joints (NaN keypoints, data_pipeline.keypoints) stay NaN through every
transform and count as inside the frame: they limit no angle.
"""

import math

import numpy as np
from keras import ops

from hjr.config import AUGMENT_KEYS, default_conf
from hjr.core.codec import pixel_centres

# The settings and their defaults (the paper's) are a run's (hjr.config).
PAPER_CONF = {key: default_conf[key] for key in AUGMENT_KEYS}
NUM_DRAWS = 4  # columns of draws: rot90, angle, brightness, saturation
ANGLE_TRIES = (1.0, 0.5, 0.25, 0.0)  # fractions of the drawn angle tried in order
# cos and sin of a rotation are rounded to multiples of 1 / TRIG_STEPS. Backends
# differ in their last bit, and so would every sampling coordinate (by ~1e-5 px:
# 4e-3 on a value next to a hard edge); rounded, cos * x - sin * y + c is exact in
# float32 for pixel centres (half-integers) of images up to 1024 px, whatever the
# backend, compiler or order of operations. Each entry of the rotation matrix is
# off by at most 2 ** -13 (a joint 90 px from the centre moves under 0.02 px).
TRIG_STEPS = 4096.0


def rot90_keypoints(keypoints, k, size):
    """Keypoints of an image rotated by k * 90 degrees counter-clockwise
    (as np.rot90 over the image axes). keypoints: float [B, 21, 2]; k: int [B];
    size: the image side S. Returns float [B, 21, 2]."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    k = ops.reshape(ops.mod(ops.cast(k, "int32"), 4), [-1, 1])
    new_x = ops.where(
        k == 0, x, ops.where(k == 1, y, ops.where(k == 2, size - x, size - y))
    )
    new_y = ops.where(
        k == 0, y, ops.where(k == 1, size - x, ops.where(k == 2, size - y, x))
    )
    return ops.stack([new_x, new_y], axis=-1)


def mirror(images):
    """Images [B, S, S, C] flipped left to right: column c goes to S - 1 - c, so a
    point at x goes to S - x (mirror_keypoints)."""
    return ops.flip(images, axis=2)


def mirror_keypoints(keypoints, size):
    """Keypoints of images flipped left to right (mirror): x -> size - x."""
    return ops.stack([size - keypoints[..., 0], keypoints[..., 1]], axis=-1)


def rot90_images(images, k):
    """Each image of images [B, S, S, C] rotated by its own k[b] * 90 degrees
    counter-clockwise (as np.rot90 over axes (1, 2)). k: int [B]. S must be static:
    one gather of every image's pixels from a table of the four turns' source
    pixels (cheaper than turning every image four ways and selecting)."""
    size, channels = images.shape[1], images.shape[3]
    pixels = np.arange(size * size, dtype="int32").reshape(size, size)
    sources = np.stack([np.rot90(pixels, turn).ravel() for turn in range(4)])
    k = ops.mod(ops.cast(k, "int32"), 4)
    batch = ops.shape(images)[0]
    base = ops.reshape(ops.arange(batch, dtype="int32") * (size * size), [-1, 1])
    index = ops.take(ops.convert_to_tensor(sources), k, axis=0) + base  # [B, S*S]
    flat = ops.reshape(images, [-1, channels])
    return ops.reshape(ops.take(flat, index, axis=0), ops.shape(images))


def rotate_keypoints(keypoints, angle, size):
    """Keypoints rotated by angle [B] (radians, clockwise on screen: y points down;
    cos and sin rounded, TRIG_STEPS) about the image centre (size / 2).
    keypoints: float [B or 1, N, 2]. Returns float [B, N, 2]."""
    centre = size / 2.0
    cos = ops.round(ops.cos(angle) * TRIG_STEPS) / TRIG_STEPS
    sin = ops.round(ops.sin(angle) * TRIG_STEPS) / TRIG_STEPS
    cos, sin = ops.reshape(cos, [-1, 1]), ops.reshape(sin, [-1, 1])
    x, y = keypoints[..., 0] - centre, keypoints[..., 1] - centre
    return ops.stack([cos * x - sin * y + centre, sin * x + cos * y + centre], -1)


def rotate_images(images, angle):
    """Bilinear rotation of images float [B, S, S, C] by angle [B] (radians) about
    the centre, matching rotate_keypoints; zeros outside. S and C must be static;
    written with one gather per corner (ops.take on the flattened batch)."""
    size, channels = images.shape[1], images.shape[3]
    out_xy = ops.reshape(pixel_centres(size), [1, -1, 2])
    # Each output pixel samples the input at the inverse rotation of its centre.
    src = rotate_keypoints(out_xy, -angle, float(size)) - 0.5  # [B, S*S, 2]
    x0, y0 = ops.floor(src[..., 0]), ops.floor(src[..., 1])
    wx, wy = src[..., 0] - x0, src[..., 1] - y0
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    flat = ops.reshape(images, [-1, channels])
    batch = ops.shape(images)[0]
    base = ops.reshape(ops.arange(batch, dtype="int32") * (size * size), [-1, 1])
    out = 0.0
    for dx, dy, weight in (
        (0, 0, (1 - wx) * (1 - wy)),
        (1, 0, wx * (1 - wy)),
        (0, 1, (1 - wx) * wy),
        (1, 1, wx * wy),
    ):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        index = base + ops.clip(yi, 0, size - 1) * size + ops.clip(xi, 0, size - 1)
        weight = ops.where(inside, weight, ops.zeros_like(weight))
        out = out + ops.take(flat, index, axis=0) * weight[..., None]
    return ops.reshape(out, ops.shape(images))


def _keep_inside_angle(keypoints, angle, size):
    """The first of angle * ANGLE_TRIES that keeps every labelled joint inside
    [0, size] (unlabelled joints, NaN, are inside wherever they go).
    keypoints: float [B, 21, 2]; angle: [B] radians. Returns [B]."""
    chosen = ops.zeros_like(angle)
    unlabelled = ops.any(ops.isnan(keypoints), axis=-1, keepdims=True)  # [B, 21, 1]
    for fraction in reversed(ANGLE_TRIES):
        candidate = angle * fraction
        moved = rotate_keypoints(keypoints, candidate, size)
        kept = (moved >= 0) & (moved <= size)
        inside = ops.all(kept | unlabelled, axis=(1, 2))
        chosen = ops.where(inside, candidate, chosen)
    return chosen


def adjust_saturation(images, factor):
    """HSV saturation of images float [B, H, W, 3] scaled by factor [B] (clipped
    to 1), hue and value kept, in closed form on RGB:
    c' = V - (V - c) * min(f, V / (V - min))."""
    value = ops.max(images, axis=-1, keepdims=True)
    spread = value - ops.min(images, axis=-1, keepdims=True)
    factor = ops.reshape(ops.cast(factor, images.dtype), [-1, 1, 1, 1])
    positive = spread > 0
    safe = ops.where(positive, spread, ops.ones_like(spread))
    ratio = ops.where(positive, ops.minimum(factor, value / safe), ops.ones_like(safe))
    return value - (value - images) * ratio


def augment_batch(images, keypoints, draws, conf=None):
    """The training augmentation of one batch.

    images: uint8 or float [B, S, S, 3] RGB 0..255 (S static); keypoints: float
    [B, 21, 2]; draws: float [B, NUM_DRAWS] uniform in [0, 1) (the module
    docstring says which column drives what); conf: the settings of AUGMENT_KEYS,
    PAPER_CONF where left out.
    Returns (float32 [B, S, S, 3] in 0..255, float32 [B, 21, 2]).
    """
    conf = {**PAPER_CONF, **(conf or {})}
    images = ops.cast(images, "float32")
    keypoints = ops.cast(keypoints, "float32")
    draws = ops.cast(draws, "float32")
    size = float(images.shape[1])

    if conf["rot90"]:
        k = ops.clip(ops.cast(ops.floor(4.0 * draws[:, 0]), "int32"), 0, 3)
        images = rot90_images(images, k)
        keypoints = rot90_keypoints(keypoints, k, size)
    if conf["flip"]:
        eighth = ops.clip(ops.floor(8.0 * draws[:, 0]), 0.0, 7.0)
        odd = ops.reshape(eighth - 2.0 * ops.floor(eighth / 2.0), [-1, 1])  # 0 or 1
        images = ops.where(
            ops.reshape(odd, [-1, 1, 1, 1]) > 0.5, mirror(images), images
        )
        keypoints = ops.where(
            odd[..., None] > 0.5, mirror_keypoints(keypoints, size), keypoints
        )
    if conf["max_angle"]:
        limit = conf["max_angle"] * math.pi / 180.0
        angle = (2.0 * draws[:, 1] - 1.0) * limit
        angle = _keep_inside_angle(keypoints, angle, size)
        images = rotate_images(images, angle)
        keypoints = rotate_keypoints(keypoints, angle, size)
    if conf["brightness"]:
        shift = (2.0 * draws[:, 2] - 1.0) * conf["brightness"]
        images = ops.clip(images + ops.reshape(shift, [-1, 1, 1, 1]), 0.0, 255.0)
    low, high = conf["saturation"]
    if (low, high) != (1, 1):
        factor = low + (high - low) * draws[:, 3]
        images = adjust_saturation(images, factor)
    return ops.clip(images, 0.0, 255.0), keypoints
