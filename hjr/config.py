"""A run's configuration: defaults, named presets, the checks and the resume rules.

`configure(preset, overrides)` is the one function that turns a preset and the
settings given (the CLI's flags, `hjr demo`, the Kaggle kernel, a notebook) into
the configuration of a new run; `resumed(run, preset, overrides)` checks what a
resumed run may change. The result is saved in the run folder (hjr.runs): enough
to rebuild the exact model (hjr.core.model.build_model) and to resume the run.
Machine-specific paths (where prepared data lives) are never part of it.

Importing this module does not start TensorFlow: the CLI checks its flags here.
"""

import json

from data_pipeline.crop import CROPS
from data_pipeline.errors import UserError

# The encoders (hjr.core.backbones builds them) and the decoder heads (hjr.core.heads)
# by name, each head with its own settings' defaults: the names a configuration may
# give, declared here, below the code they configure.
BACKBONES = (
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet50v2",
    "resnet101v2",
    "resnet152v2",  # the paper's
    "tiny",
    "small",
    "tiny_unet",
)
_MAP_DEFAULTS = {"map_stride": 1, "integral": 0.0}
HEAD_DEFAULTS = {
    "fc": {"centred": True},  # the bias starts at the image centre
    "classification": {"radius": 16.0, **_MAP_DEFAULTS},  # disk radius, input px
    "scoremap": {"sigma2": 100.0, **_MAP_DEFAULTS},  # Gaussian variance, px^2
    "offsets": {"radius": 12.0, "map_stride": 4, "integral": 0.0},
}
HEADS = tuple(HEAD_DEFAULTS)

OPTIMIZERS = ("rmsprop", "adam", "nadam")  # nadam: Adam with Nesterov momentum
WITH_BETA_2 = ("adam", "nadam")  # the optimizers that take beta_2
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")
JIT = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "cosine")
MAP_STRIDES = (1, 2, 4, 8)  # input pixels per map pixel (map heads)
# hjr export (hjr.inference.export): formats, LiteRT quantizations, int8
# calibration crops.
EXPORT_FORMATS = ("savedmodel", "onnx", "tflite")
QUANTIZATIONS = ("float16", "int8")
CALIBRATION_CROPS = 300

# Every setting of a run: its default and what it means (the CLI's --help; a
# setting `a_b` is the flag `--a-b`).
SETTINGS = {
    # The network (hjr.core.model.build_model).
    "head": ("fc", "the decoder head (hjr.core.heads)"),
    "backbone": ("resnet152v2", "the encoder (hjr.core.backbones)"),
    "weights": ("imagenet", "the encoder's initial weights: imagenet, none or a file"),
    # The data (data_pipeline.sources).
    "data": ("synthetic", "the source (--data SOURCE)"),
    "crop": ("biased", "crop of the train and validation splits"),
    # The schedule.
    "steps": (120_000, "training steps (batches)"),
    "batch_size": (32, "the global batch, split over the replicas"),
    "optimizer": ("rmsprop", "rmsprop (the paper's), adam, or nadam (Nesterov Adam)"),
    "beta_2": (0.999, "adam, nadam: decay of the average of squared gradients"),
    "weight_decay": (
        0.0,
        "decoupled weight decay of the convolution and dense kernels, times the "
        "learning rate (not BatchNorm's scales and offsets, not biases)",
    ),
    "lr": (1e-4, "learning rate after the warm-up"),
    "warmup_steps": (0, "linear learning-rate warm-up from zero, steps"),
    "lr_schedule": ("constant", "constant, or cosine decay to zero at the end"),
    "seed": (0, "weights' initialisation, data order and augmentation draws"),
    "eval_every": (2000, "steps between validations (and checkpoints)"),
    "bn_refresh": (
        0,
        "before each validation, re-estimate BatchNorm's moving statistics from "
        "this many augmented training crops (0: off)",
    ),
    # Training augmentation (hjr.core.augment), the paper's.
    "augment": (True, "augment the training crops (the settings below)"),
    "rot90": (True, "rotate by a random multiple of 90 degrees"),
    "flip": (False, "mirror half the crops left to right (off in the paper)"),
    "max_angle": (0.0, "extra rotation uniform in [-A, A] degrees (0: off)"),
    "brightness": (25.0, "largest brightness shift on the 0..255 scale"),
    "saturation": ([0.5, 1.5], "range of the saturation factor: LOW HIGH"),
    "box_jitter": (
        [0.0, 1.0],
        "train on boxes moved up to PX crop pixels and scaled by [1/S, S], cut "
        "from the crops' surroundings: PX,S (0,1: off; data_pipeline.boxes)",
    ),
    # How the step runs.
    "strategy": ("auto", "the devices and how the batch is split over them"),
    "precision": ("float32", "float32, mixed_float16 or mixed_bfloat16"),
    "jit": ("auto", "XLA: auto (on for GPU/TPU and JAX, off on CPUs), on, off"),
    "steps_per_execution": (1, "training steps per compiled call"),
}
default_conf = {key: default for key, (default, _) in SETTINGS.items()}
# The heads' own settings (their defaults per head: HEAD_DEFAULTS).
HEAD_SETTINGS = {
    "centred": "fc: the dense layer's bias starts at the crop's centre",
    "radius": "classification, offsets: disk radius, input pixels",
    "sigma2": "scoremap: variance of the Gaussian maps, pixels squared",
    "map_stride": "map heads: input pixels per map pixel (the paper's: 1)",
    "integral": "map heads: weight of the soft-argmax joint error (px) in the loss",
}
AUGMENT_KEYS = ("rot90", "flip", "max_angle", "brightness", "saturation")

# The quick preset's map heads: tiny_unet's stride-4 features, Nadam with decoupled
# weight decay, the learning rate rising over the first 30% of the steps (a
# one-cycle schedule; the warm-up keeps that share under --steps).
_QUICK_MAP_HEAD = {
    "backbone": "tiny_unet",
    "optimizer": "nadam",
    "beta_2": 0.95,
    "weight_decay": 0.02,
    "lr": 1.2e-2,
    "steps": 5200,
    "warmup_steps": 1560,
    "eval_every": 1300,
}
PRESETS = {
    # The paper: ResNet-152 (v2) cut at conv4, ImageNet weights, batch 32,
    # RMSProp 1e-4, 120k steps, train-time augmentation.
    "paper": {},
    # Each head in minutes on a CPU, from scratch on small networks (what
    # `hjr demo` trains); the settings that learned the synthetic hands best at
    # this length are in docs/benchmarks.md.
    "quick": {
        "backbone": "tiny",
        "weights": "none",
        "optimizer": "adam",
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 100,
        "lr_schedule": "cosine",
        "steps": 4800,
        "eval_every": 800,
        # Map heads: maps at a quarter of the input's side (16 times fewer pixels
        # to compute and score), the soft-argmax joint error in the loss.
        "map_stride": 4,
        "integral": 0.01,
        # Per head, over the settings above: fc on `small` (two blocks per stage),
        # mirrored, with the map heads' one-cycle Nadam at half their peak rate
        # and three times the old 4,800 steps (its step is the cheapest); the
        # score-map head mirrored too.
        "heads": {
            "fc": {
                **_QUICK_MAP_HEAD,
                "backbone": "small",
                "flip": True,
                "lr": 6e-3,
                "steps": 14_400,
                "warmup_steps": 4320,
                "eval_every": 2400,
            },
            "classification": _QUICK_MAP_HEAD,
            "scoremap": {**_QUICK_MAP_HEAD, "flip": True},
            "offsets": _QUICK_MAP_HEAD,
        },
    },
    # The paper's network and image count (120k x 32 = 3.84 M images) at batch 256
    # on a GPU: bfloat16, 25 steps per compiled call, the learning rate scaled
    # with the batch (x8) after a warm-up, and BatchNorm re-estimated before each
    # validation (at batch 256 the moving averages lag far behind the weights:
    # docs/benchmarks.md, the large-batch rule).
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
CHOICES = {
    "head": HEADS,
    "backbone": BACKBONES,
    "crop": CROPS,
    "optimizer": OPTIMIZERS,
    "precision": PRECISIONS,
    "strategy": STRATEGIES,
    "jit": JIT,
    "lr_schedule": LR_SCHEDULES,
}
# What a resumed run may change: how and how long it runs, not what it learns.
RESUMABLE = ("steps", "strategy", "jit", "steps_per_execution")


def check_setting(key, value):
    """UserError unless `value` is a valid setting `key`."""
    if key == "data":
        from data_pipeline.sources import parse_source

        if parse_source(value).kind == "video":  # UserError names `data`
            raise UserError(
                "a video is read by hjr predict and browse only", key, value
            )
    elif key in CHOICES:
        if value not in CHOICES[key]:
            raise UserError(f"expected one of {', '.join(CHOICES[key])}", key, value)
    elif key in ("steps", "batch_size", "eval_every", "steps_per_execution"):
        _whole(key, value, 1)
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
    elif key == "box_jitter":
        if not isinstance(value, list) or len(value) != 2:
            raise UserError("expected [shift, scale]", key, value)
        from data_pipeline.boxes import check

        check(*value, key=key)
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


def configure(preset: str = None, overrides: dict = None) -> dict:
    """The configuration of a new run, every setting checked (UserError names it):
    default_conf < the head's defaults < PRESETS[preset] (default "paper") <
    overrides. Where `steps` changes a preset's length and `warmup_steps` is not
    given, the preset's warm-up keeps its share of the steps. (hjr.runs.run_config
    starts or resumes a run in a folder.)
    """
    overrides = {key: _plain(value) for key, value in (overrides or {}).items()}
    _check_preset(preset)
    preset = preset or DEFAULT_PRESET
    head = overrides.get("head", PRESETS[preset].get("head", default_conf["head"]))
    defaults = complete({"head": head})
    for key, value in overrides.items():
        _known(key, value, head, defaults)
        check_setting(key, value)
    # A preset's head settings (map_stride, ...) apply to the heads that have them,
    # then its settings for this head alone.
    chosen = {k: v for k, v in PRESETS[preset].items() if k in defaults}
    chosen.update(PRESETS[preset].get("heads", {}).get(head, {}))
    conf = {**defaults, **chosen, **overrides, "preset": preset}
    if "steps" in overrides and "warmup_steps" not in overrides:
        share = conf["warmup_steps"] / {**defaults, **chosen}["steps"]
        conf["warmup_steps"] = round(share * conf["steps"])
    if (
        conf["optimizer"] not in WITH_BETA_2
        and conf["beta_2"] != default_conf["beta_2"]
    ):
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


def _check_preset(preset):
    if preset is not None and preset not in PRESETS:
        raise UserError(f"expected one of {', '.join(PRESETS)}", "preset", preset)


def complete(conf: dict) -> dict:
    """conf with the defaults of the settings it leaves out (its head's included);
    UserError for an unknown head."""
    head = conf.get("head", default_conf["head"])
    check_setting("head", head)
    return {**default_conf, **HEAD_DEFAULTS[head], **conf}


def _known(key, value, head, defaults):
    """UserError unless `key` is a setting of a run with this head."""
    if key in defaults:
        return
    owners = [name for name, own in HEAD_DEFAULTS.items() if key in own]
    if owners:
        heads = "head" if len(owners) == 1 else "heads"
        where = f"a setting of the {' and '.join(owners)} {heads}, not of {head}"
        raise UserError(where, key, value)
    raise UserError(
        f"unknown setting; expected one of {', '.join(defaults)}", key, value
    )


def resumed(run: dict, preset=None, overrides: dict = None, folder="") -> dict:
    """The configuration `run` of the run in `folder` resumed with `overrides`:
    those in RESUMABLE applied; any other setting (the preset included) must equal
    the run's, else it is refused by name."""
    _check_preset(preset)
    if preset is not None and preset != run["preset"]:
        raise UserError(
            f"the run in {folder} uses the {run['preset']} preset", "preset", preset
        )
    run = dict(run)
    for key, value in (overrides or {}).items():
        value = _plain(value)
        _known(key, value, run["head"], run)
        check_setting(key, value)
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
