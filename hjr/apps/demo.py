"""`hjr demo`: the whole flow on the built-in synthetic hands, in minutes on a CPU.

Trains the quick preset (`hjr train --preset quick`), evaluates on the validation
split, predicts the test split with 4-rotation TTA (the submission and overlay
PNGs), exports a SavedModel and checks that it predicts what the run does.
Everything goes into one folder:

    run/              the training run (checkpoints, history.csv, logs/)
    curves.png        training curves
    metrics.json      validation metrics, with the mean predictor, and beside it
                      metrics.pck.png (PCK curve), metrics.joints.png (error per
                      joint, visible and hidden) and metrics.worst.png (the worst
                      predictions)
    submission.csv    test-split predictions in the Kaggle format (TTA)
    predictions/      PNGs of predicted joints (rings: labels) on test images
    saved_model/      the export (serving_default with TTA)

Running it again in the same folder continues or reuses the same training run.
"""

import shutil
import time
from pathlib import Path

import numpy as np

from data_pipeline.loader import eval_batch, read_split, read_visibility
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from hjr import runs
from hjr.apps.folders import DEMO_HEAD, DEMO_PRESET, demo_config
from hjr.inference import evaluate
from hjr.inference.predict import predict
from hjr.inference.predictors import SavedModelPredictor, load_predictor
from hjr.quiet import has_tensorflow
from hjr.training.train import train

NUM_PICTURES = 16


def demo(
    out="demo",
    data="synthetic",
    head=DEMO_HEAD,
    steps=None,
    crop="biased",
    data_dir=None,
) -> dict:
    """Run the demo into folder `out` on --data `data` (synthetic by default);
    returns the validation metrics. A run already in `out` is resumed as it
    began, its length included unless `steps` is given (the resume rules of
    hjr.config: only its length may change)."""
    started = time.monotonic()
    out = Path(out)
    run_dir = out / "run"
    source = parse_source(data)
    conf, resume = demo_config(out, data, head, steps, crop)
    print(f"hjr demo: {DEMO_PRESET} preset, {head} head on {conf['backbone']} -> {out}")
    train(conf, run_dir, resume, data_dir=data_dir)
    if (run_dir / "curves.png").exists():
        shutil.copyfile(run_dir / "curves.png", out / "curves.png")

    print("hjr demo: evaluating on the validation split (with TTA)")
    network = load_predictor(run_dir)  # the best checkpoint, loaded once
    ids, predictions, labels = predict(
        network, source, "validation", tta=True, crop=crop, data_dir=data_dir
    )
    where = dict(crop=crop, data_dir=data_dir)
    visible = read_visibility(source, "validation", ids, **where)
    metrics = evaluate.scores(predictions, labels, visible)
    metrics["mean_predictor_kaggle_mse"] = runs.read_baseline(run_dir)

    def images(chosen):
        return read_split(source, "validation", ("image",), chosen, **where)["image"]

    evaluate.write_report(
        out / "metrics.json", metrics, predictions, labels, ids, visible, images
    )

    print("hjr demo: predicting the test split (with TTA)")
    ids, test_predictions, _ = predict(
        network,
        source,
        "test",
        tta=True,
        out=out / "submission.csv",
        visualize=out / "predictions",
        crop=crop,
        data_dir=data_dir,
        num_visualize=NUM_PICTURES,
    )

    difference = None
    if has_tensorflow():  # SavedModels are TensorFlow's
        from hjr.inference.export import export

        print("hjr demo: exporting the SavedModel")
        export(run_dir, out / "saved_model", tta=True, overwrite=True)
        difference = _check_export(
            out / "saved_model", source, data_dir, ids, test_predictions
        )
    else:
        print("hjr demo: no TensorFlow here, so no SavedModel (hjr export needs it)")
    minutes = (time.monotonic() - started) / 60
    print(_summary(out, metrics, len(ids), difference, minutes))
    return metrics


def _check_export(saved_model, source, data_dir, ids, predictions) -> float:
    """Largest difference (px) between the SavedModel and the run on test images."""
    batch = eval_batch(open_split(source, "test", data_dir=data_dir), 0, 32)
    exported = SavedModelPredictor(saved_model).keypoints(batch["image"], tta=True)
    rows = np.searchsorted(ids, batch["id"])
    return float(np.abs(exported - predictions[rows]).max())


def _summary(out, metrics, count, difference, minutes) -> str:
    auc = next(k for k in metrics if k.startswith("auc_"))
    lines = [
        f"hjr demo: done in {minutes:.1f} min. Validation (TTA): kaggle_mse "
        f"{metrics['kaggle_mse']:.1f} (always predicting the mean keypoints: "
        f"{metrics['mean_predictor_kaggle_mse']:.1f}), mean joint distance "
        f"{metrics['epe']:.1f} px, PCK@0.2 {metrics['pck@0.2']:.3f}, "
        f"{auc} {metrics[auc]:.3f}{_visibility_line(metrics)}",
        f"  {out / 'metrics.json'}  metrics (PCK curve: {out / 'metrics.pck.png'}, "
        f"error per joint: {out / 'metrics.joints.png'}, worst predictions: "
        f"{out / 'metrics.worst.png'})",
        f"  {out / 'submission.csv'}  {count} test predictions, Kaggle format",
        f"  {out / 'predictions'}/  predicted joints on test images",
        f"  {out / 'curves.png'}  training curves"
        + (
            f" (TensorBoard: {logs})" if (logs := out / "run" / "logs").exists() else ""
        ),
    ]
    if difference is not None:
        lines.append(
            f"  {out / 'saved_model'}/  SavedModel (same keypoints as the run to "
            f"{difference:.1e} px); try: saved_model_cli show --dir "
            f"{out / 'saved_model'} --all"
        )
    return "\n".join(lines)


def _visibility_line(metrics) -> str:
    """The mean joint distance of visible and hidden joints, where known."""
    if metrics.get("epe_hidden") is None:
        return ""
    return (
        f"; visible joints {metrics['epe_visible']:.1f} px, hidden "
        f"({metrics['share_hidden']:.0%}) {metrics['epe_hidden']:.1f} px"
    )
