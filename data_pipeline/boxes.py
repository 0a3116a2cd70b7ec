"""Imperfect crops: each hand's box moved and scaled, as a hand detector would
give it, cut from the hand's surroundings with the keypoints moved exactly.

A perturbation (dx, dy, f) moves a crop's box by (dx, dy) pixels of the 128-px crop
and scales its side by f about the moved centre. The new crop is cut from the
sample's surroundings (data_pipeline.crop.surroundings: the square of twice the
crop's side about its centre, cut from the source's frame at the crop's resolution,
so that the crop is its pixels 64..191; a source that holds only crops, the
competition's test file, has the crop in a zero border), by bilinear interpolation
with pixel centres at i + 0.5, zeros outside. A keypoint k of the crop goes to
(k - (64 + dx - 64 f, 64 + dy - 64 f)) / f, NaN staying NaN.

Two ways to draw them:
- evaluation (`--shift PX --scale S`): each sample moved by exactly PX in a
  direction, and scaled by a factor log-uniform in [1/S, S], both drawn from
  numpy's default_rng((seed, sample id, 7)): the same sample gets the same box
  whatever the split's order or the command;
- training (`--box-jitter PX,S`): each sample of training batch n of a run seeded s
  moved by a length uniform in [0, PX] in a uniform direction and scaled log-
  uniformly in [1/S, S], drawn from default_rng((s, n, 2)) (the augmentation's
  draws, default_rng((s, n, 1)), stay as they are).
The box must stay inside the surroundings: PX + 64 S <= 128.
"""

import numpy as np

from .crop import CONTEXT_SIDE, cut_square
from .errors import UserError
from .keypoints import CROP_SIZE

HALF = CROP_SIZE / 2
REACH = CONTEXT_SIDE / 2  # from the crop's centre to the surroundings' edge


def check(shift: float, scale: float, key: str = "shift"):
    """UserError unless 0 <= shift, 1 <= scale and the box stays inside the
    surroundings; it names --shift and --scale, or `key` (e.g. box_jitter)."""
    value = f"{shift:g} --scale {scale:g}" if key == "shift" else f"{shift:g},{scale:g}"
    if not (shift >= 0 and scale >= 1):
        raise UserError("expected a shift >= 0 and a scale >= 1", key, value)
    if shift + HALF * scale > REACH:
        raise UserError(
            f"moves the box out of the stored surroundings: expected shift + "
            f"{HALF:g} x scale <= {REACH:g}",
            key,
            value,
        )


def evaluation_draws(ids, shift: float, scale: float, seed: int = 0) -> np.ndarray:
    """float64 [N, 3] (dx, dy, f) of the samples `ids` (module docstring)."""
    draws = np.empty((len(ids), 3))
    for n, index in enumerate(np.ravel(ids)):
        u = np.random.default_rng((seed, int(index), 7)).random(2)
        angle = 2 * np.pi * u[0]
        factor = scale ** (2 * u[1] - 1)
        draws[n] = shift * np.cos(angle), shift * np.sin(angle), factor
    return draws


def training_draws(seed: int, step: int, size: int, shift, scale) -> np.ndarray:
    """float64 [B, 3] (dx, dy, f) of training batch `step` (module docstring)."""
    u = np.random.default_rng((seed, step, 2)).random((size, 3))
    length, angle = shift * u[:, 0], 2 * np.pi * u[:, 1]
    factor = float(scale) ** (2 * u[:, 2] - 1)
    return np.stack([length * np.cos(angle), length * np.sin(angle), factor], 1)


def corner(draws) -> np.ndarray:
    """float64 [N, 2]: each moved box's top-left corner in the crop's pixels."""
    draws = np.asarray(draws, np.float64)
    return HALF + draws[:, :2] - HALF * draws[:, 2:3]


def perturb(surroundings, keypoints, draws) -> tuple:
    """(crops uint8 [N, 128, 128, 3], keypoints float32 [N, 21, 2]) of the moved
    boxes: surroundings uint8 [N, 256, 256, 3], keypoints float [N, 21, 2] of the
    crops as they are, draws [N, 3] (dx, dy, f)."""
    corners, factor = corner(draws), np.asarray(draws, np.float64)[:, 2]
    offset = REACH - HALF  # crop pixels -> surroundings pixels
    crops = np.empty((len(draws), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for n, ((x0, y0), f) in enumerate(zip(corners, factor)):
        box = (x0 + offset, y0 + offset, CROP_SIZE * f)
        crops[n] = cut_square(surroundings[n], box)
    keypoints = np.asarray(keypoints, np.float64)
    moved = (keypoints - corners[:, None]) / factor[:, None, None]
    return crops, moved.astype(np.float32)


def frame_boxes(boxes, draws) -> np.ndarray:
    """The moved boxes (x0, y0, side) in frame pixels, of boxes [N, 3] (a coco
    source's `box` field)."""
    boxes = np.asarray(boxes, np.float64)
    scale = boxes[:, 2:3] / CROP_SIZE
    corners = boxes[:, :2] + corner(draws) * scale
    return np.concatenate([corners, boxes[:, 2:3] * np.asarray(draws)[:, 2:3]], 1)
