"""The run folder: what `hjr train` writes and every other command reads.

    config.json        the resolved configuration (hjr.config): rebuilds the model
    checkpoints/       latest/ and best/ (hjr.checkpoints), best by val kaggle_mse
    best.json          the best validation metrics and their step
    baseline.json      val kaggle_mse of always predicting the mean training keypoints
    environment.json   the Keras backend, its version and the devices that trained it
    history.csv, curves.png, logs/   written by hjr.training.callbacks

A run folder belongs to one run: a new run is not started where one is (refused,
unless it is to be overwritten: then nothing of the old run stays), and a resumed
run continues its own. This module is the one place that knows these names:
starting or resuming a run's configuration, loading its network, its best and
baseline figures. Importing it starts no Keras backend (the CLI checks a run's
flags and folder before).
"""

import json
from pathlib import Path

import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.files import write_json
from data_pipeline.keypoints import CROP_SIZE, labelled_joints
from hjr.config import complete, configure, resumed
from hjr.core.heads import HEADS

CONFIG = "config.json"
BEST = "best.json"
BASELINE = "baseline.json"
ENVIRONMENT = "environment.json"
CHECKPOINTS = "checkpoints"
HISTORY = "history.csv"
CURVES = "curves.png"
LOGS = "logs"
RUN_FILES = (CONFIG, BEST, BASELINE, ENVIRONMENT, CHECKPOINTS, HISTORY, CURVES, LOGS)


def is_run(run_dir) -> bool:
    """Whether run_dir holds a run (its configuration)."""
    return (Path(run_dir) / CONFIG).is_file()


def holds_run(run_dir) -> bool:
    """Whether run_dir holds a run or what is left of one (its configuration or
    checkpoints)."""
    return is_run(run_dir) or (Path(run_dir) / CHECKPOINTS).exists()


def check_new(run_dir, overwrite: bool = False) -> None:
    """UserError where a new run would go into a folder that holds a run, unless
    it is to be overwritten (`clear`)."""
    if holds_run(run_dir) and not overwrite:
        raise UserError(
            f"{run_dir} holds a run already: continue it with --resume {run_dir}, "
            "or start over there with --overwrite (the old run is deleted)"
        )


def clear(run_dir) -> None:
    """Delete the run in run_dir (RUN_FILES), leaving other files alone."""
    import shutil

    for name in RUN_FILES:
        path = Path(run_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def save_config(conf: dict, run_dir) -> Path:
    return write_json(Path(run_dir) / CONFIG, conf)


def load_config(run_dir) -> dict:
    """The configuration of a run folder; UserError if it is not one."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    if not path.exists():
        raise UserError(f"{run_dir}: not a run folder (no {CONFIG})")
    try:
        conf = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable configuration ({error})") from None
    if not isinstance(conf, dict) or conf.get("head") not in HEADS:
        raise UserError(f"{path}: not an hjr run configuration (no known 'head')")
    return complete(conf)


def run_config(run_dir, preset=None, overrides=None, resume=False) -> dict:
    """The configuration of a new run (hjr.config.configure), or with `resume`
    that of the run in run_dir with the overrides it may take (hjr.config.resumed)."""
    if resume:
        return resumed(load_config(run_dir), preset, overrides, run_dir)
    return configure(preset, overrides)


def checkpoint(run_dir, which: str = "latest"):
    """The newest complete checkpoint (`latest` or `best`) of a run, or None."""
    from hjr import checkpoints

    return checkpoints.latest(Path(run_dir) / CHECKPOINTS / which)


def save_checkpoint(run_dir, which, step, net, optimizer=None):
    from hjr import checkpoints

    keep = 2 if which == "latest" else 1
    folder = Path(run_dir) / CHECKPOINTS / which
    return checkpoints.save(folder, step, net, optimizer, keep=keep)


def load_network(run_dir, which: str = "best"):
    """The trained network of a run folder (its best or latest checkpoint)."""
    from hjr import checkpoints
    from hjr.core.model import build_model

    conf = load_config(run_dir)
    path = checkpoint(run_dir, which)
    if path is None:
        folder = Path(run_dir) / CHECKPOINTS / which
        raise UserError(f"{run_dir}: no {which} checkpoint in {folder}")
    net = build_model(dict(conf, weights="none"))
    checkpoints.restore(path, net)
    return net


def best_value(run_dir) -> float:
    """The best validation kaggle_mse so far, inf before the first validation."""
    best = read_best(run_dir)
    return best["val_kaggle_mse"] if best else np.inf


def read_best(run_dir):
    """best.json's record (step and validation metrics), or None before it."""
    path = Path(run_dir) / BEST
    return json.loads(path.read_text()) if path.exists() else None


def save_best(run_dir, step: int, logs: dict) -> Path:
    return write_json(Path(run_dir) / BEST, {"step": step, **logs})


def mean_keypoints(train) -> np.ndarray:
    """The mean keypoints float32 [21, 2] of a prepared training split (or of
    keypoints float [N, 21, 2]): each joint's mean over the samples that label it,
    the crop centre (CROP_SIZE / 2) for a joint that none labels."""
    keypoints = np.array(getattr(train, "keypoints", train), np.float64)  # a copy
    labelled = labelled_joints(keypoints)  # [N, 21]
    keypoints[~labelled] = 0.0
    sums = keypoints.sum(axis=0)
    counts = labelled.sum(axis=0)[:, None]
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), CROP_SIZE / 2.0)
    return mean.astype(np.float32)


def mean_predictor_mse(labels, mean) -> float:
    """kaggle_mse of predicting `mean` [21, 2] for every sample of labels [N, 21, 2],
    over the labelled joints (NaN if there is none)."""
    labels = np.asarray(labels, np.float64)
    errors = np.square(labels - mean).sum(axis=-1)
    errors = errors[labelled_joints(labels)]
    return float(errors.mean()) if errors.size else float("nan")


def save_baseline(run_dir, value: float) -> Path:
    """baseline.json: the validation kaggle_mse of the mean predictor."""
    record = {
        "mean_predictor_kaggle_mse": value,
        "mean_predictor_mse_per_coordinate": value / 2,
    }
    return write_json(Path(run_dir) / BASELINE, record)


def read_baseline(run_dir):
    """The run's mean-predictor val kaggle_mse, or None before it is written."""
    path = Path(run_dir) / BASELINE
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean_predictor_kaggle_mse"]


def save_environment(run_dir, backend: str, version: str, devices) -> Path:
    record = {"backend": backend, "keras": version, "devices": list(map(str, devices))}
    return write_json(Path(run_dir) / ENVIRONMENT, record)
