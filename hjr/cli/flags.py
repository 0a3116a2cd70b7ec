"""Every flag of `hjr`, declared once: its name, how its text is read, its range,
its default and its help. A command lists the flags it takes (its module's FLAGS);
the parser, the help and the checks are made from these declarations, so that a
flag means, defaults to and checks the same in every command that takes it.

The settings of a run (hjr.config.SETTINGS and HEAD_SETTINGS: `--batch-size` is
`batch_size`) are flags too, declared by their setting: their default, help and
checks are hjr.config's. Every check runs before TensorFlow starts or any data is
read: argparse reads the text; then each given flag's `check` (a range, a --data
that parses) and `needs` (a flag that means something only with another).
"""

import argparse
import os
from dataclasses import dataclass, replace
from typing import Any, Callable

from data_pipeline.errors import UserError
from hjr import config
from hjr.core.heads import HEADS

SWITCH = "switch"  # --x: on when given
TOGGLE = "toggle"  # --x / --no-x


@dataclass(frozen=True)
class Flag:
    """One flag. Its name is its key in FLAGS (`box_seed` is `--box-seed`)."""

    help: str
    type: Callable = str  # reads the text (argparse names the flag if it fails)
    default: Any = None  # what a command gets where the flag is not given
    check: Callable = None  # check(key, value): UserError(key=...) if out of range
    choices: tuple = None
    metavar: Any = None
    kind: str = ""  # "" (takes a value), SWITCH (default False) or TOGGLE
    nargs: Any = None
    needs: tuple = ()  # where given, one of these flags must be given too
    required: bool = False
    default_text: str = None  # the help's default, where it is not `default`


# -- reading and checking values ---------------------------------------------


def at_least(least):
    """A check: a whole number >= least."""

    def check(key, value):
        if value < least:
            raise UserError(f"expected a whole number of at least {least}", key, value)

    return check


def non_negative(key, value):
    if not value >= 0:
        raise UserError("expected a number >= 0", key, value)


def at_least_one(key, value):
    if not value >= 1:
        raise UserError("expected a number >= 1", key, value)


def setting_check(key, value):
    """A run's setting, checked as hjr.config checks it."""
    config.check_setting(key, value)


def pair(text):
    """PX,S: two numbers."""
    try:
        shift, scale = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PX,S (e.g. 16,1.25), got {text!r}")
    return [shift, scale]


def head_list(text):
    """H,...: some of the heads, comma-separated."""
    heads = [h for h in text.split(",") if h]
    if not heads or any(h not in config.HEADS for h in heads):
        raise argparse.ArgumentTypeError(
            f"expected some of {', '.join(config.HEADS)}, comma-separated, got {text}"
        )
    return heads


def parsed_source(key, value):
    """A --data that parses and names what exists (data_pipeline.sources), not a
    video (only hjr predict and hjr browse read one)."""
    from data_pipeline.sources import parse_source

    if parse_source(value).kind == "video":
        raise UserError(
            "a video is read by hjr predict and hjr browse only", key, value
        )


def parsed_source_or_video(key, value):
    """A --data that parses and names what exists, a video too."""
    from data_pipeline.sources import parse_source

    parse_source(value)


def existing(key, value):
    if not os.path.exists(value):
        raise UserError("no such file or folder", key, value)


def existing_model(key, value):
    if not os.path.exists(value):
        raise UserError("no such run folder or exported file", key, value)


# -- the declarations -------------------------------------------------------

DATA_HELP = (
    "the hands to read: synthetic (built-in drawn hands), a folder with the "
    "competition's training.h5/testing.h5, a folder with RHD_published_v2/, "
    "coco:FILE.json (COCO keypoint hands, or boxes to predict on; with "
    "boxes=DETECTIONS.json a detector's boxes on its images), or images:DIR (a "
    "folder of images, each one hand); options after a colon, e.g. "
    "synthetic:train=2000,test=200, DIR:validation=480, coco:FILE.json,images=DIR "
    "(docs/data.md, docs/coco.md)"
)
VIDEO_HELP = (
    "; here also video:FILE[,box=X,Y,W,H][,boxes=DETECTIONS.json] (a video, its hand "
    "tracked from one box or found by a detector's boxes; docs/cli.md#videos)"
)
# declared()'s changes to --data for the commands that also read a video
WITH_VIDEO = {"check": parsed_source_or_video, "help": DATA_HELP + VIDEO_HELP}
MODEL_HELP = "a training run folder or an hjr export (SavedModel, .onnx, .tflite)"
_SETTINGS = {
    **config.SETTINGS,
    **{k: (None, v) for k, v in config.HEAD_SETTINGS.items()},
}


def setting(key, **changes) -> Flag:
    """The flag of a run's setting: its type, choices, default and help are
    hjr.config's; its range is checked by hjr.config."""
    default, text = _SETTINGS[key]
    if default is None:  # a head's own setting: the first head's default that has it
        default = next(own[key] for own in config.HEAD_DEFAULTS.values() if key in own)
    options = dict(help=text, default=default, check=setting_check)
    if key in config.CHOICES:
        options["choices"] = config.CHOICES[key]
    elif key == "map_stride":
        options.update(type=int, choices=config.MAP_STRIDES)
    elif key == "box_jitter":
        options.update(type=pair, metavar="PX,S")
    elif isinstance(default, bool):
        options["kind"] = TOGGLE
    elif isinstance(default, list):
        options.update(nargs=2, type=float, metavar=("LOW", "HIGH"))
    elif isinstance(default, (int, float)):
        options["type"] = type(default)
    return Flag(**{**options, **changes})


FLAGS = {
    # Data: every command that reads hands.
    "data": Flag(DATA_HELP, default="synthetic", check=parsed_source, metavar="SOURCE"),
    "crop": setting("crop", help="crop of the train and validation splits"),
    "data_dir": Flag(
        "where prepared sources live",
        metavar="DIR",
        default_text="$HJR_DATA_DIR, else ~/.cache/hjr/datasets",
    ),
    "split": Flag("the split to read", choices=("train", "validation", "test")),
    # Imperfect crops (data_pipeline.boxes).
    "shift": Flag(
        "cut each crop from its box moved by PX pixels of the 128-px crop in a "
        "seeded direction (data_pipeline.boxes)",
        type=float,
        default=0.0,
        check=non_negative,
        metavar="PX",
    ),
    "scale": Flag(
        "and scaled by a seeded factor in [1/S, S]",
        type=float,
        default=1.0,
        check=at_least_one,
        metavar="S",
    ),
    "box_seed": Flag(
        "seed of the moved boxes (a sample gets the same box in every command)",
        type=int,
        default=0,
        check=at_least(0),
        metavar="N",
        needs=("shift", "scale"),
    ),
    # Models and predictions.
    "model": Flag(MODEL_HELP, check=existing_model, metavar="M"),
    "tta": Flag(
        "average the keypoints over the four 90-degree rotations of each crop "
        "(test-time augmentation)",
        default=True,
        kind=TOGGLE,
    ),
    "batch_size": setting(
        "batch_size",
        metavar="B",
        help="images per batch (training: the global batch, split "
        "over the replicas)",
    ),
    "json": Flag("also write the figures to this JSON file", metavar="PATH"),
    "overwrite": Flag("replace what --out holds", kind=SWITCH),
    # Settings that several commands take.
    "head": setting(
        "head",
        help="; ".join(f"{name}: {head.summary}" for name, head in HEADS.items()),
    ),
    "preset": Flag(
        "settings to start from: paper (the paper's training), quick (each head in "
        "minutes on a CPU), gpu (the paper's images at batch 256, bfloat16)",
        choices=tuple(config.PRESETS),
        default=config.DEFAULT_PRESET,
    ),
    "steps": setting("steps", metavar="N"),
    "seed": setting("seed", metavar="S"),
    "heads": Flag(
        f"some of {','.join(config.HEADS)}, comma-separated",
        type=head_list,
        default=list(config.HEADS),
        metavar="H,...",
        default_text="all",
    ),
    "seeds": Flag(
        "train each run with the seeds 0 .. N-1 (its --seed) and give each figure "
        "as their mean +/- half their range",
        type=int,
        check=at_least(1),
        metavar="N",
    ),
    "backbone": setting("backbone"),
    "precision": setting("precision"),
    "jit": setting("jit"),
    "steps_per_execution": setting("steps_per_execution", metavar="N"),
    "box_jitter": setting("box_jitter"),
    "max_angle": setting("max_angle", metavar="A"),
    "flip": setting("flip"),
}


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def flag_line(error: UserError) -> str:
    """The error's line, the setting named by its flag (`--no-X` for X false)."""
    if error.key is None:
        return error.message
    flag = flag_name(error.key)
    if isinstance(error.value, bool):
        return f"{flag if error.value else '--no-' + flag[2:]}: {error.message}"
    return error.describe(flag)


def default_text(flag: Flag):
    if flag.default_text is not None:
        return flag.default_text
    if flag.kind == SWITCH or flag.required or flag.default is None:
        return None
    if flag.kind == TOGGLE:
        return "on" if flag.default else "off"
    if isinstance(flag.default, list):
        return " ".join(f"{v:g}" for v in flag.default)
    if isinstance(flag.default, float):
        return f"{flag.default:g}"
    return str(flag.default)


def add(parser, key: str, flag: Flag = None, group=None):
    """Add flag `key` (FLAGS[key] unless given) to an argparse parser. Its value is
    None where not given (FLAGS' defaults are applied by `resolve`), so that the
    checks know what was given."""
    flag = flag or FLAGS[key]
    shown = default_text(flag)
    text = flag.help + (f" (default {shown})" if shown else "")
    options = dict(dest=key, help=text.replace("%", "%%"), default=None)
    if flag.kind == SWITCH:
        options["action"] = "store_true"
    elif flag.kind == TOGGLE:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options.update(type=flag.type, required=flag.required)
        for name in ("choices", "metavar", "nargs"):
            if getattr(flag, name) is not None:
                options[name] = getattr(flag, name)
    (group or parser).add_argument(flag_name(key), **options)


def given(args, key) -> bool:
    """Whether flag `key` was given (before `resolve`)."""
    return getattr(args, key, None) is not None


def resolve(args, flags: dict, skip=()):
    """Check the given flags (their `check` and `needs`), then apply the defaults of
    those not given, in place; UserError names the first flag refused. Flags in
    `skip` are left as given (a command resolves them itself)."""
    for key, flag in flags.items():
        if not given(args, key):
            continue
        missing = [k for k in flag.needs if k in flags]
        if missing and not any(given(args, k) for k in missing):
            partners = " or ".join(flag_name(k) for k in missing)
            raise UserError(f"{flag_name(key)} needs {partners}")
        if flag.check is not None:
            flag.check(key, getattr(args, key))
    for key, flag in flags.items():
        if key not in skip and not given(args, key):
            setattr(args, key, False if flag.kind == SWITCH else flag.default)
    return args


def declared(keys, **changes) -> dict:
    """{key: Flag} of FLAGS' `keys`, with `changes` {key: {field: value}} for a
    command's own default or `needs` (e.g. the split it reads by default)."""
    return {k: replace(FLAGS[k], **changes.get(k, {})) for k in keys}


DATA = ("data", "crop", "data_dir")
BOXES = ("shift", "scale", "box_seed")


def box(args):
    """(shift, scale, seed) of the BOXES flags, checked together (the moved box
    stays inside the stored surroundings, data_pipeline.boxes); None where they
    move nothing: the stored crops."""
    from data_pipeline import boxes

    boxes.check(args.shift, args.scale)
    if not boxes.moves(args.shift, args.scale):
        return None
    return (args.shift, args.scale, args.box_seed)
