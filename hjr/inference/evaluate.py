"""Scores of keypoint predictions against labels, in 128-px crop pixels, and the
report `hjr evaluate --json` and `hjr demo` write.

- kaggle_mse: squared x and y errors of a joint summed, averaged over joints and
  images (the authors' definition); mse_per_coordinate: the mean over the 42 values.
- epe: mean end-point error (Euclidean joint distance), px.
- pck@0.2: share of joints within 0.2 x the hand box size of their label, the box
  size being the longer side of the labelled keypoints' bounding box (the PCK
  normalisation of the common hand benchmarks).
- auc: area under the PCK curve over absolute thresholds 0..30 px, normalised to
  0..1 (as the RHD/STB 2D benchmarks report it, there over 0..30 px too).
- per_joint_epe: EPE per joint, RHD joint order.
- with the joints' visibility (data_pipeline.examples): share_hidden (the
  share of hidden joints), epe and kaggle_mse over the visible and over the hidden
  joints alone (epe_visible, ..., kaggle_mse_hidden) and per_joint_epe_visible /
  _hidden; None where there is no such joint.
Every metric is over the labelled joints alone: unlabelled ones (NaN labels,
data_pipeline.keypoints) are left out, the hand box is that of the labelled joints,
a joint that no sample labels has a per-joint EPE of None, and the result then
holds `labelled_joints`, the number of labelled joints (absent where every joint is
labelled).

Under a move (`hjr evaluate --shift/--scale`, data_pipeline.boxes) the figures are in
pixels of the crop as it should have been cut, as the robustness table's are: a
moved crop's predictions and labels are taken back there (data_pipeline.boxes.unmove),
so its distances are multiplied by its box's scale factor f (kaggle_mse by f^2; the
PCK@0.2 of the hand's own size does not change; AUC's thresholds are those pixels).
The result says which in `unit`, and gives the move in `box`.
"""

from pathlib import Path

import numpy as np

from data_pipeline import boxes
from data_pipeline.files import write_json, write_png
from data_pipeline.keypoints import JOINT_NAMES, labelled_joints
from hjr.draw import draw_keypoints, figure_image, new_figure, titled_grid

AUC_MAX_PX = 30.0
PCK_FRACTION = 0.2
WORST_COUNT = 16  # samples in <stem>.worst.png
WORST_COLUMNS = 4
WORST_SCALE = 2  # crop enlargement in <stem>.worst.png
UNIT = "px of the 128-px crop"
MOVED_UNIT = (
    "px of the 128-px crop as it should have been cut (a moved crop's errors "
    "times its box's scale factor)"
)


def pck_curve(distances, max_px=AUC_MAX_PX, points=61):
    """(thresholds [points], share of joints within each threshold [points]; NaN
    where distances is empty)."""
    thresholds = np.linspace(0.0, max_px, points)
    if not np.size(distances):
        return thresholds, np.full(points, np.nan)
    return thresholds, (distances.reshape(-1)[None] <= thresholds[:, None]).mean(1)


def _distances(predictions, labels):
    """Squared and plain joint distances [N, 21] in float64 (NaN where a joint is
    unlabelled)."""
    predictions = np.asarray(predictions, np.float64)
    labels = np.asarray(labels, np.float64)
    squared = ((predictions - labels) ** 2).sum(-1)
    return squared, np.sqrt(squared)


def _mean(values):
    """The mean of values as a float, None where there are none."""
    return float(values.mean()) if values.size else None


def _per_joint_epe(distances, labelled):
    """{joint name: mean distance over the samples labelling it (rounded to 4
    places), None where none does}."""
    counts = labelled.sum(0)
    sums = np.where(labelled, distances, 0.0).sum(0)
    means = (sums / np.maximum(counts, 1)).round(4)
    return {
        joint: float(mean) if count else None
        for joint, mean, count in zip(JOINT_NAMES, means.tolist(), counts)
    }


def _hand_boxes(labels, labelled):
    """[N]: the longer side of each sample's labelled keypoints' bounding box."""
    inside = labelled[..., None]
    high = np.where(inside, labels, -np.inf).max(1)
    low = np.where(inside, labels, np.inf).min(1)
    return (high - low).max(-1)


def _image_errors(predictions, labels):
    """[N]: each sample's mean joint error over its labelled joints, NaN where it
    has none."""
    distances = _distances(predictions, labels)[1]
    labelled = labelled_joints(labels)
    counts = labelled.sum(1)
    sums = np.where(labelled, distances, 0.0).sum(1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def scores(predictions, labels, visible=None) -> dict:
    """All metrics of predictions vs labels, both float [N, 21, 2], over the
    labelled joints; with visible (bool [N, 21]) also those of the visible and the
    hidden joints apart."""
    squared, distances = _distances(predictions, labels)
    labels = np.asarray(labels, np.float64)
    labelled = labelled_joints(labels)
    box = _hand_boxes(labels, labelled)  # [N]
    thresholds, curve = pck_curve(distances[labelled])
    auc = np.trapezoid(curve, thresholds) / AUC_MAX_PX
    auc = float(auc) if labelled.any() else None
    kaggle_mse = _mean(squared[labelled])
    within = distances <= PCK_FRACTION * box[:, None]
    result = {
        "count": int(len(labels)),
        "kaggle_mse": kaggle_mse,
        "mse_per_coordinate": None if kaggle_mse is None else kaggle_mse / 2,
        "epe": _mean(distances[labelled]),
        "pck@0.2": _mean(within[labelled]),
        f"auc_0_{AUC_MAX_PX:g}px": auc,
        "per_joint_epe": _per_joint_epe(distances, labelled),
    }
    if not labelled.all():
        result["labelled_joints"] = int(labelled.sum())
    if visible is not None:
        result.update(_visibility_scores(squared, distances, visible, labelled))
    return result


def _visibility_scores(squared, distances, visible, labelled=None) -> dict:
    """The metrics of scores() over the visible and the hidden joints apart
    (labelled joints alone where `labelled`, bool [N, 21], is given)."""
    visible = np.asarray(visible, bool)
    if labelled is None:
        labelled = np.ones_like(visible)
    masks = {"visible": visible & labelled, "hidden": ~visible & labelled}
    result = {"share_hidden": _mean(masks["hidden"][labelled])}
    for name, values in (("epe", distances), ("kaggle_mse", squared)):
        for kind, mask in masks.items():
            result[f"{name}_{kind}"] = (
                float(values[mask].mean()) if mask.any() else None
            )
    for kind, mask in masks.items():
        counts, sums = mask.sum(0), np.where(mask, distances, 0.0).sum(0)
        result[f"per_joint_epe_{kind}"] = {
            joint: round(float(s / c), 4) if c else None
            for joint, s, c in zip(JOINT_NAMES, sums, counts)
        }
    return result


def table(result: dict) -> str:
    """A plain-text table of the headline numbers, and their unit where the
    result gives it."""
    keys = [k for k, v in result.items() if isinstance(v, float)]
    width = max(len(k) for k in keys)
    lines = [f"{k:<{width}}  {result[k]:10.4f}" for k in keys]
    if "unit" in result:
        lines.append(f"errors in {result['unit']}")
    return "\n".join(lines)


def in_cut_pixels(points, moves=None) -> np.ndarray:
    """points float [N, 21, 2] of crops in pixels of the crops as they should have
    been cut: those of moved crops (moves [N, 3], data_pipeline.boxes) taken back,
    others as they are."""
    return np.asarray(points) if moves is None else boxes.unmove(points, moves)


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


def plot_joints(path, result: dict):
    """PNG of the mean error per joint (a result of scores()): one bar per joint,
    or visible and hidden bars side by side where the result has them."""
    x = np.arange(len(JOINT_NAMES))
    fig, ax = new_figure(figsize=(11, 4.2), dpi=100)
    if "per_joint_epe_visible" in result:
        share = result["share_hidden"]
        bars = {
            f"visible joints ({1 - share:.0%})": result["per_joint_epe_visible"],
            f"hidden joints ({share:.0%})": result["per_joint_epe_hidden"],
        }
    else:
        bars = {"all joints (no visibility in this source)": result["per_joint_epe"]}
    width = 0.8 / len(bars)
    for n, (label, values) in enumerate(bars.items()):
        heights = [np.nan if values[j] is None else values[j] for j in JOINT_NAMES]
        offset = (n - (len(bars) - 1) / 2) * width
        drawn = ax.bar(x + offset, heights, width, label=label)
        colour = drawn.patches[0].get_facecolor()
        for j in np.flatnonzero(np.isnan(heights)):  # no such joint: not a 0 px bar
            ax.text(
                x[j] + offset,
                0,
                " none",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=8,
                color=colour,
            )
    for boundary in np.arange(0.5, len(JOINT_NAMES) - 1, 4):  # wrist | thumb | ...
        ax.axvline(boundary, color="grey", linewidth=0.6, alpha=0.5)
    ax.set_xticks(x, JOINT_NAMES, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.6, len(JOINT_NAMES) - 0.4)
    ax.set_ylabel("mean joint error (px of the 128-px crop)")
    joints = "labelled joints" if "labelled_joints" in result else "all joints"
    epe = "none" if result["epe"] is None else f"{result['epe']:.1f} px"
    count = result["count"]
    ax.set_title(f"Error per joint, {count} images (mean over {joints}: {epe})")
    ax.set_ylim(0, 1.2 * max(ax.get_ylim()[1], 1.0))  # room for the legend
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=len(bars))
    return write_png(path, figure_image(fig))


def worst_rows(predictions, labels, count=WORST_COUNT) -> np.ndarray:
    """Rows of the `count` samples with the largest mean joint error (over their
    labelled joints; samples without any come last), worst first."""
    errors = _image_errors(predictions, labels)
    return np.argsort(-errors, kind="stable")[:count]


def plot_worst(path, ids, images, predictions, labels, visible=None, factors=None):
    """PNG of samples (ids [K], crops uint8 [K, S, S, 3]) with their predictions
    drawn over them (rings: labels; crosses: the labels of hidden joints where
    `visible` is given; unlabelled joints have neither), each titled with its id,
    mean joint error over its labelled joints (times `factors` [K] where given:
    moved crops' scale factors), number of hidden joints and, where some are, of
    unlabelled joints."""
    errors = _image_errors(predictions, labels)
    if factors is not None:
        errors = errors * np.asarray(factors)
    unlabelled = ~labelled_joints(labels)
    hidden = None if visible is None else ~np.asarray(visible, bool) & ~unlabelled
    tiles, titles = [], []
    for n, index in enumerate(ids):
        tiles.append(
            draw_keypoints(
                images[n],
                predictions[n],
                WORST_SCALE,
                truth=labels[n],
                hidden=None if hidden is None else hidden[n],
            )
        )
        title = f"{int(index):05d}: {errors[n]:.1f} px"
        if hidden is not None:
            title += f", {int(hidden[n].sum())} hidden"
        if unlabelled[n].any():
            title += f", {int(unlabelled[n].sum())} unlabelled"
        titles.append(title)
    header = "dots and bones: prediction; white rings: label"
    if hidden is not None:
        header += " (crosses: hidden joints)"
    header += "; title: id, mean joint error"
    sheet = titled_grid(tiles, titles, min(WORST_COLUMNS, len(tiles)), header)
    return write_png(path, sheet)


def write_report(
    path,
    result: dict,
    predictions,
    labels,
    ids=None,
    visible=None,
    images=None,
    moves=None,
) -> tuple:
    """Write result (of scores()) as JSON to path and, beside it, <stem>.pck.png
    (the PCK curve), <stem>.joints.png (plot_joints) and, with `ids` and `images`,
    <stem>.worst.png: the WORST_COUNT samples with the largest mean joint error
    (plot_worst).

    ids: int [N], the sample ids of the rows; visible: bool [N, 21] or None;
    images: a function of sample ids [K] giving their crops uint8 [K, S, S, 3] in
    that order (e.g. data_pipeline.loader.read_split); moves: float [N, 3] where
    the crops are moved (data_pipeline.boxes): predictions and labels are in
    their pixels, the curve and the errors in pixels of the crops as they should
    have been cut (in_cut_pixels), as `result` is. Returns the paths written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    written = [path]
    scored = in_cut_pixels(predictions, moves), in_cut_pixels(labels, moves)
    distances = _distances(*scored)[1][labelled_joints(labels)]
    written.append(
        plot_pck(path.with_suffix(".pck.png"), {"model": pck_curve(distances)})
    )
    written.append(plot_joints(path.with_suffix(".joints.png"), result))
    if ids is not None and images is not None and len(ids):
        rows = worst_rows(*scored)
        chosen = np.asarray(ids)[rows]
        written.append(
            plot_worst(
                path.with_suffix(".worst.png"),
                chosen,
                images(chosen),
                np.asarray(predictions)[rows],
                np.asarray(labels)[rows],
                None if visible is None else np.asarray(visible)[rows],
                None if moves is None else np.asarray(moves)[rows, 2],
            )
        )
    return tuple(written)


def evaluate_split(
    source,
    split="validation",
    model=None,
    predictions_csv=None,
    tta=True,
    batch_size=64,
    crop="biased",
    data_dir=None,
    json_path=None,
    box=None,
):
    """`hjr evaluate`: score a split's predictions, from `model` (a run folder or
    an export, hjr.inference.predictors) or from a CSV in the submission format,
    with the mean training keypoints' kaggle_mse beside them (the split's own mean
    where the source has no training split); with json_path, write the report
    there. With `box` (shift, scale, seed), on the split's crops cut from moved and
    scaled boxes (data_pipeline.boxes), the figures in pixels of the crops as they
    should have been cut (module docstring). Returns (the scores, the paths
    written)."""
    from data_pipeline.errors import UserError
    from data_pipeline.kaggle_csv import read_keypoints_csv
    from data_pipeline.store import open_split
    from hjr import runs
    from hjr.inference.predict import predict_split
    from hjr.inference.predictors import Predictor, load_predictor

    prepared = open_split(source, split, crop, data_dir, box=box)
    if not prepared.labelled:
        raise UserError(f"{source} has no labels for it", "split", split)
    if model is not None:
        predictor = model if isinstance(model, Predictor) else load_predictor(model)
        ids, predictions, _ = predict_split(predictor, prepared, tta, batch_size)
        given = ("model", model)
    else:
        ids, predictions = read_keypoints_csv(predictions_csv)
        given = ("predictions", predictions_csv)
    if sorted(ids.tolist()) != sorted(prepared.id.tolist()):
        raise UserError(
            f"{len(ids)} rows with Ids that are not the {len(prepared)} Ids of the "
            f"{split} split",
            *given,
        )
    rows = prepared.positions(ids)
    truth = prepared.rows(rows, ("keypoints", "visible"))
    labels = truth["keypoints"]
    visible = truth["visible"] if prepared.has_visibility else None
    moves = None
    if box is not None:
        moves = boxes.evaluation_draws(ids, *box)
    scored = in_cut_pixels(predictions, moves), in_cut_pixels(labels, moves)
    result = scores(*scored, visible)
    if prepared.kind == "coco":  # and in the original image's pixels
        from hjr.inference.mmpose_metrics import mmpose_scores

        sides, sizes = prepared.fields["box"][rows, 2], prepared.fields["bbox_size"]
        if moves is not None:  # the boxes' sides as they should have been cut
            sides = sides / moves[:, 2]
        result.update(mmpose_scores(*scored, sides, sizes[rows]))
    try:
        mean = runs.mean_keypoints(open_split(source, "train", crop, data_dir))
    except UserError:
        mean = runs.mean_keypoints(labels)
    mean = in_cut_pixels(np.broadcast_to(mean, labels.shape), moves)
    result["mean_predictor_kaggle_mse"] = runs.mean_predictor_mse(scored[1], mean)
    result["unit"] = UNIT if moves is None else MOVED_UNIT
    if source.options.get("boxes"):  # a detector's boxes: the hands they missed
        from data_pipeline.store import prepare

        found = prepare(source, crop, data_dir)["metadata"]
        result.update(hands=found["hands"], hands_missed=found["missed"])
        result["detections"] = found["detections"]
    if moves is not None:
        result["box"] = dict(zip(("shift", "scale", "seed"), box))
    if not json_path:
        return result, []

    def images(chosen):
        return prepared.rows(prepared.positions(chosen), ("image",))["image"]

    paths = write_report(
        json_path, result, predictions, labels, ids, visible, images, moves
    )
    return result, paths
