"""The `hjr` command line: a thin layer over the Python API.

Flags become the settings of hjr.config (e.g. `--batch-size` is `batch_size`);
every flag with a fixed set of values is checked by argparse, and every other
setting by hjr.config.configure, before TensorFlow starts or any data is read.
Errors about a setting name the flag that gave it.
"""

import argparse
import os
import sys

import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.sources import SPLITS

from hjr.config import (
    CALIBRATION_CROPS,
    CHOICES,
    DEMO_SCHEDULES,
    EXPORT_FORMATS,
    MAP_STRIDES,
    PRESETS,
    QUANTIZATIONS,
    configure,
)
from hjr.core.heads import HEADS
from hjr.quiet import start_tensorflow, verbose_from_env

DATA_HELP = (
    "synthetic (built in, default), a folder with the competition's training.h5/"
    "testing.h5, or a folder with RHD_published_v2/; options after a colon, e.g. "
    "synthetic:train=2000,test=200 or DIR:validation=480"
)
HEAD_HELP = "; ".join(f"{name}: {head.summary}" for name, head in HEADS.items())
# Settings whose flag is not --<key with dashes>.
FLAGS = {"augment": "--no-augment"}


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


def flag_line(error: UserError) -> str:
    """The error's line, the setting named by its flag."""
    if error.key is None:
        return error.message
    flag = FLAGS.get(error.key, "--" + error.key.replace("_", "-"))
    if isinstance(error.value, bool):
        return f"{flag}: {error.message}"
    return error.describe(flag)


def _add_data_flags(parser, given_only=False, crop=True):
    """--data, --crop (unless crop is False), --data-dir; given_only: None where
    not given (train)."""
    parser.add_argument(
        "--data", default=None if given_only else "synthetic", help=DATA_HELP
    )
    if crop:
        parser.add_argument(
            "--crop",
            choices=CHOICES["crop"],
            default=None if given_only else "biased",
            help="crop of the train and validation splits (default biased)",
        )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where prepared sources live (default $HJR_DATA_DIR, "
        "else ~/.cache/hjr/datasets)",
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
    _add_data_flags(prepare)

    browse = commands.add_parser(
        "browse", help="write the network's input crops as PNGs"
    )
    _add_data_flags(browse)
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
        "--flip",
        action="store_true",
        help="with --augment: mirror half the crops left to right",
    )
    browse.add_argument("--num", type=_positive, default=16, help="samples to write")
    browse.add_argument("--seed", type=int, default=0, help="augmentation seed")
    browse.add_argument("--out", required=True, help="output folder")
    _add_train_command(commands)
    _add_model_commands(commands)
    for command in commands.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS
        )
    return parser


def _add_train_command(commands):
    train = commands.add_parser(
        "train",
        help="train a model",
        description="Train a model, or continue one with --resume RUN_DIR. Flags "
        "override the preset's settings; a resumed run takes --steps, --strategy, "
        "--jit, --steps-per-execution and --data-dir, and refuses other settings "
        "that differ from its own.",
    )
    _add_data_flags(train, given_only=True)
    train.add_argument("--head", choices=CHOICES["head"], help=HEAD_HELP)
    train.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="settings to start from (default paper; gpu: the paper's images at "
        "batch 256, bfloat16; see README)",
    )
    train.add_argument(
        "--backbone", choices=CHOICES["backbone"], help="resnet152v2: the paper's"
    )
    train.add_argument("--weights", help="imagenet, none, or a weights file")
    train.add_argument("--optimizer", choices=CHOICES["optimizer"])
    train.add_argument(
        "--beta-2",
        type=float,
        help="adam, nadam: decay of its average of squared gradients (default "
        "0.999)",
    )
    train.add_argument(
        "--weight-decay",
        type=float,
        help="decoupled weight decay of the kernels, times the learning rate "
        "(default 0)",
    )
    train.add_argument("--steps", type=_positive)
    train.add_argument("--batch-size", type=_positive)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument(
        "--warmup-steps", type=int, help="linear learning-rate warm-up, steps"
    )
    train.add_argument("--lr-schedule", choices=CHOICES["lr_schedule"])
    train.add_argument("--seed", type=int)
    train.add_argument("--eval-every", type=_positive, help="steps between validations")
    train.add_argument(
        "--bn-refresh",
        type=int,
        metavar="IMAGES",
        help="before each validation, re-estimate BatchNorm's moving statistics "
        "from this many augmented training crops (0: off)",
    )
    train.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const=False,
        help="train without augmentation",
    )
    train.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mirror half the training crops left to right (off in the paper)",
    )
    train.add_argument(
        "--max-angle",
        type=float,
        help="extra random rotation in [-A, A] degrees (off in the paper)",
    )
    train.add_argument(
        "--map-stride",
        type=int,
        choices=MAP_STRIDES,
        help="map heads: input pixels per map pixel (the paper's: 1)",
    )
    train.add_argument(
        "--integral",
        type=float,
        help="map heads: weight of the soft-argmax joint error (px) in the loss",
    )
    train.add_argument(
        "--out",
        default=None,
        help="run folder (default $HJR_RUNS_DIR/<head>, else runs/<head>)",
    )
    train.add_argument("--strategy", choices=CHOICES["strategy"])
    train.add_argument("--precision", choices=CHOICES["precision"])
    train.add_argument("--jit", choices=CHOICES["jit"], help="XLA (auto: on GPU/TPU)")
    train.add_argument(
        "--steps-per-execution", type=_positive, help="training steps per call"
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run")
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="build the model, print its summary and exit",
    )


def _heads(text):
    heads = [h for h in text.split(",") if h]
    if not heads or any(h not in HEADS for h in heads):
        raise argparse.ArgumentTypeError(
            f"expected some of {', '.join(HEADS)}, comma-separated, got {text}"
        )
    return heads


def _add_model_commands(commands):
    predict = commands.add_parser("predict", help="write a Kaggle submission CSV")
    _add_data_flags(predict)
    predict.add_argument(
        "--model",
        required=True,
        help="a training run folder or an hjr export (SavedModel, .onnx, .tflite)",
    )
    predict.add_argument("--split", choices=SPLITS, default="test")
    predict.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="average over the four 90-degree rotations (default on)",
    )
    predict.add_argument("--batch-size", type=_positive, default=64)
    predict.add_argument("--out", required=True, help="the CSV to write")
    predict.add_argument(
        "--visualize",
        metavar="DIR",
        help="also write PNGs of predictions (and maps) here",
    )

    evaluate = commands.add_parser("evaluate", help="score predictions on a split")
    _add_data_flags(evaluate)
    given = evaluate.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--model",
        help="a training run folder or an hjr export (SavedModel, .onnx, .tflite)",
    )
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
    export.add_argument(
        "--data",
        default=None,
        help="--quantize: the source to calibrate and score on (default the run's)",
    )
    export.add_argument(
        "--crop",
        choices=CHOICES["crop"],
        default="biased",
        help="--quantize: crop of the train and validation splits (default biased)",
    )
    export.add_argument(
        "--data-dir",
        default=None,
        help="--quantize: where prepared sources live (default $HJR_DATA_DIR, "
        "else ~/.cache/hjr/datasets)",
    )

    bench = commands.add_parser(
        "bench",
        help="measure throughput and memory here",
        description="The input pipeline, training per head, prediction and export "
        "latency (TensorFlow backend); or, with --train-step, the training step "
        "alone on any Keras backend (KERAS_BACKEND), without TensorFlow; or, with "
        "--export RUN, the latency of a run's exported files.",
    )
    bench.add_argument("--json", help="also write the figures here")
    bench.add_argument(
        "--export",
        metavar="RUN",
        help="instead: the run's SavedModel, ONNX and LiteRT (float32, float16) "
        "files and its Keras network: size, latency of 1 image and of 32 (median, "
        "p90), as JSON",
    )
    step = bench.add_argument_group("--train-step")
    step.add_argument(
        "--train-step",
        action="store_true",
        help="time the training step of each head only, on synthetic batches",
    )
    step.add_argument("--batch", type=_positive, default=32, help="default 32")
    step.add_argument("--precision", choices=CHOICES["precision"], default="float32")
    step.add_argument(
        "--steps", type=_positive, default=20, help="timed steps (default 20)"
    )
    step.add_argument(
        "--steps-per-execution", type=_positive, default=1, help="default 1"
    )
    step.add_argument("--jit", choices=CHOICES["jit"], default="auto")
    step.add_argument(
        "--repeats",
        type=_positive,
        default=3,
        help="timed passes over the steps; the median is reported (default 3)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="fewer steps: a few minutes on 2 CPU cores"
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

    demo = commands.add_parser(
        "demo",
        help="train, evaluate, predict and export on the built-in synthetic hands",
    )
    _add_data_flags(demo)
    demo.add_argument("--out", default="demo", help="output folder (default demo/)")
    demo.add_argument(
        "--head", choices=CHOICES["head"], default="offsets", help="default offsets"
    )
    demo.add_argument(
        "--steps",
        type=_positive,
        help="training steps (default: {} for the map heads, on the tiny_unet "
        "backbone, the learning rate rising over the first {} to {:g}, then "
        "decaying, Nadam with beta_2 {:g} and weight decay {:g}; {} for fc, on "
        "small); with --steps, the quick preset's learning-rate schedule and "
        "optimizer".format(
            DEMO_SCHEDULES["map heads"]["steps"],
            DEMO_SCHEDULES["map heads"]["warmup_steps"],
            DEMO_SCHEDULES["map heads"]["lr"],
            DEMO_SCHEDULES["map heads"]["beta_2"],
            DEMO_SCHEDULES["map heads"]["weight_decay"],
            DEMO_SCHEDULES["fc"]["steps"],
        ),
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
    _add_data_flags(reproduce, crop=False)
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
        "--out", default="reproduce", help="output folder (default reproduce/)"
    )


TRAIN_KEYS = (
    "head",
    "backbone",
    "weights",
    "optimizer",
    "beta_2",
    "weight_decay",
    "steps",
    "batch_size",
    "lr",
    "warmup_steps",
    "lr_schedule",
    "seed",
    "eval_every",
    "bn_refresh",
    "augment",
    "flip",
    "max_angle",
    "map_stride",
    "integral",
    "data",
    "crop",
    "strategy",
    "precision",
    "jit",
    "steps_per_execution",
)


def _train(args, verbose):
    given = {k: getattr(args, k) for k in TRAIN_KEYS if getattr(args, k) is not None}
    if args.resume:
        run_dir = args.resume
        if args.out and os.path.realpath(args.out) != os.path.realpath(run_dir):
            raise UserError(f"a resumed run stays in {run_dir}", "out", args.out)
    elif "head" not in given:
        raise UserError(f"--head is required: one of {', '.join(HEADS)}")
    else:
        runs = os.environ.get("HJR_RUNS_DIR", "runs")
        run_dir = args.out or os.path.join(runs, given["head"])
    conf = configure(args.preset, given, resume=args.resume)
    start_tensorflow(verbose)
    from hjr.training.train import train

    return train(conf, run_dir, bool(args.resume), args.dry_run, args.data_dir)


def _predict(args, source):
    from pathlib import Path

    from hjr.inference.predict import predict

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    visualize = Path(args.visualize) if args.visualize else None
    ids, _, _ = predict(
        args.model,
        source,
        args.split,
        args.tta,
        args.batch_size,
        out,
        visualize,
        args.crop,
        args.data_dir,
    )
    print(
        f"hjr: wrote {len(ids)} predictions ({'with' if args.tta else 'no'} TTA) "
        f"to {out}"
    )


def _evaluate(args, source):
    from data_pipeline.kaggle_csv import read_keypoints_csv
    from data_pipeline.pipeline import (
        has_visibility,
        is_labelled,
        open_split,
        read_split,
    )

    from hjr.inference import evaluate
    from hjr.inference.predict import predict

    builder, count = open_split(source, args.split, args.crop, args.data_dir)
    if not is_labelled(builder, args.split):
        raise UserError(f"--split {args.split}: {source} has no labels for it")
    if args.model:
        ids, predictions, _ = predict(
            args.model,
            source,
            args.split,
            args.tta,
            args.batch_size,
            crop=args.crop,
            data_dir=args.data_dir,
        )
    else:
        ids, predictions = read_keypoints_csv(args.predictions)
    where = dict(crop=args.crop, data_dir=args.data_dir)
    truth = read_split(source, args.split, ("id", "keypoints", "visible"), **where)
    if sorted(ids.tolist()) != truth["id"].tolist():
        raise UserError(
            f"--predictions {args.predictions}: {len(ids)} rows with Ids that are "
            f"not the {count} Ids of the {args.split} split"
        )
    rows = np.searchsorted(truth["id"], ids)
    labels = truth["keypoints"][rows]
    visible = truth["visible"][rows] if has_visibility(builder) else None
    result = evaluate.scores(predictions, labels, visible)
    try:  # the mean training keypoints; the split's own mean where there is none
        from hjr.training.train import mean_keypoints

        mean = mean_keypoints(source, args.data_dir, args.crop)[None]
    except UserError:
        mean = labels.mean(axis=0, keepdims=True)
    result["mean_predictor_kaggle_mse"] = evaluate.scores(
        np.broadcast_to(mean, labels.shape), labels
    )["kaggle_mse"]
    print(evaluate.table(result))
    if visible is None:
        print(f"hjr: {source} has no joint visibility: no visible/hidden figures")
    if args.json:

        def images(chosen):
            return read_split(source, args.split, ("image",), chosen, **where)["image"]

        paths = evaluate.write_report(
            args.json, result, predictions, labels, ids, visible, images
        )
        print(f"hjr: wrote {', '.join(str(p) for p in paths)}")


def _bench(args):
    if args.json and not os.path.isdir(os.path.dirname(args.json) or "."):
        raise UserError(f"--json {args.json}: its folder does not exist")
    if args.export and args.train_step:
        raise UserError("--export and --train-step: give one of them")
    if args.export:
        import json

        from hjr.apps.bench import bench_export

        result = bench_export(args.export, args.quick, args.json)
        print(json.dumps(result, indent=2))
        return
    if args.train_step:
        return _bench_train_step(args)
    from hjr.apps.bench import bench, table

    result = bench(args.quick, args.backbone, args.heads, args.json)
    print(table(result))
    if args.json:
        print(f"hjr bench: figures in {args.json}")


def _bench_train_step(args):
    import json

    from data_pipeline.files import atomic_path

    from hjr.apps.bench_step import bench_train_step

    result = bench_train_step(
        args.backbone,
        args.heads,
        args.batch,
        args.precision,
        args.steps,
        args.steps_per_execution,
        args.jit,
        args.repeats,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(text + "\n")


def _export(args, verbose):
    from hjr.inference.export import export, info_path

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
    import json

    info = json.loads(info_path(out).read_text())
    print(
        f"hjr: wrote {out} ({args.format}, {info['size_bytes'] / 2**20:.2f} MiB, "
        f"{with_tta} TTA) and {info_path(out).name}"
    )
    report = info.get("quantization")
    if report:
        line = (
            f"hjr: {report['quantize']}: {report['float32_bytes'] / 2**20:.2f} -> "
            f"{report['quantized_bytes'] / 2**20:.2f} MiB"
        )
        if "quantized_mean_joint_error_px" in report:
            line += (
                f"; mean joint error on {report['validation_crops']} validation "
                f"crops {report['float32_mean_joint_error_px']:.3f} -> "
                f"{report['quantized_mean_joint_error_px']:.3f} px"
            )
        print(line)


def _run(args, verbose):
    if args.command == "train":
        return _train(args, verbose)
    if args.command == "export" and args.quantize and args.format != "tflite":
        raise UserError(
            f"--quantize {args.quantize}: only for --format tflite, not {args.format}"
        )
    start_tensorflow(verbose)
    if args.command == "bench":
        return _bench(args)
    if args.command == "export":
        return _export(args, verbose)
    from data_pipeline.sources import parse_source

    source = parse_source(args.data)
    if args.command == "prepare":
        from data_pipeline.sources import prepare

        builder = prepare(source, args.crop, args.data_dir)
        sizes = ", ".join(
            f"{k} {v.num_examples}" for k, v in builder.info.splits.items()
        )
        print(f"hjr: {source} ({args.crop} crops) in {builder.data_dir}: {sizes}")
    elif args.command == "predict":
        _predict(args, source)
    elif args.command == "evaluate":
        _evaluate(args, source)
    elif args.command == "demo":
        from hjr.apps.demo import demo

        demo(args.out, args.data, args.head, args.steps, args.crop, args.data_dir)
    elif args.command == "reproduce":
        from hjr.apps.reproduce import reproduce

        reproduce(
            args.out, args.data, args.preset, args.steps, args.data_dir, args.heads
        )
    elif args.command == "browse":
        from hjr.apps.browse import browse

        browse(
            source,
            args.split,
            args.out,
            num=args.num,
            seed=args.seed,
            augmented=args.augment,
            crop=args.crop,
            data_dir=args.data_dir,
            augment_conf={"max_angle": args.max_angle, "flip": args.flip},
        )


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad flag (its line is printed)
        return done.code
    try:
        _run(args, args.verbose or verbose_from_env())
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
