"""A run's configuration: defaults, named presets, the checks and the resume rules.

`configure(preset, overrides, resume=None)` is the one function that turns a
preset and the settings given (the CLI's flags, `hjr demo`, the Kaggle kernel, a
notebook) into the configuration of a run, or of the run being resumed. The
result is saved as config.json in the run folder: enough to rebuild the exact
model (hjr.core.model.build_model) and to resume the run. Machine-specific paths (where
prepared data lives) are arguments of hjr.training.train, never part of it.

Importing this module does not start TensorFlow: the CLI checks its flags here.
"""

import json
from pathlib import Path

from data_pipeline.crop import CROPS
from data_pipeline.errors import UserError
from data_pipeline.files import atomic_path

from hjr.core.backbones import BACKBONES
from hjr.core.heads import HEADS

OPTIMIZERS = ("rmsprop", "adam", "nadam")  # nadam: Adam with Nesterov momentum
WITH_BETA_2 = ("adam", "nadam")  # the optimizers that take beta_2
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")
JIT = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "cosine")
LAYOUTS = ("fast", "plain")
MAP_STRIDES = (1, 2, 4, 8)  # input pixels per map pixel (map heads)
# hjr export (hjr.inference.export): formats, LiteRT quantizations, int8 calibration crops.
EXPORT_FORMATS = ("savedmodel", "onnx", "tflite")
QUANTIZATIONS = ("float16", "int8")
CALIBRATION_CROPS = 300

default_conf = {
    # The network (hjr.core.model.build_model); each head adds its own settings
    # (HEADS[head].defaults: the classification disk radius, the score-map sigma2).
    "head": "fc",  # a key of hjr.core.heads.HEADS
    "backbone": "resnet152v2",  # a key of hjr.core.backbones.BACKBONES
    "weights": "imagenet",  # imagenet, none, or a path to a weights file
    "input_size": 128,  # side of the input crops
    "head_layout": "fast",  # map heads: fast (exact, ~100x cheaper) or plain
    # The data (data_pipeline.sources).
    "data": "synthetic",  # --data SOURCE
    "crop": "biased",  # crop of the train and validation splits
    # The schedule.
    "steps": 120_000,  # training steps (batches)
    "batch_size": 32,  # global batch, split over the replicas
    "optimizer": "rmsprop",  # rmsprop (paper), adam or nadam
    "beta_2": 0.999,  # (n)adam: decay of its average of squared gradients
    # Decoupled weight decay (AdamW's): each step the kernels of the convolutions
    # and dense layers shrink by weight_decay x the learning rate (not BatchNorm's
    # scales and offsets, not biases). 0: off (the paper).
    "weight_decay": 0.0,
    "lr": 1e-4,  # learning rate (after the warm-up)
    "warmup_steps": 0,  # linear learning-rate warm-up from zero, steps
    "lr_schedule": "constant",  # constant, or cosine decay to zero at the end
    "seed": 0,  # weights init, data order and augmentation draws
    "eval_every": 2000,  # steps between validations (and checkpoints)
    # Before each validation, BatchNorm's moving statistics re-estimated from this
    # many augmented training crops, weights untouched (0: off; hjr.training.callbacks).
    "bn_refresh": 0,
    # Training augmentation (hjr.core.augment), the paper's.
    "augment": True,  # False: train on the crops as they are
    "rot90": True,  # random multiple of 90 degrees, k uniform in 0..3
    # Mirrored left to right at random (half the crops): a left hand becomes a right
    # one, its joints keep their names. Off in the paper.
    "flip": False,
    "max_angle": 0.0,  # degrees; extra rotation uniform in [-a, a] (0: off)
    "brightness": 25.0,  # max absolute brightness shift on the 0..255 scale
    "saturation": [0.5, 1.5],  # range of the saturation factor
    # How the step runs.
    "strategy": "auto",  # auto, one-device, mirrored, multi-worker, tpu
    "precision": "float32",  # float32, mixed_float16, mixed_bfloat16
    "jit": "auto",  # XLA: auto (on for GPU/TPU, off on CPU), on, off
    "steps_per_execution": 1,  # training steps per compiled call (fewer launches)
}
AUGMENT_KEYS = ("rot90", "flip", "max_angle", "brightness", "saturation")

# The quick preset's map heads (below): tiny_unet's stride-4 features, Adam 6e-3.
_QUICK_MAP_HEAD = {"backbone": "tiny_unet", "lr": 6e-3}
PRESETS = {
    # The paper: ResNet-152 (v2) cut at conv4, ImageNet weights, batch 32,
    # RMSProp 1e-4, 120k steps, train-time augmentation.
    "paper": {},
    # Learns the synthetic hands in a few minutes on 2 CPU cores. Measured in
    # docs/benchmarks.md: per image, batch 16 learned faster than 32; at batch 32
    # Adam 5e-3 beat 2e-3 and 5e-4 (3e-3 at batch 16 was not measured alone); the
    # cosine decay helped at equal steps; 9,600 steps, twice the 4,800 measured
    # there, helped every head more than any change to its network or loss did
    # ("What else was tried").
    "quick": {
        "backbone": "tiny",
        "weights": "none",
        "optimizer": "adam",
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 100,
        "lr_schedule": "cosine",
        "steps": 9600,
        "eval_every": 1600,
        # Map heads: maps at a quarter of the input's side (16 times fewer pixels
        # to compute and score), the soft-argmax joint error in the loss.
        "map_stride": 4,
        "integral": 0.01,
        # Per head, over the settings above: the map heads on tiny_unet's stride-4
        # features at twice the learning rate ("Where tiny_unet spends its
        # capacity"); fc on small, two blocks per stage (-20% error for 1.4x the
        # time: "The fc head's backbone"), mirrored and 48,000 steps long (0.156 ->
        # under 0.1 of the mean predictor's error, 5x the steps: "What else was
        # tried", fifth pass); the score-map head mirrored and 12,000 steps long
        # (0.106 -> 0.097, 1.2x the time: fourth pass).
        "heads": {
            "fc": {
                "backbone": "small",
                "flip": True,
                "steps": 48000,
                "eval_every": 8000,
            },
            "classification": _QUICK_MAP_HEAD,
            "scoremap": {
                **_QUICK_MAP_HEAD,
                "flip": True,
                "steps": 12000,
                "eval_every": 2000,
            },
            "offsets": _QUICK_MAP_HEAD,
        },
    },
    # The paper's network and image count (120k x 32 = 3.84 M images) at batch 256
    # on a GPU: bfloat16, 25 steps per compiled call, the learning rate scaled
    # with the batch (x8) after a warm-up, and BatchNorm re-estimated before each
    # validation (at batch 256 the moving averages lag far behind the weights:
    # docs/benchmarks.md, "The large-batch rule").
    "gpu": {
        "batch_size": 256,
        "steps": 15_000,
        "lr": 8e-4,
        "warmup_steps": 500,
        "precision": "mixed_bfloat16",
        "steps_per_execution": 25,
        "eval_every": 1000,
        "bn_refresh": 2048,
    },
}
DEFAULT_PRESET = "paper"
# `hjr demo` without --steps (hjr.apps.demo): fewer than the quick preset's steps (9,600;
# 12,000 for scoremap, 48,000 for fc), as many as fit into 10 minutes on 2 CPU
# cores with the rest of the demo. The map heads on tiny_unet: 5,200 steps of
# 90-100 ms, validated every 1,300, on a one-cycle schedule: the learning rate rises
# linearly over the first 30% of the steps to twice the preset's, then decays as
# the preset's does (2-6% less error than the preset's 100 warm-up steps at 3,600
# steps: docs/benchmarks.md, "The demo's schedule"); Adam's beta_2 at 0.95
# instead of 0.999 (5-6% less again: "Where the demo's step goes"); Nadam (Adam
# with Nesterov momentum) with decoupled weight decay 0.02 (5-9% less on two
# seeds: "The demo's optimizer"). 4,800 steps rather than 3,600 since the step
# became a fifth faster (10% less error: "A faster step"), then 5,200, what fits
# with the rest (9.1 minutes in all; 11.7 on the same machine when its steps ran a
# third slower: "The same demo on a slower day"). fc on small: 4,800 of 60-70 ms,
# every 800.
DEMO_SCHEDULES = {
    "fc": {"steps": 4800, "eval_every": 800},
    "map heads": {
        "steps": 5200,
        "eval_every": 1300,
        "warmup_steps": 1560,
        "lr": 1.2e-2,
        "optimizer": "nadam",
        "beta_2": 0.95,
        "weight_decay": 0.02,
    },
}


def demo_schedule(head: str) -> dict:
    """`hjr demo`'s steps, validation interval and, for the map heads, learning-rate
    schedule for `head` (DEMO_SCHEDULES)."""
    return dict(DEMO_SCHEDULES["fc" if head == "fc" else "map heads"])


CHOICES = {
    "head": tuple(HEADS),
    "backbone": tuple(BACKBONES),
    "crop": CROPS,
    "optimizer": OPTIMIZERS,
    "precision": PRECISIONS,
    "strategy": STRATEGIES,
    "jit": JIT,
    "head_layout": LAYOUTS,
    "lr_schedule": LR_SCHEDULES,
}
# Head settings added since hjr 0.1, as runs saved without them were trained.
OLDER_DEFAULTS = {"centred": False, "map_stride": 1, "integral": 0.0}
# What a resumed run may change: how and how long it runs, not what it learns.
RESUMABLE = ("steps", "strategy", "jit", "steps_per_execution")


def _check(key, value):
    """UserError unless `value` is a valid setting `key`."""
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise UserError(f"expected one of {', '.join(CHOICES[key])}", key, value)
    elif key in ("steps", "batch_size", "eval_every", "steps_per_execution"):
        _whole(key, value, 1)
    elif key == "input_size":
        _whole(key, value, 32)
    elif key in ("seed", "warmup_steps", "bn_refresh"):
        _whole(key, value, 0)
    elif key == "map_stride":
        if value not in MAP_STRIDES:
            raise UserError(
                f"expected one of {', '.join(map(str, MAP_STRIDES))}", key, value
            )
    elif key in ("lr", "radius", "sigma2", "brightness", "integral", "weight_decay"):
        if not isinstance(value, (int, float)) or not value >= 0 or value is True:
            raise UserError("expected a non-negative number", key, value)
    elif key == "beta_2":
        if not isinstance(value, (int, float)) or not 0 <= value < 1 or value is True:
            raise UserError("expected a number in [0, 1)", key, value)
    elif key == "max_angle":
        if not isinstance(value, (int, float)) or not 0 <= value <= 180:
            raise UserError("expected degrees in 0..180", key, value)
    elif key in ("augment", "rot90", "flip", "centred"):
        if not isinstance(value, bool):
            raise UserError("expected true or false", key, value)
    elif key == "saturation":
        if not isinstance(value, list) or len(value) != 2:
            raise UserError("expected [low, high]", key, value)
        if not 0 <= value[0] <= value[1]:
            raise UserError("expected [low, high] with 0 <= low <= high", key, value)


def _whole(key, value, least):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"expected a whole number of at least {least}", key, value)


def _plain(value):
    """Tuples as lists, as config.json stores them (so values compare)."""
    return json.loads(json.dumps(value))


def configure(preset: str = None, overrides: dict = None, resume=None) -> dict:
    """The configuration of a run, every setting checked (UserError names it).

    A new run (resume None): default_conf < the head's defaults < PRESETS[preset]
    (default "paper") < overrides. Resuming the run in folder `resume`: its
    config.json, with the overrides in RESUMABLE applied; any other setting (the
    preset included) must equal the run's, else it is refused by name.
    """
    overrides = {key: _plain(value) for key, value in (overrides or {}).items()}
    if preset is not None and preset not in PRESETS:
        raise UserError(f"expected one of {', '.join(PRESETS)}", "preset", preset)
    if resume is not None:
        return _resumed(load_config(resume), preset, overrides, resume)
    preset = preset or DEFAULT_PRESET
    head = overrides.get("head", PRESETS[preset].get("head", default_conf["head"]))
    defaults = complete({"head": head})
    for key, value in overrides.items():
        _known(key, value, head, defaults)
        _check(key, value)
    # A preset's head settings (map_stride, ...) apply to the heads that have them,
    # then its settings for this head alone.
    chosen = {k: v for k, v in PRESETS[preset].items() if k in defaults}
    chosen.update(PRESETS[preset].get("heads", {}).get(head, {}))
    conf = {**defaults, **chosen, **overrides, "preset": preset}
    takes = conf["optimizer"] in WITH_BETA_2
    if not takes and conf["beta_2"] != default_conf["beta_2"]:
        raise UserError(
            f"a setting of the {' and '.join(WITH_BETA_2)} optimizers, not of "
            f"{conf['optimizer']}",
            "beta_2",
            conf["beta_2"],
        )
    if conf["backbone"] == "tiny_unet" and conf.get("map_stride", 1) > 4:
        raise UserError(
            f"the {conf['backbone']} backbone's features are at stride 4; "
            "expected 1, 2 or 4",
            "map_stride",
            conf["map_stride"],
        )
    return conf


def complete(conf: dict) -> dict:
    """conf with the defaults of the settings it leaves out (its head's included);
    UserError for an unknown head."""
    head = conf.get("head", default_conf["head"])
    _check("head", head)
    return {**default_conf, **HEADS[head].defaults, **conf}


def _known(key, value, head, defaults):
    """UserError unless `key` is a setting of a run with this head."""
    if key in defaults:
        return
    owners = [name for name, spec in HEADS.items() if key in spec.defaults]
    if owners:
        heads = "head" if len(owners) == 1 else "heads"
        where = f"a setting of the {' and '.join(owners)} {heads}, not of {head}"
        raise UserError(where, key, value)
    raise UserError(
        f"unknown setting; expected one of {', '.join(defaults)}", key, value
    )


def _resumed(run, preset, overrides, folder):
    if preset is not None and preset != run["preset"]:
        raise UserError(
            f"the run in {folder} uses the {run['preset']} preset", "preset", preset
        )
    for key, value in overrides.items():
        _known(key, value, run["head"], run)
        _check(key, value)
        if key in RESUMABLE:
            run[key] = value
        elif value != run[key]:
            raise UserError(
                f"the run in {folder} has {key} {run[key]!r}; a resumed run may "
                f"only change {', '.join(RESUMABLE)}",
                key,
                value,
            )
    return run


def augmentation(conf: dict):
    """The hjr.core.augment settings of a run, or None without augmentation."""
    return {key: conf[key] for key in AUGMENT_KEYS} if conf["augment"] else None


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
    if not isinstance(conf, dict) or conf.get("head") not in HEADS:
        raise UserError(f"{path}: not an hjr run configuration (no known 'head')")
    conf.setdefault("preset", None)
    conf.pop("data_dir", None)  # written by hjr 0.1; machine-specific
    if not isinstance(conf.get("augment", True), bool):  # hjr 0.1: a dict or None
        conf.update(conf["augment"] or {}, augment=conf["augment"] is not None)
    for key, value in OLDER_DEFAULTS.items():  # what runs without the key trained
        if key in HEADS[conf["head"]].defaults:
            conf.setdefault(key, value)
    return complete(conf)
