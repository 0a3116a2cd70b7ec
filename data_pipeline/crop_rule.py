"""From a hand's joints (or box) to the square a model was trained to see.

Tracking cuts each frame's crop from the joints found in the frame before, and the
crop must have the geometry of the model's training crops: where the hand sits in
the square and how much of the square it fills. That geometry is read off the
training split itself (`learn`): for each training crop, the box of its labelled
joints, in crop pixels, gives the square's side over the box's longer side and the
box's centre as a share of the side; the rule takes their medians. Biased crops (the
competition's) keep the hand towards the top-left, centred crops in the middle, COCO
files' padded boxes a little smaller than the square: each rule comes out of its
own data, not out of a guess.
"""

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .keypoints import CROP_SIZE, labelled_joints


@dataclass(frozen=True)
class CropRule:
    side: float  # the square's side over the longer side of the joints' box
    centre: tuple  # the joints' box centre in the square, shares of its side (x, y)

    def square(self, keypoints) -> tuple:
        """The square (x0, y0, side) for joints float [21, 2] (continuous pixels;
        NaN joints left out)."""
        points = np.asarray(keypoints, np.float64)
        points = points[labelled_joints(points)]
        if not len(points):
            raise ValueError("no joint to place a square on")
        lo, hi = points.min(0), points.max(0)
        return self.square_of_box((*lo, *(hi - lo)))

    def square_of_box(self, bbox) -> tuple:
        """The square (x0, y0, side) for a hand box (x, y, w, h) taken as its
        joints' box (a user's or a detector's box of the hand)."""
        x, y, w, h = (float(v) for v in bbox)
        side = self.side * max(w, h, 1.0)
        cx, cy = x + w / 2, y + h / 2
        return cx - self.centre[0] * side, cy - self.centre[1] * side, side

    def to_dict(self) -> dict:
        return {"side": float(self.side), "centre": [float(c) for c in self.centre]}

    @classmethod
    def from_dict(cls, value) -> "CropRule":
        try:
            return cls(float(value["side"]), tuple(float(c) for c in value["centre"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"not a crop rule: {value!r}") from None


def learn(keypoints) -> CropRule:
    """The rule of training crops whose labels are keypoints float [N, 21, 2]
    (crop pixels; NaN: unlabelled): medians over the crops with at least two
    labelled joints."""
    sides, centres = [], []
    for points in np.asarray(keypoints, np.float64):
        points = points[labelled_joints(points)]
        if len(points) < 2:
            continue
        lo, hi = points.min(0), points.max(0)
        extent = (hi - lo).max()
        if extent > 0:
            sides.append(CROP_SIZE / extent)
            centres.append((lo + hi) / 2 / CROP_SIZE)
    if not sides:
        raise UserError(
            "no training crop with two labelled joints to learn a crop from"
        )
    centre = np.median(np.array(centres), axis=0)
    return CropRule(float(np.median(sides)), (float(centre[0]), float(centre[1])))
