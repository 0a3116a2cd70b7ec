"""mmpose's hand metrics, in the original image's pixels: what `hjr evaluate` adds
for a coco source, to set beside mmpose's model-zoo tables.

- mmpose_pck@0.2: a joint is correct when its error is below 0.2 x max(w, h) of
  its hand's box; the share of correct joints per joint, averaged over the joints
  (mmpose's PCKAccuracy, norm_item "bbox").
- mmpose_auc: the same mean over joints of the share below t x 30 px, averaged
  over t = 0, 0.05, ..., 0.95 (mmpose's AUC, norm_factor 30, 20 thresholds).
- mmpose_epe: the mean error of all labelled joints, image pixels (mmpose's EPE).
Only labelled joints count (mmpose's mask: v > 0). The errors come from hjr's crop
pixels: a crop of side s (image pixels) maps to the image by a scale of s / 128 and
a shift (data_pipeline.coco.from_crop), so an error of d crop pixels is d x s / 128
image pixels.
"""

import numpy as np

from data_pipeline.keypoints import CROP_SIZE

PCK_THRESHOLD = 0.2
AUC_NORM_PX = 30.0
AUC_THRESHOLDS = 20


def image_errors(predictions, labels, sides) -> np.ndarray:
    """float64 [N, 21]: joint errors in image pixels, NaN where not labelled.
    predictions, labels: float [N, 21, 2] crop pixels; sides: [N] the crops' sides
    in image pixels."""
    diff = np.asarray(predictions, np.float64) - np.asarray(labels, np.float64)
    scale = np.asarray(sides, np.float64)[:, None] / CROP_SIZE
    return np.sqrt((diff * diff).sum(-1)) * scale


def _pck(normalised: np.ndarray, threshold: float) -> float:
    """Mean over joints (with any labelled sample) of the share of their labelled
    samples whose normalised error is below threshold."""
    labelled = np.isfinite(normalised)
    counts = labelled.sum(0)
    hits = np.where(labelled, normalised < threshold, False).sum(0)
    joints = counts > 0
    return float((hits[joints] / counts[joints]).mean()) if joints.any() else 0.0


def mmpose_scores(predictions, labels, sides, bbox_sizes) -> dict:
    """{"mmpose_pck@0.2", "mmpose_auc", "mmpose_epe"} (module docstring).
    bbox_sizes: [N] max(w, h) of each hand's box, image pixels."""
    errors = image_errors(predictions, labels, sides)
    sizes = np.asarray(bbox_sizes, np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        by_box = np.where(sizes > 0, errors / sizes, np.nan)
    thresholds = np.arange(AUC_THRESHOLDS) / AUC_THRESHOLDS
    auc = np.mean([_pck(errors / AUC_NORM_PX, t) for t in thresholds])
    labelled = errors[np.isfinite(errors)]
    return {
        f"mmpose_pck@{PCK_THRESHOLD:g}": _pck(by_box, PCK_THRESHOLD),
        "mmpose_auc": float(auc),
        "mmpose_epe": float(labelled.mean()) if labelled.size else None,
    }
