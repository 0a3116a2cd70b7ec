"""The hand skeleton shared by every part of hjr.

Keypoints are float32 [21, 2] in pixels, x = column, y = row, pixel i covering [i, i+1),
in RHD's joint order: 0 wrist, then per finger (thumb, index, middle, ring, little) four
joints running tip -> base (1-4 thumb tip..base, 5-8 index tip..MCP, ...).

A joint without a label (COCO's v = 0: no position given) is NaN in both x and y, in
every keypoints array [..., 21, 2]; `labelled_joints` tells the labelled ones apart.
Losses, metrics and scores leave unlabelled joints out, drawings skip them, and the
augmentation keeps them NaN.
"""

import numpy as np

NUM_JOINTS = 21
CROP_SIZE = 128  # side of the network input, pixels

FINGERS = ("thumb", "index", "middle", "ring", "little")
JOINT_NAMES = ("wrist",) + tuple(
    f"{finger}_{part}" for finger in FINGERS for part in ("tip", "3", "2", "base")
)

# Bones as (parent, child) pairs: wrist -> each finger base, then base -> ... -> tip.
BONES = tuple(
    pair
    for f in range(5)
    for pair in (
        (0, 4 * f + 4),
        (4 * f + 4, 4 * f + 3),
        (4 * f + 3, 4 * f + 2),
        (4 * f + 2, 4 * f + 1),
    )
)

# BGR-free drawing colours (RGB) per finger, the wrist in white.
FINGER_COLOURS = (
    (255, 64, 64),
    (255, 200, 0),
    (64, 220, 64),
    (0, 180, 255),
    (200, 80, 255),
)


def joint_colour(joint: int) -> tuple:
    """RGB colour of a joint: its finger's colour, white for the wrist."""
    return (255, 255, 255) if joint == 0 else FINGER_COLOURS[(joint - 1) // 4]


def labelled_joints(keypoints) -> np.ndarray:
    """bool [..., 21]: True where both coordinates of a joint of keypoints
    [..., 21, 2] are finite (labelled), False where it is unlabelled (NaN)."""
    return np.isfinite(np.asarray(keypoints)).all(axis=-1)
