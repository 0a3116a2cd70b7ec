"""The `hjr` command line: argparse and one thin handler per command.

`hjr train`'s flags are the settings of hjr.config (`--batch-size` is
`batch_size`, `--no-flip` is `flip: false`), made from its SETTINGS and
HEAD_SETTINGS; every flag with a fixed set of values is checked by argparse, and
every other setting by hjr.config, before TensorFlow starts or any data is read.
Errors about a setting name the flag that gave it.
"""

import argparse
import json
import os
import sys

from data_pipeline.errors import UserError
from data_pipeline.sources import SPLITS
from hjr.config import (
    CALIBRATION_CROPS,
    CHOICES,
    EXPORT_FORMATS,
    HEAD_SETTINGS,
    MAP_STRIDES,
    PRESETS,
    QUANTIZATIONS,
    SETTINGS,
)
from hjr.core.heads import HEADS
from hjr.quiet import start_tensorflow, verbose_from_env

DATA_HELP = (
    "synthetic (built in, default), a folder with the competition's training.h5/"
    "testing.h5, or a folder with RHD_published_v2/; options after a colon, e.g. "
    "synthetic:train=2000,test=200 or DIR:validation=480"
)
MODEL_HELP = "a training run folder or an hjr export (SavedModel, .onnx, .tflite)"
HEAD_HELP = "; ".join(f"{name}: {head.summary}" for name, head in HEADS.items())


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number, got {text}"
        )
    return value


def _pair(text):
    """PX,S: two numbers."""
    try:
        shift, scale = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PX,S (e.g. 16,1.25), got {text!r}")
    return [shift, scale]


def _heads(text):
    heads = [h for h in text.split(",") if h]
    if not heads or any(h not in HEADS for h in heads):
        raise argparse.ArgumentTypeError(
            f"expected some of {', '.join(HEADS)}, comma-separated, got {text}"
        )
    return heads


def flag_line(error: UserError) -> str:
    """The error's line, the setting named by its flag (`--no-X` for X false)."""
    if error.key is None:
        return error.message
    flag = "--" + error.key.replace("_", "-")
    if isinstance(error.value, bool):
        return f"{flag if error.value else '--no-' + flag[2:]}: {error.message}"
    return error.describe(flag)


def _data_flags(parser, data=None, crop="biased", what=""):
    """--data (default `data`), --crop (default `crop`; False: no flag),
    --data-dir; `what` prefixes their help (e.g. "--quantize: ")."""
    parser.add_argument("--data", default=data, help=what + DATA_HELP)
    if crop is not False:
        parser.add_argument(
            "--crop",
            choices=CHOICES["crop"],
            default=crop,
            help=f"{what}crop of the train and validation splits (default biased)",
        )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"{what}where prepared sources live (default $HJR_DATA_DIR, else "
        "~/.cache/hjr/datasets)",
    )


def _box_flags(parser):
    """--shift, --scale, --box-seed: crops cut from moved and scaled boxes."""
    parser.add_argument(
        "--shift",
        type=float,
        default=0.0,
        metavar="PX",
        help="cut each crop from its box moved by PX pixels of the 128-px crop in a "
        "seeded direction (data_pipeline.boxes; default 0)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="S",
        help="and scaled by a seeded factor in [1/S, S] (default 1)",
    )
    parser.add_argument(
        "--box-seed", type=int, default=0, help="seed of the moves (default 0)"
    )


def _box(args):
    return (args.shift, args.scale, args.box_seed)


def _setting_flag(parser, key, default, text):
    """The flag of setting `key`, None where not given (the preset's value)."""
    flag = "--" + key.replace("_", "-")
    options = {"dest": key, "default": None, "help": text}
    if key == "head":
        options.update(choices=CHOICES[key], help=HEAD_HELP)
    elif key in CHOICES:
        options["choices"] = CHOICES[key]
    elif key == "map_stride":
        options.update(type=int, choices=MAP_STRIDES)
    elif key == "box_jitter":
        options.update(type=_pair, metavar="PX,S")
    elif isinstance(default, bool):
        options["action"] = argparse.BooleanOptionalAction
    elif isinstance(default, list):
        options.update(nargs=2, type=float, metavar=("LOW", "HIGH"))
    elif isinstance(default, (int, float)):
        options["type"] = type(default)
    parser.add_argument(flag, **options)


def _train_parser(commands):
    train = commands.add_parser(
        "train",
        help="train a model",
        description="Train a model, or continue one with --resume RUN_DIR. Flags "
        "override the preset's settings; a resumed run takes --steps, --strategy, "
        "--jit, --steps-per-execution and --data-dir, and refuses other settings "
        "that differ from its own.",
    )
    _data_flags(train, crop=None)
    train.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="settings to start from (default paper; quick: each head in minutes on "
        "a CPU; gpu: the paper's images at batch 256, bfloat16)",
    )
    settings = {k: v for k, v in SETTINGS.items() if k not in ("data", "crop")}
    for key, (default, text) in settings.items():
        _setting_flag(train, key, default, text)
    for key, text in HEAD_SETTINGS.items():
        default = next(h.defaults[key] for h in HEADS.values() if key in h.defaults)
        _setting_flag(train, key, default, text)
    train.add_argument(
        "--out", help="run folder (default $HJR_RUNS_DIR/<head>, else runs/<head>)"
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run")
    train.add_argument(
        "--dry-run", action="store_true", help="build the model, print it and exit"
    )


def _predict_parsers(commands):
    predict = commands.add_parser(
        "predict", help="write a Kaggle submission CSV or COCO keypoint results"
    )
    _data_flags(predict, "synthetic")
    _box_flags(predict)
    predict.add_argument("--model", required=True, help=MODEL_HELP)
    predict.add_argument("--split", choices=SPLITS, default="test")
    predict.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="average over the four 90-degree rotations (default on)",
    )
    predict.add_argument("--batch-size", type=_positive, default=64)
    predict.add_argument(
        "--out",
        required=True,
        help="the CSV to write; for a coco source a .json: COCO keypoint results",
    )
    predict.add_argument(
        "--visualize", metavar="DIR", help="also write PNGs of predictions here"
    )

    evaluate = commands.add_parser("evaluate", help="score predictions on a split")
    _data_flags(evaluate, "synthetic")
    _box_flags(evaluate)
    given = evaluate.add_mutually_exclusive_group(required=True)
    given.add_argument("--model", help=MODEL_HELP)
    given.add_argument("--predictions", help="a CSV in the submission format")
    evaluate.add_argument("--split", choices=SPLITS, default="validation")
    evaluate.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True)
    evaluate.add_argument("--batch-size", type=_positive, default=64)
    evaluate.add_argument(
        "--json",
        help="write the metrics here too, and beside it PNGs: <stem>.pck.png (PCK "
        "curve), <stem>.joints.png (error per joint), <stem>.worst.png (the worst "
        "predictions)",
    )


def _export_parser(commands):
    export = commands.add_parser(
        "export",
        help="write a SavedModel, an ONNX file or a LiteRT (TFLite) file",
        description="Export a run's best network. Every format takes uint8 RGB "
        "crops `images` [N, 128, 128, 3] and returns `keypoints` [N, 21, 2] in crop "
        "pixels. onnx and tflite also write <out>.json (what was exported; for "
        "--quantize the sizes and mean joint errors before and after).",
    )
    export.add_argument("--model", required=True, help="a training run folder")
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="savedmodel",
        help="savedmodel (a folder, default), onnx or tflite (one file)",
    )
    export.add_argument(
        "--out", required=True, help="the SavedModel folder or the file to write"
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out"
    )
    export.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the keypoints average the four 90-degree rotations (default off; "
        "a SavedModel's `tta` signature always does)",
    )
    export.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="tflite only: float16 weights, or int8 calibrated on "
        f"{CALIBRATION_CROPS} training crops; scored on the validation split",
    )
    _data_flags(export, what="--quantize (default the run's source): ")


def _bench_parser(commands):
    bench = commands.add_parser(
        "bench",
        help="measure throughput and memory here",
        description="The input pipeline, training per head, prediction and memory "
        "(TensorFlow backend); or, with --train-step, the training step alone on "
        "any Keras backend (KERAS_BACKEND), without TensorFlow; or, with --loader, "
        "the input loader alone (without TensorFlow); or, with --export RUN, the "
        "size and latency of a run's exported files.",
    )
    bench.add_argument("--json", help="also write the figures here")
    bench.add_argument(
        "--export",
        metavar="RUN",
        help="instead: the run's SavedModel, ONNX and LiteRT (float32, float16) "
        "files and its Keras network: size, latency of 1 image and of 32",
    )
    loader = bench.add_argument_group("--loader")
    loader.add_argument(
        "--loader",
        action="store_true",
        help="time the training batches of --data alone (also --batch-size, "
        "--timed-steps, --repeats)",
    )
    _data_flags(loader, "synthetic")
    loader.add_argument(
        "--workers", type=_positive, default=4, help="loader threads (default 4)"
    )
    step = bench.add_argument_group("--train-step")
    step.add_argument(
        "--train-step",
        action="store_true",
        help="time the training step of each head only, on synthetic batches",
    )
    step.add_argument("--batch-size", type=_positive, default=32, help="default 32")
    step.add_argument("--precision", choices=CHOICES["precision"], default="float32")
    step.add_argument(
        "--timed-steps", type=_positive, default=20, help="steps per timed pass"
    )
    step.add_argument("--steps-per-execution", type=_positive, default=1)
    step.add_argument("--jit", choices=CHOICES["jit"], default="auto")
    step.add_argument(
        "--repeats",
        type=_positive,
        default=3,
        help="timed passes; the median is reported (default 3)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="fewer steps: minutes on 2 CPU cores"
    )
    bench.add_argument(
        "--backbone",
        choices=CHOICES["backbone"],
        default="resnet152v2",
        help="default resnet152v2 (the paper's)",
    )
    bench.add_argument(
        "--heads",
        type=_heads,
        default=list(HEADS),
        help=f"comma-separated, some of {','.join(HEADS)} (default all)",
    )


def _app_parsers(commands):
    demo = commands.add_parser(
        "demo",
        help="train, evaluate, predict and export on the built-in synthetic hands",
    )
    _data_flags(demo, "synthetic")
    demo.add_argument("--out", default="demo", help="output folder (default demo/)")
    demo.add_argument(
        "--head", choices=CHOICES["head"], default="offsets", help="default offsets"
    )
    demo.add_argument(
        "--steps",
        type=_positive,
        help="training steps (default: the quick preset's for the head)",
    )

    reproduce = commands.add_parser(
        "reproduce",
        help="train and score the paper's ablations: a table and a chart",
        description="Train and score the paper's configurations (the fc head's crop, "
        "augmentation and TTA ablation, then every head) on a source; writes "
        "reproduce.md, reproduce.png and results.json in --out, the runs in "
        "--out/runs. Again in the same folder: finished rows are skipped and an "
        "interrupted run continues; another --data, --preset or --steps than the "
        "folder's table is refused.",
    )
    _data_flags(reproduce, "synthetic", crop=False)
    reproduce.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="settings of every run (default the table's in --out, else paper)",
    )
    reproduce.add_argument(
        "--steps",
        type=_positive,
        help="training steps per run (default the table's, else the preset's)",
    )
    reproduce.add_argument(
        "--heads",
        type=_heads,
        help="only the rows of these heads, comma-separated, some of "
        f"{','.join(HEADS)} (default all)",
    )
    reproduce.add_argument(
        "--out", help="output folder (default reproduce/, robustness/)"
    )
    reproduce.add_argument(
        "--robustness",
        action="store_true",
        help="instead: which head survives an imperfect crop: every head trained "
        "as is and with --box-jitter, scored on validation crops cut from boxes "
        "moved by 0, 4, 8, 16 and 32 px and scaled by 1 and 1.25; writes "
        "robustness.md, robustness.png and robustness.json",
    )
    reproduce.add_argument(
        "--box-jitter",
        type=_pair,
        metavar="PX,S",
        help="with --robustness: the jitter of the jittered runs (default 32,1.25)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hjr", description="2D hand-joint recognition: data, training, export."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log lines too (or set HJR_VERBOSE=1)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    prepare = commands.add_parser(
        "prepare", help="prepare a source into the data dir (done on first use anyway)"
    )
    _data_flags(prepare, "synthetic")
    browse = commands.add_parser(
        "browse", help="write the network's input crops as PNGs"
    )
    _data_flags(browse, "synthetic")
    _box_flags(browse)
    browse.add_argument("--split", choices=SPLITS, default="train")
    browse.add_argument(
        "--augment", action="store_true", help="apply the training augmentation"
    )
    browse.add_argument(
        "--max-angle",
        type=float,
        default=0.0,
        help="with --augment: extra rotation in [-A, A] degrees",
    )
    browse.add_argument(
        "--flip", action="store_true", help="with --augment: mirror half the crops"
    )
    browse.add_argument("--num", type=_positive, default=16, help="samples to write")
    browse.add_argument("--seed", type=int, default=0, help="augmentation seed")
    browse.add_argument("--out", required=True, help="output folder")
    _train_parser(commands)
    _predict_parsers(commands)
    _export_parser(commands)
    _bench_parser(commands)
    _app_parsers(commands)
    for command in commands.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS
        )
    return parser


def _train(args, verbose):
    from hjr import runs

    names = [*SETTINGS, *HEAD_SETTINGS]
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.resume:
        run_dir = args.resume
        if args.out and os.path.realpath(args.out) != os.path.realpath(run_dir):
            raise UserError(f"a resumed run stays in {run_dir}", "out", args.out)
    elif "head" not in given:
        raise UserError(f"--head is required: one of {', '.join(HEADS)}")
    else:
        run_dir = args.out or os.path.join(
            os.environ.get("HJR_RUNS_DIR", "runs"), given["head"]
        )
    conf = runs.run_config(run_dir, args.preset, given, bool(args.resume))
    start_tensorflow(verbose)
    from hjr.training.train import train

    train(conf, run_dir, bool(args.resume), args.dry_run, args.data_dir)


def _prepare(args, verbose):
    from data_pipeline.sources import parse_source
    from data_pipeline.store import folder_for, prepare

    source = parse_source(args.data)
    info = prepare(source, args.crop, args.data_dir)
    sizes = ", ".join(f"{k} {v}" for k, v in info["splits"].items())
    folder = folder_for(source, args.crop, args.data_dir)
    how = "hand box" if source.kind == "coco" else args.crop
    print(f"hjr: {source} ({how} crops) in {folder}: {sizes}")


def _browse(args, verbose):
    from data_pipeline.sources import parse_source

    start_tensorflow(verbose)
    from hjr.apps.browse import browse

    browse(
        parse_source(args.data),
        args.split,
        args.out,
        num=args.num,
        seed=args.seed,
        augmented=args.augment,
        crop=args.crop,
        data_dir=args.data_dir,
        augment_conf={"max_angle": args.max_angle, "flip": args.flip},
        box=_box(args),
    )


def _predict(args, verbose):
    from pathlib import Path

    from data_pipeline.sources import parse_source

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist", "out", out)
    source = parse_source(args.data)
    start_tensorflow(verbose)
    from hjr.inference.predict import predict

    where = dict(crop=args.crop, data_dir=args.data_dir, box=_box(args))
    visualize = Path(args.visualize) if args.visualize else None
    ids, _, _ = predict(
        args.model,
        source,
        args.split,
        args.tta,
        args.batch_size,
        out,
        visualize,
        **where,
    )
    tta = "with" if args.tta else "no"
    print(f"hjr: wrote {len(ids)} predictions ({tta} TTA) to {out}")


def _evaluate(args, verbose):
    from data_pipeline.sources import parse_source

    source = parse_source(args.data)
    start_tensorflow(verbose)
    from hjr.inference import evaluate

    result, paths = evaluate.evaluate_split(
        source,
        args.split,
        args.model,
        args.predictions,
        args.tta,
        args.batch_size,
        args.crop,
        args.data_dir,
        args.json,
        _box(args),
    )
    print(evaluate.table(result))
    if result.get("share_hidden") is None:
        print(f"hjr: {source} has no joint visibility: no visible/hidden figures")
    if paths:
        print(f"hjr: wrote {', '.join(str(p) for p in paths)}")


def _export(args, verbose):
    from hjr.inference.runtimes import check_out, info_path

    check_out(args.out, args.format, args.overwrite, args.quantize)
    _need_tensorflow("hjr export (its converters are TensorFlow's)")
    start_tensorflow(verbose)
    from hjr.inference.export import export

    out = export(
        args.model,
        args.out,
        args.tta,
        args.format,
        args.quantize,
        args.overwrite,
        args.data,
        args.crop,
        args.data_dir,
        verbose,
        log=print,
    )
    with_tta = "with" if args.tta else "without"
    if args.format == "savedmodel":
        print(f"hjr: wrote the SavedModel {out} (serving_default {with_tta} TTA)")
        return
    info = json.loads(info_path(out).read_text())
    print(
        f"hjr: wrote {out} ({args.format}, {info['size_bytes'] / 2**20:.2f} MiB, "
        f"{with_tta} TTA) and {info_path(out).name}"
    )
    report = info.get("quantization")
    if report:
        mib = {k: report[f"{k}_bytes"] / 2**20 for k in ("float32", "quantized")}
        line = (
            f"hjr: {report['quantize']}: {mib['float32']:.2f} -> "
            f"{mib['quantized']:.2f} MiB"
        )
        if "quantized_mean_joint_error_px" in report:
            line += (
                f"; mean joint error on {report['validation_crops']} validation "
                f"crops {report['float32_mean_joint_error_px']:.3f} -> "
                f"{report['quantized_mean_joint_error_px']:.3f} px"
            )
        print(line)


def _bench(args, verbose):
    if args.json and not os.path.isdir(os.path.dirname(args.json) or "."):
        raise UserError("its folder does not exist", "json", args.json)
    modes = [m for m in ("export", "train_step", "loader") if getattr(args, m)]
    if len(modes) > 1:
        flags = " and ".join("--" + m.replace("_", "-") for m in modes)
        raise UserError(f"{flags}: give one of them")
    if args.loader:
        from data_pipeline.sources import parse_source
        from hjr.apps.bench_loader import bench_loader

        source = parse_source(args.data)
        result = bench_loader(
            source,
            crop=args.crop,
            data_dir=args.data_dir,
            batch_size=args.batch_size,
            timed_steps=args.timed_steps,
            repeats=args.repeats,
            workers=args.workers,
        )
        _print_json(result, args.json)
        return
    if args.train_step:  # on any Keras backend, without TensorFlow
        from hjr.apps.bench_step import bench_train_step

        result = bench_train_step(
            args.backbone,
            args.heads,
            args.batch_size,
            args.precision,
            args.timed_steps,
            args.steps_per_execution,
            args.jit,
            args.repeats,
        )
        _print_json(result, args.json)
        return
    _need_tensorflow("hjr bench (but --train-step and --loader)")
    start_tensorflow(verbose)
    if args.export:
        from hjr.apps.bench_formats import bench_export

        _print_json(bench_export(args.export, args.quick), args.json)
        return
    from hjr.apps import bench

    print(bench.table(bench.bench(args.quick, args.backbone, args.heads, args.json)))
    if args.json:
        print(f"hjr bench: figures in {args.json}")


def _need_tensorflow(what):
    from hjr.quiet import has_tensorflow

    if not has_tensorflow():
        raise UserError(f"{what} needs TensorFlow: pip install tensorflow")


def _print_json(result, path):
    from data_pipeline.files import atomic_path

    text = json.dumps(result, indent=2)
    print(text)
    if path:
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n")


def _demo(args, verbose):
    start_tensorflow(verbose)
    from hjr.apps.demo import demo

    demo(args.out, args.data, args.head, args.steps, args.crop, args.data_dir)


def _reproduce(args, verbose):
    start_tensorflow(verbose)
    from hjr.apps.reproduce import reproduce

    if args.robustness:
        from hjr.apps.robustness import robustness

        out = args.out or "robustness"
        where = (args.preset, args.steps, args.data_dir, args.heads, args.box_jitter)
        robustness(out, args.data, *where)
        return
    if args.box_jitter is not None:
        raise UserError("needs --robustness", "box_jitter", args.box_jitter)
    out = args.out or "reproduce"
    reproduce(out, args.data, args.preset, args.steps, args.data_dir, args.heads)


HANDLERS = {
    "prepare": _prepare,
    "browse": _browse,
    "train": _train,
    "predict": _predict,
    "evaluate": _evaluate,
    "export": _export,
    "bench": _bench,
    "demo": _demo,
    "reproduce": _reproduce,
}


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad flag (its line is printed)
        return done.code
    try:
        HANDLERS[args.command](args, args.verbose or verbose_from_env())
    except UserError as error:
        print(f"hjr: error: {flag_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # an unreadable input or an unwritable output
        where = f"{error.filename}: " if error.filename else ""
        print(f"hjr: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hjr: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
