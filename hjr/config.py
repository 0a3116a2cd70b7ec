"""Training configuration: defaults, named presets, and resolving flags onto them.

The resolved configuration is saved as config.json in every run folder: enough to
rebuild the exact model (hjr.model.build_model) and to resume the run.
"""

import json
from pathlib import Path

from data_pipeline.augment import PAPER_CONF
from data_pipeline.errors import UserError
from data_pipeline.files import atomic_path

from . import model

default_conf = {
    **model.default_conf,
    "data": "synthetic",  # --data SOURCE (data_pipeline.sources)
    "crop": "biased",  # crop of the train and validation splits
    "steps": 120_000,  # training steps (batches)
    "batch_size": 32,  # global batch, split over the replicas
    "optimizer": "rmsprop",  # rmsprop (paper) or adam
    "lr": 1e-4,  # learning rate
    "seed": 0,  # weights init, data order and augmentation draws
    "eval_every": 2000,  # steps between validations (and checkpoints)
    "augment": dict(PAPER_CONF),  # data_pipeline.augment conf; None: off
    "strategy": "auto",  # auto, one-device, mirrored, multi-worker, tpu
    "precision": "float32",  # float32, mixed_float16, mixed_bfloat16
    "jit": "auto",  # XLA: auto (on for GPU/TPU, off on CPU), on, off
}

PRESETS = {
    # The paper: ResNet-152 (v2) cut at conv4, ImageNet weights, batch 32,
    # RMSProp 1e-4, 120k steps, train-time augmentation.
    "paper": {},
    # Learns the synthetic hands in a few minutes on 2 CPU cores.
    "quick": {
        "backbone": "tiny",
        "weights": "none",
        "optimizer": "adam",
        "lr": 2e-3,
        "steps": 2400,
        "eval_every": 400,
    },
}


def resolve(preset: str = "paper", overrides: dict = None) -> dict:
    """default_conf < PRESETS[preset] < overrides (None values are ignored)."""
    if preset not in PRESETS:
        raise UserError(f"--preset {preset}: expected one of {', '.join(PRESETS)}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - set(default_conf)
    if unknown:
        raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
    return {**default_conf, **PRESETS[preset], **given, "preset": preset}


def save_config(conf: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / "config.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(conf, indent=2) + "\n")
    return path


def load_config(run_dir: Path) -> dict:
    """The config.json of a run folder; UserError if it is not one."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    if not path.exists():
        raise UserError(f"{run_dir}: not a run folder (no config.json)")
    try:
        conf = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable configuration ({error})") from None
    if not isinstance(conf, dict) or "head" not in conf:
        raise UserError(f"{path}: not an hjr run configuration (no 'head')")
    return {**default_conf, **conf}
