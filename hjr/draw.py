"""Pictures: joints and bones over crops, and contact sheets."""

import math

import cv2
import numpy as np

from data_pipeline.keypoints import BONES, joint_colour

SHIFT = 4  # sub-pixel bits for OpenCV drawing


def _point(xy, scale):
    """OpenCV fixed-point coordinates of a keypoint (OpenCV puts integer c at the
    centre of pixel c; ours puts c + 0.5 there)."""
    return tuple(int(round((v * scale - 0.5) * (1 << SHIFT))) for v in xy)


def draw_keypoints(image, keypoints=None, scale=3, truth=None):
    """The image enlarged `scale` times (nearest), with bones and joints drawn.

    image: uint8 [S, S, 3] RGB; keypoints, truth: float [21, 2] crop pixels or None.
    truth, when given, is drawn as small white rings under the prediction.
    """
    size = image.shape[0] * scale
    canvas = cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
    canvas = np.ascontiguousarray(canvas)
    if truth is not None:
        for xy in truth:
            cv2.circle(
                canvas,
                _point(xy, scale),
                4 << SHIFT,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
                SHIFT,
            )
    if keypoints is None:
        return canvas
    for parent, child in BONES:
        cv2.line(
            canvas,
            _point(keypoints[parent], scale),
            _point(keypoints[child], scale),
            joint_colour(child),
            2,
            cv2.LINE_AA,
            SHIFT,
        )
    for joint, xy in enumerate(keypoints):
        cv2.circle(
            canvas,
            _point(xy, scale),
            3 << SHIFT,
            joint_colour(joint),
            -1,
            cv2.LINE_AA,
            SHIFT,
        )
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
