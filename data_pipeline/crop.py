"""Square hand crops of a full frame, resized to the 128x128 network input.

Two ways to choose the square (both take keypoints float32 [21, 2], x = column,
y = row, pixel i covering [i, i+1)):

- `biased`: the course skeleton's crop, step by step as the competition cut its
  test set (the course skeleton's code). The square grows right/down only, so the
  hand sits towards the top-left of the crop.
- `centered`: a square centred on the keypoint box with the same 8 px margin,
  zero-padded where it leaves the frame.

Either square is the pixel patch of the frame it covers, resized to 128 x 128 by
cv2.resize (bilinear), as the competition cut its crops. Moved boxes
(data_pipeline.boxes) are cut from the frame's own pixels in one bilinear pass
(`cut_square` of `frame_slice`): the same samples, but at an enlarged crop's outer
pixel ring, where resize repeats the patch's edge and a cut reads the frame beyond.
"""

import math

import numpy as np

from .keypoints import CROP_SIZE

MARGIN = 8  # pixels added around the keypoint box by both crops
CONTEXT = 2  # the side of a crop's surroundings over the crop's
CONTEXT_SIDE = CONTEXT * CROP_SIZE
# Frame pixels kept beyond the surroundings' square (in stored pixels): a bilinear
# sample near the square's edge also reads the pixel beyond it.
SLICE_MARGIN = 2
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
    with `context`, the crop's surroundings in the frame's pixels (`frame_slice`:
    a tuple (pixels, place)) in place of the crop.
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
        return frame_slice(image, box), local
    import cv2  # importing this module (for CROPS) needs no OpenCV

    # The competition's crops: its training crops must be cut as its test set was.
    patch = crop_square(image, box)
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


def frame_slice(image: np.ndarray, box: tuple) -> tuple:
    """The frame's pixels around a crop box (x0, y0, side), from which moved boxes
    are cut (data_pipeline.boxes): (pixels uint8 [h, w, 3], place float64 [6]:
    x, y, step, x0, y0, side).

    pixels: the frame's columns x .. x + step * w and rows y .. y + step * h
    (whole frame pixels, clipped to the frame) that hold the square of CONTEXT
    times the side about the box's centre, SLICE_MARGIN stored pixels wider each
    way. At the frame's resolution (step 1) for a side under 2 * CONTEXT_SIDE
    frame pixels (every 320 x 320 frame's box); a larger box's (a photo's) is
    averaged over step x step blocks, step = side // CONTEXT_SIDE, so
    that a crop pixel keeps 2 to 3 stored pixels and a slice stays under about
    800 a side (zeros where a last block reaches past the frame).
    """
    x0, y0, side = (float(v) for v in box)
    height, width = image.shape[:2]
    step = max(1, int(side // CONTEXT_SIDE))
    grow = (CONTEXT - 1) * side / 2 + SLICE_MARGIN * step
    x = max(math.floor(x0 - grow), 0)
    y = max(math.floor(y0 - grow), 0)
    w = max(-(-(min(math.ceil(x0 + side + grow), width) - x) // step), 0)
    h = max(-(-(min(math.ceil(y0 + side + grow), height) - y) // step), 0)
    pixels = _region(image, x, y, w * step, h * step)
    if step > 1 and w and h:
        import cv2

        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels), np.array([x, y, step, x0, y0, side])


def _region(image, x, y, width, height) -> np.ndarray:
    """uint8 [height, width, 3]: the frame's rows y.., columns x.. (x, y >= 0),
    zeros past its right and bottom edges."""
    out = np.zeros((height, width) + image.shape[2:], image.dtype)
    part = image[y : y + height, x : x + width]
    out[: part.shape[0], : part.shape[1]] = part
    return out
