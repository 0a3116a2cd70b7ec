"""Scores of keypoint predictions against labels, in 128-px crop pixels.

- kaggle_mse: squared x and y errors of a joint summed, averaged over joints and
  images (the authors' definition); mse_per_coordinate: the mean over the 42 values.
- epe: mean end-point error (Euclidean joint distance), px.
- pck@0.2: share of joints within 0.2 x the hand box size of their label, the box
  size being the longer side of the labelled keypoints' bounding box (the PCK
  normalisation of the common hand benchmarks).
- auc: area under the PCK curve over absolute thresholds 0..30 px, normalised to
  0..1 (as the RHD/STB 2D benchmarks report it, there over 0..30 px too).
- per_joint_epe: EPE per joint, RHD joint order.
"""

import json
from pathlib import Path

import numpy as np

from data_pipeline.files import atomic_path, write_png
from data_pipeline.keypoints import JOINT_NAMES

from .draw import figure_image, new_figure

AUC_MAX_PX = 30.0
PCK_FRACTION = 0.2


def pck_curve(distances, max_px=AUC_MAX_PX, points=61):
    """(thresholds [points], share of joints within each threshold [points])."""
    thresholds = np.linspace(0.0, max_px, points)
    return thresholds, (distances.reshape(-1)[None] <= thresholds[:, None]).mean(1)


def scores(predictions, labels) -> dict:
    """All metrics of predictions vs labels, both float [N, 21, 2]."""
    predictions = np.asarray(predictions, np.float64)
    labels = np.asarray(labels, np.float64)
    squared = ((predictions - labels) ** 2).sum(-1)  # [N, 21]
    distances = np.sqrt(squared)
    box = (labels.max(1) - labels.min(1)).max(-1)  # [N]
    thresholds, curve = pck_curve(distances)
    auc = float(np.trapezoid(curve, thresholds) / AUC_MAX_PX)
    return {
        "count": int(len(labels)),
        "kaggle_mse": float(squared.mean()),
        "mse_per_coordinate": float(squared.mean() / 2),
        "epe": float(distances.mean()),
        "pck@0.2": float((distances <= PCK_FRACTION * box[:, None]).mean()),
        f"auc_0_{AUC_MAX_PX:g}px": auc,
        "per_joint_epe": dict(zip(JOINT_NAMES, distances.mean(0).round(4).tolist())),
    }


def table(result: dict) -> str:
    """A plain-text table of the headline numbers."""
    keys = [k for k, v in result.items() if isinstance(v, float)]
    width = max(len(k) for k in keys)
    return "\n".join(f"{k:<{width}}  {result[k]:10.4f}" for k in keys)


def write_json(path, result: dict):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")


def plot_pck(path, curves: dict):
    """PNG of PCK curves {label: (thresholds, values)}."""
    fig, ax = new_figure(figsize=(5, 4), dpi=100)
    for label, (thresholds, values) in curves.items():
        ax.plot(thresholds, values, label=label)
    ax.set_xlabel("threshold (px of the 128-px crop)")
    ax.set_ylabel("share of joints within threshold (PCK)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    return write_png(path, figure_image(fig))


def write_report(path, result: dict, predictions, labels) -> tuple:
    """Write result as JSON to path and the PCK curve beside it (<stem>.pck.png).
    Returns the two paths."""
    path = Path(path)
    write_json(path, result)
    distances = np.sqrt(((np.asarray(predictions) - np.asarray(labels)) ** 2).sum(-1))
    png = path.with_suffix(".pck.png")
    plot_pck(png, {"model": pck_curve(distances)})
    return path, png
