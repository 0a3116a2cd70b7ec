"""Pictures: joints and bones over crops, contact sheets and titled grids."""

import math

import cv2
import numpy as np

from data_pipeline.keypoints import BONES, joint_colour, labelled_joints

SHIFT = 4  # sub-pixel bits for OpenCV drawing


def _point(xy, scale):
    """OpenCV fixed-point coordinates of a keypoint (OpenCV puts integer c at the
    centre of pixel c; ours puts c + 0.5 there)."""
    return tuple(int(round((v * scale - 0.5) * (1 << SHIFT))) for v in xy)


def drawable(keypoints) -> np.ndarray:
    """bool [21]: the joints that can be drawn: labelled (not NaN) and finite, within
    OpenCV's fixed-point range (a diverged network predicts inf or 1e30)."""
    keypoints = np.asarray(keypoints, np.float64)
    return labelled_joints(keypoints) & np.all(np.abs(keypoints) < 1e5, axis=-1)


def draw_keypoints(image, keypoints=None, scale=3, truth=None, hidden=None):
    """The image enlarged `scale` times (nearest), with bones and joints drawn.

    image: uint8 [S, S, 3] RGB; keypoints, truth: float [21, 2] crop pixels or None.
    truth, when given, is drawn as small white rings under the prediction, and the
    joints that `hidden` (bool [21]) marks as small white crosses instead.
    Unlabelled joints (NaN) are not drawn, nor the bones that touch them, nor
    joints out of all reach (inf, from a diverged network).
    """
    size = image.shape[0] * scale
    canvas = cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
    canvas = np.ascontiguousarray(canvas)
    if truth is not None:
        hidden = np.zeros(len(truth), bool) if hidden is None else hidden
        white, arm = (255, 255, 255), 3 << SHIFT
        for xy, cross, shown in zip(truth, hidden, drawable(truth)):
            if not shown:
                continue
            x, y = _point(xy, scale)
            if not cross:
                cv2.circle(canvas, (x, y), 4 << SHIFT, white, 1, cv2.LINE_AA, SHIFT)
                continue
            for tilt in (arm, -arm):
                ends = (x - arm, y - tilt), (x + arm, y + tilt)
                cv2.line(canvas, *ends, white, 1, cv2.LINE_AA, SHIFT)
    if keypoints is not None:
        _skeleton(canvas, keypoints, scale, 2, 3)
    return canvas


def _skeleton(canvas, keypoints, scale, width, radius):
    """Bones (lines `width` px wide) and joints (discs of `radius` px) of keypoints
    [21, 2] (continuous pixels, times `scale`) on canvas, in place."""
    shown = drawable(keypoints)
    for parent, child in BONES:
        if shown[parent] and shown[child]:
            ends = _point(keypoints[parent], scale), _point(keypoints[child], scale)
            cv2.line(canvas, *ends, joint_colour(child), width, cv2.LINE_AA, SHIFT)
    for joint, xy in enumerate(keypoints):
        if shown[joint]:
            centre = _point(xy, scale)
            colour = joint_colour(joint)
            cv2.circle(canvas, centre, radius << SHIFT, colour, -1, cv2.LINE_AA, SHIFT)


def draw_hands(image, hands) -> np.ndarray:
    """A copy of image uint8 [H, W, 3] RGB, at its size, with each hand drawn: its
    box, its bones and joints, and its score above the box. hands: dicts with
    "bbox" (x, y, w, h, continuous pixels), "keypoints" float [21, 2] in the
    image's pixel indices (COCO's: pixel (0, 0)'s centre is (0, 0)) and "score"."""
    canvas = np.ascontiguousarray(image).copy()
    for hand in hands:
        x, y, w, h = (float(v) for v in hand["bbox"])
        size = max(w, h, 1.0)
        width = max(1, int(round(size / 80)))
        corners = (x, y), (x + w, y + h)
        ends = [_point((cx, cy), 1) for cx, cy in corners]
        cv2.rectangle(canvas, *ends, (255, 255, 255), width, cv2.LINE_AA, SHIFT)
        points = np.asarray(hand["keypoints"], np.float64) + 0.5  # continuous
        _skeleton(canvas, points, 1, width, max(2, int(round(size / 50))))
        if hand.get("score") is not None:
            scale = max(0.4, size / 250)
            where = (int(x), max(int(y) - 4, 12))
            text = f"{float(hand['score']):.2f}"
            white = (255, 255, 255)
            font = cv2.FONT_HERSHEY_SIMPLEX
            cv2.putText(canvas, text, where, font, scale, white, width, cv2.LINE_AA)
    return canvas


def contact_sheet(tiles, labels=(), columns=8, tile=192):
    """One image of tiles (RGB uint8, any size) in a grid, each resized to `tile`
    pixels and captioned with its label."""
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * tile, min(columns, len(tiles)) * tile, 3), 32, np.uint8)
    for i, image in enumerate(tiles):
        small = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        if i < len(labels):
            cv2.putText(
                small,
                str(labels[i]),
                (4, 16),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
        r, c = divmod(i, columns)
        sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = small
    return sheet


def titled_grid(tiles, titles, columns, header=None, band=24, gap=4):
    """One image of equal-sized tiles (RGB uint8 [S, S, 3]) in a grid of `columns`,
    `gap` pixels apart, each under a dark band of `band` pixels holding its title
    in white; `header`, when given, is a line in a band above the grid (which is
    widened to hold it where needed)."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    size = tiles[0].shape[0]
    rows = math.ceil(len(tiles) / columns)
    top = band if header else 0
    width = columns * (size + gap) - gap
    if header:
        width = max(width, cv2.getTextSize(header, font, font_scale, 1)[0][0] + 12)
    sheet = np.full((top + rows * (band + size), width, 3), 32, np.uint8)

    def text(line, x, y):
        white = (255, 255, 255)
        cv2.putText(sheet, line, (x, y), font, font_scale, white, 1, cv2.LINE_AA)

    if header:
        text(header, 6, band - 7)
    for i, (tile, title) in enumerate(zip(tiles, titles)):
        r, c = divmod(i, columns)
        y, x = top + r * (band + size), c * (size + gap)
        text(title, x + 6, y + band - 7)
        sheet[y + band : y + band + size, x : x + size] = tile
    return sheet


def new_figure(*args, **kwargs):
    """A matplotlib figure and axes on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def figure_image(fig) -> np.ndarray:
    """A matplotlib figure rendered to uint8 [H, W, 3] RGB; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
