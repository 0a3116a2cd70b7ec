"""`hjr train`: train a model into a run folder, continue one, or start one over.

Its flags are the settings of hjr.config (`--batch-size` is `batch_size`, `--no-flip`
is `flip: false`); a setting not given takes the preset's value. hjr.config checks
them all, and the run folder is checked, before TensorFlow starts."""

import os
from dataclasses import replace

from hjr import config
from hjr.cli import flags
from hjr.cli.flags import SWITCH, Flag, declared

HELP = "train a model"
DESCRIPTION = (
    "Train a model into a run folder, continue one with --resume RUN_DIR, or start "
    "one over with --overwrite. Flags override the preset's settings; a resumed run "
    "takes --steps, --strategy, --jit, --steps-per-execution and --data-dir, and "
    "refuses other settings that differ from its own."
)
SETTINGS = [*config.SETTINGS, *config.HEAD_SETTINGS]
FLAGS_FIRST = ("head", "data", "crop")
_PRESETS = ", ".join(
    f"{name} {config.configure(name, {'head': 'offsets'})['batch_size']}"
    for name in config.PRESETS
)


def _preset_default(key) -> Flag:
    """A setting's flag as `hjr train` takes it: not given, the preset decides
    (hjr.config checks every value given, naming its flag)."""
    flag = flags.FLAGS[key] if key in flags.FLAGS else flags.setting(key)
    shown = f"the preset's; paper: {flags.default_text(flag)}"
    if key == "batch_size":
        shown = f"the preset's: {_PRESETS}"
    elif key == "head":
        shown = "required for a new run"
    return replace(flag, default=None, check=None, default_text=shown)


FLAGS = {
    "head": _preset_default("head"),
    **declared(["preset"], preset={"default": None}),
    **{key: _preset_default(key) for key in ("data", "crop")},
    **declared(["data_dir"]),
    **{key: _preset_default(key) for key in SETTINGS if key not in FLAGS_FIRST},
    "out": Flag(
        "the run folder",
        metavar="RUN_DIR",
        default_text="$HJR_RUNS_DIR/<head>, else runs/<head>",
    ),
    "resume": Flag("continue the run in this folder", metavar="RUN_DIR"),
    "overwrite": Flag(
        "start over in --out: the run there (its settings, checkpoints, history and "
        "logs) is deleted first",
        kind=SWITCH,
    ),
    "dry_run": Flag("build the model, print it and exit", kind=SWITCH),
}


def check(args):
    """The run's configuration (args.conf) and folder (args.run_dir), checked."""
    from data_pipeline.errors import UserError
    from data_pipeline.files import check_writable
    from hjr import runs

    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if args.resume:
        args.run_dir = args.resume
        if args.out and os.path.realpath(args.out) != os.path.realpath(args.resume):
            raise UserError(f"a resumed run stays in {args.resume}", "out", args.out)
        if args.overwrite:
            raise UserError("--overwrite starts a run over: not with --resume")
    elif "head" not in given:
        raise UserError(f"--head is required: one of {', '.join(config.HEADS)}")
    else:
        runs_dir = os.environ.get("HJR_RUNS_DIR", "runs")
        args.run_dir = args.out or os.path.join(runs_dir, given["head"])
    args.conf = runs.run_config(args.run_dir, args.preset, given, bool(args.resume))
    if not args.dry_run:
        if not args.resume:
            runs.check_new(args.run_dir, args.overwrite)
        check_writable(args.run_dir, "the run folder")


def run(args, verbose):
    from hjr.quiet import start_tensorflow

    start_tensorflow(verbose)
    from hjr.training.train import train

    train(
        args.conf,
        args.run_dir,
        bool(args.resume),
        args.dry_run,
        args.data_dir,
        overwrite=args.overwrite,
    )
