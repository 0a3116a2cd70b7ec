"""Square hand crops of a full frame, resized to the 128x128 network input.

Two ways to choose the square (both take keypoints float32 [21, 2], x = column,
y = row, pixel i covering [i, i+1)):

- `biased`: the course skeleton's crop, step by step as the competition cut its
  test set (the course skeleton's code). The square grows right/down only, so the
  hand sits towards the top-left of the crop.
- `centered`: a square centred on the keypoint box with the same 8 px margin,
  zero-padded where it leaves the frame.
"""

import math

import numpy as np

from .keypoints import CROP_SIZE

MARGIN = 8  # pixels added around the keypoint box by both crops
CONTEXT = 2  # the side of a crop's surroundings over the crop's
CONTEXT_SIDE = CONTEXT * CROP_SIZE
CROPS = ("biased", "centered")


def biased_box(keypoints: np.ndarray, width: int, height: int) -> tuple:
    """The skeleton's square box (x_min, y_min, side), end exclusive.

    keypoints: float [21, 2], all inside the width x height frame.
    """
    x_min = math.ceil(float(keypoints[:, 0].min()))
    x_max = math.floor(float(keypoints[:, 0].max()))
    y_min = math.ceil(float(keypoints[:, 1].min()))
    y_max = math.floor(float(keypoints[:, 1].max()))
    x_max = width - 1 if x_max == width else x_max
    y_max = height - 1 if y_max == height else y_max

    x_min = x_min - MARGIN if x_min - MARGIN >= 0 else x_min
    x_max = x_max + MARGIN if x_max + MARGIN < width else x_max
    y_min = y_min - MARGIN if y_min - MARGIN >= 0 else y_min
    y_max = y_max + MARGIN if y_max + MARGIN < height else y_max

    dx, dy = x_max - x_min, y_max - y_min
    if dy > dx:
        if x_min + dy < width:
            x_max = x_min + dy
        else:
            x_min = x_max - (dy - (width - x_max - 1))
            x_max = width - 1
    else:
        if y_min + dx < height:
            y_max = y_min + dx
        else:
            y_min = y_max - (dx - (height - y_max - 1))
            y_max = height - 1
    return x_min, y_min, x_max - x_min


def biased_keypoints(keypoints: np.ndarray, box: tuple) -> np.ndarray:
    """Keypoints shifted into the box, with the skeleton's clamp (the largest value
    per axis only, to the crop's side), in pixels of the d x d crop."""
    x_min, y_min, side = box
    shifted = np.asarray(keypoints, np.float64) - (x_min, y_min)
    for axis in (0, 1):
        j = int(np.argmax(shifted[:, axis]))
        shifted[j, axis] = min(shifted[j, axis], side)
    return shifted


def centered_box(keypoints: np.ndarray) -> tuple:
    """A square (x_min, y_min, side) centred on the keypoint box, margin included.

    It may reach outside the frame; `crop_square` pads with zeros there.
    """
    lo, hi = keypoints.min(axis=0), keypoints.max(axis=0)
    side = math.ceil(float((hi - lo).max()) + 2 * MARGIN)
    centre = (lo + hi) / 2
    x_min, y_min = (int(round(float(c) - side / 2)) for c in centre)
    return x_min, y_min, side


def crop_square(image: np.ndarray, box: tuple) -> np.ndarray:
    """Pixels [y_min, y_min+side) x [x_min, x_min+side) of image, zeros outside it."""
    x_min, y_min, side = box
    height, width = image.shape[:2]
    out = np.zeros((side, side) + image.shape[2:], image.dtype)
    x0, y0 = max(x_min, 0), max(y_min, 0)
    x1, y1 = min(x_min + side, width), min(y_min + side, height)
    if x1 > x0 and y1 > y0:
        out[y0 - y_min : y1 - y_min, x0 - x_min : x1 - x_min] = image[y0:y1, x0:x1]
    return out


def crop_hand(image, keypoints, crop: str = "biased", context: bool = False) -> tuple:
    """Crop one hand and resize it to the network input.

    image: uint8 [H, W, 3]; keypoints: float [21, 2] in the frame.
    Returns (uint8 [128, 128, 3], float32 [21, 2] in pixels of the 128x128 crop);
    with `context`, the crop's surroundings (`surroundings`) in place of the crop.
    """
    height, width = image.shape[:2]
    if crop == "biased":
        box = biased_box(keypoints, width, height)
        local = biased_keypoints(keypoints, box)
    elif crop == "centered":
        box = centered_box(keypoints)
        local = np.asarray(keypoints, np.float64) - box[:2]
    else:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    local = (local * (CROP_SIZE / box[2])).astype(np.float32)
    if context:
        return surroundings(image, box), local
    patch = crop_square(image, box)
    import cv2  # importing this module (for CROPS) needs no OpenCV

    resized = cv2.resize(patch, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)
    return resized, local


def cut_square(image: np.ndarray, box: tuple, size: int = CROP_SIZE) -> np.ndarray:
    """The square box (x0, y0, side), continuous frame pixels, any real values, of
    image uint8 [H, W, 3] resized to size x size (128): bilinear, pixel centres at
    i + 0.5 (pixel j samples the frame at (j + 0.5) * side / size + x0), zeros
    outside the image."""
    import cv2

    x0, y0, side = (float(v) for v in box)
    scale = side / size
    inverse = np.array(
        [
            [scale, 0.0, x0 + 0.5 * scale - 0.5],
            [0.0, scale, y0 + 0.5 * scale - 0.5],
        ]
    )
    return cv2.warpAffine(
        image,
        inverse,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def surroundings(image: np.ndarray, box: tuple) -> np.ndarray:
    """uint8 [256, 256, 3]: the square of CONTEXT times the side of the crop box
    (x0, y0, side) about its centre, at the crop's resolution, zeros outside the
    image; the crop is its pixels 64..191 (data_pipeline.boxes)."""
    x0, y0, side = (float(v) for v in box)
    grow = (CONTEXT - 1) * side / 2
    return cut_square(image, (x0 - grow, y0 - grow, CONTEXT * side), CONTEXT_SIDE)
