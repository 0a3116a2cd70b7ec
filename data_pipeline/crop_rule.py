"""From a hand's joints (or box) to the square a model was trained to see.

Tracking cuts each frame's crop about the joints found in the frame before, and the
crop must have the geometry of the model's training crops: where the hand sits in
the square and how much of it the hand fills. That geometry is read off the training
data itself (`learn`), never guessed: biased crops (the competition's) keep the hand
towards the top-left, centred crops in the middle, COCO files' padded boxes a little
smaller than the square, and each rule comes out of its own crops.

Two parts, each the median over the crops:
- from joints: the square's side over the joints' spread (the root mean square of
  their distances from their mean, which no single joint sways much), and the
  square's centre from the joints' mean, in spreads. Learned from a model's own
  predictions on crops of the training data's geometry, it also takes in the
  model's habits (a soft-argmax pulls unsure joints inwards, so its joints spread
  less than the labels): the joints it finds in a crop give that crop back;
- from a hand's box (a user's or a detector's, taken as the joints' box): the
  square's side over the box's longer side and the box's centre in the square,
  learned from the labels.
"""

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .keypoints import CROP_SIZE, labelled_joints


@dataclass(frozen=True)
class CropRule:
    side: float  # the square's side over the joints' spread
    centre: tuple  # the square's centre minus the joints' mean, in spreads (x, y)
    box_side: float  # the square's side over the longer side of the joints' box
    box_centre: tuple  # the joints' box centre in the square, shares of its side

    def square(self, keypoints) -> tuple:
        """The square (x0, y0, side) for joints float [21, 2] (continuous pixels;
        NaN joints left out)."""
        mean, spread = _spread(np.asarray(keypoints, np.float64))
        if not spread > 0:
            raise ValueError("no joints to place a square on")
        side = self.side * spread
        cx, cy = mean + np.asarray(self.centre) * spread
        return cx - side / 2, cy - side / 2, side

    def square_of_box(self, bbox) -> tuple:
        """The square (x0, y0, side) for a hand box (x, y, w, h) taken as its
        joints' box (a user's or a detector's box of the hand)."""
        x, y, w, h = (float(v) for v in bbox)
        side = self.box_side * max(w, h, 1.0)
        cx, cy = x + w / 2, y + h / 2
        return cx - self.box_centre[0] * side, cy - self.box_centre[1] * side, side

    def to_dict(self) -> dict:
        return {
            "side": float(self.side),
            "centre": [float(c) for c in self.centre],
            "box_side": float(self.box_side),
            "box_centre": [float(c) for c in self.box_centre],
        }

    @classmethod
    def from_dict(cls, value) -> "CropRule":
        try:
            return cls(
                float(value["side"]),
                tuple(float(c) for c in value["centre"]),
                float(value["box_side"]),
                tuple(float(c) for c in value["box_centre"]),
            )
        except (KeyError, TypeError, ValueError):
            raise UserError(f"not a crop rule: {value!r}") from None


def joints_box(points) -> tuple:
    """(x, y, w, h): the box of joints float [21, 2] (NaN joints left out), the hand
    box that CropRule.square_of_box takes."""
    points = np.asarray(points, np.float64)
    points = points[labelled_joints(points)]
    lo, hi = points.min(0), points.max(0)
    return (*lo, *(hi - lo))


def _spread(points):
    """(mean [2], root mean square distance from it) of the labelled joints."""
    points = points[labelled_joints(points)]
    if len(points) < 2:
        return np.zeros(2), 0.0
    mean = points.mean(0)
    return mean, float(np.sqrt(((points - mean) ** 2).sum(-1).mean()))


def learn(labels, found=None) -> CropRule:
    """The rule of training crops whose labels are keypoints float [N, 21, 2]
    (crop pixels; NaN: unlabelled): the box part from the labels, the joints'
    part from `found` (a model's predictions on the same crops) where given,
    else from the labels."""
    sides, centres, box_sides, box_centres = [], [], [], []
    for points in np.asarray(labels, np.float64):
        chosen = points[labelled_joints(points)]
        if len(chosen) < 2:
            continue
        lo, hi = chosen.min(0), chosen.max(0)
        if (hi - lo).max() > 0:
            box_sides.append(CROP_SIZE / (hi - lo).max())
            box_centres.append((lo + hi) / 2 / CROP_SIZE)
    for points in np.asarray(labels if found is None else found, np.float64):
        mean, spread = _spread(points)
        if spread > 0:
            sides.append(CROP_SIZE / spread)
            centres.append((CROP_SIZE / 2 - mean) / spread)
    if not sides or not box_sides:
        raise UserError(
            "no training crop with two labelled joints to learn a crop from"
        )
    centre = np.median(np.array(centres), axis=0)
    box_centre = np.median(np.array(box_centres), axis=0)
    return CropRule(
        float(np.median(sides)),
        (float(centre[0]), float(centre[1])),
        float(np.median(box_sides)),
        (float(box_centre[0]), float(box_centre[1])),
    )
