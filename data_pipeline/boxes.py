"""Imperfect crops: each hand's box moved and scaled, as a hand detector would
give it, cut from the hand's frame with the keypoints moved exactly.

A perturbation (dx, dy, f) moves a crop's box by (dx, dy) pixels of the 128-px crop
and scales its side by f about the moved centre. The moved box, in frame pixels
(`frame_boxes`), is cut in one bilinear pass (data_pipeline.crop.cut_square: pixel
centres at i + 0.5, zeros outside the frame) from the frame's own pixels about the
box (`Surroundings`, stored by data_pipeline.store: data_pipeline.crop.frame_slice):
the stored crop's samples, but for an enlarged crop's outer pixel ring, which the
competition's resize takes from the patch's edge (data_pipeline.crop). A source
that holds only crops (the competition's test file) has each crop as its own
frame. A keypoint k of the crop goes to (k - (64 + dx - 64 f, 64 + dy
- 64 f)) / f, NaN staying NaN; `unmove` takes points of a moved crop back to
pixels of the crop as it should have been cut, the unit its errors are given in.

Two ways to draw them:
- evaluation (`--shift PX --scale S`): each sample moved by exactly PX in a
  direction, and scaled by a factor log-uniform in [1/S, S], both drawn from
  numpy's default_rng((seed, sample id, 7)): the same sample gets the same box
  whatever the split's order or the command;
- training (`--box-jitter PX,S`): each sample of training batch n of a run seeded s
  moved by a length uniform in [0, PX] in a uniform direction and scaled log-
  uniformly in [1/S, S], drawn from default_rng((s, n, 2)) (the augmentation's
  draws, default_rng((s, n, 1)), stay as they are).
The box must stay inside the stored surroundings (the square of twice the box's
side about its centre): PX + 64 S <= 128.
"""

from dataclasses import dataclass

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


def moves(shift: float, scale: float) -> bool:
    """Whether a shift and scale move boxes at all (not 0 and 1)."""
    return shift != 0 or scale != 1


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


def unmove(points, draws) -> np.ndarray:
    """float64 [N, 21, 2]: points float [N, 21, 2] of the moved crops (draws [N, 3])
    in pixels of the crops as they should have been cut (the inverse of the
    keypoints' move: c + f k); an error there is f times the moved crop's."""
    draws = np.asarray(draws, np.float64)
    points = np.asarray(points, np.float64)
    return corner(draws)[:, None] + draws[:, 2, None, None] * points


@dataclass
class Surroundings:
    """Each sample's frame pixels about its crop box (data_pipeline.crop.frame_slice),
    the slices one after another: what moved boxes are cut from."""

    pixels: np.ndarray  # uint8 [total], each slice's [h, w, 3] values, row-major
    # float64 [N, 9]: (offset into pixels, h, w, x, y, step, box x0, y0, side):
    # frame_slice's place after where its pixels are.
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @property
    def boxes(self) -> np.ndarray:
        """float64 [N, 3]: each crop's box (x0, y0, side) in frame pixels."""
        return self.index[:, 6:9]

    def cut(self, row: int, box) -> np.ndarray:
        """uint8 [128, 128, 3]: the box (x0, y0, side), frame pixels, of sample
        `row`'s frame, zeros outside it."""
        offset, height, width, x, y, step = (int(v) for v in self.index[row, :6])
        if not height * width:
            return np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
        end = offset + height * width * 3
        pixels = np.asarray(self.pixels[offset:end]).reshape(height, width, 3)
        x0, y0, side = (float(v) for v in box)
        return cut_square(pixels, ((x0 - x) / step, (y0 - y) / step, side / step))


def perturb(surroundings: Surroundings, rows, keypoints, draws) -> tuple:
    """(crops uint8 [N, 128, 128, 3], keypoints float32 [N, 21, 2]) of the moved
    boxes of the samples at `rows` (storage positions) [N]: keypoints float
    [N, 21, 2] of their crops as they are, draws [N, 3] (dx, dy, f)."""
    rows = np.asarray(rows, np.int64)
    moved = frame_boxes(surroundings.boxes[rows], draws)
    crops = np.empty((len(rows), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for n, (row, box) in enumerate(zip(rows, moved)):
        crops[n] = surroundings.cut(row, box)
    corners, factor = corner(draws), np.asarray(draws, np.float64)[:, 2]
    keypoints = np.asarray(keypoints, np.float64)
    points = (keypoints - corners[:, None]) / factor[:, None, None]
    return crops, points.astype(np.float32)


def frame_boxes(boxes, draws) -> np.ndarray:
    """float64 [N, 3]: the moved boxes (x0, y0, side) in frame pixels, of boxes
    [N, 3] (Surroundings.boxes, a coco source's `box` field)."""
    boxes = np.asarray(boxes, np.float64)
    scale = boxes[:, 2:3] / CROP_SIZE
    corners = boxes[:, :2] + corner(draws) * scale
    return np.concatenate([corners, boxes[:, 2:3] * np.asarray(draws)[:, 2:3]], 1)
