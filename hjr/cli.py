"""The `hjr` command line: a thin layer over the Python API."""

import argparse
import logging
import os
import sys

import numpy as np

from data_pipeline.crop import CROPS
from data_pipeline.errors import UserError
from data_pipeline.sources import SPLITS

DATA_HELP = (
    "synthetic (built in, default), a folder with the competition's training.h5/"
    "testing.h5, or a folder with RHD_published_v2/; options after a colon, e.g. "
    "synthetic:train=2000,test=200 or DIR:validation=480"
)


def _positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number, got {text}"
        )
    return value


def _add_data_flags(parser):
    parser.add_argument("--data", default="synthetic", help=DATA_HELP)
    parser.add_argument(
        "--crop",
        choices=CROPS,
        default="biased",
        help="crop of the train and validation splits (default biased)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where prepared sources live (default $HJR_DATA_DIR, "
        "else ~/.cache/hjr/datasets)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hjr", description="2D hand-joint recognition: data, training, export."
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
    browse.add_argument("--num", type=_positive, default=16, help="samples to write")
    browse.add_argument("--seed", type=int, default=0, help="augmentation seed")
    browse.add_argument("--out", required=True, help="output folder")
    train = commands.add_parser("train", help="train a model")
    _add_data_flags(train)
    train.add_argument("--head", help="fc, classification or scoremap")
    train.add_argument("--preset", default=None, help="paper (default) or quick")
    train.add_argument(
        "--backbone",
        help="resnet152v2 (paper), resnet152, resnet50, "
        "resnet101, resnet50v2, resnet101v2 or tiny",
    )
    train.add_argument("--weights", help="imagenet, none, or a weights file")
    train.add_argument("--steps", type=_positive)
    train.add_argument("--batch-size", type=_positive)
    train.add_argument("--lr", type=float)
    train.add_argument("--seed", type=int)
    train.add_argument("--eval-every", type=_positive, help="steps between validations")
    train.add_argument(
        "--no-augment", action="store_true", help="train without augmentation"
    )
    train.add_argument(
        "--max-angle",
        type=float,
        help="extra random rotation in [-A, A] degrees (off in the paper)",
    )
    train.add_argument(
        "--out",
        default=None,
        help="run folder (default $HJR_RUNS_DIR/<head>, else runs/<head>)",
    )
    train.add_argument(
        "--strategy", help="auto, one-device, mirrored, multi-worker, tpu"
    )
    train.add_argument("--precision", help="float32, mixed_float16, mixed_bfloat16")
    train.add_argument("--jit", choices=("auto", "on", "off"))
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run")
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="build the model, print its summary and exit",
    )
    _add_model_commands(commands)
    return parser


def _add_model_commands(commands):
    predict = commands.add_parser("predict", help="write a Kaggle submission CSV")
    _add_data_flags(predict)
    predict.add_argument(
        "--model", required=True, help="a training run folder or an hjr export"
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
    given.add_argument("--model", help="a training run folder or an hjr export")
    given.add_argument("--predictions", help="a CSV in the submission format")
    evaluate.add_argument("--split", choices=SPLITS, default="validation")
    evaluate.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True)
    evaluate.add_argument("--batch-size", type=_positive, default=64)
    evaluate.add_argument("--json", help="write the metrics here too (and a PCK PNG)")

    export = commands.add_parser("export", help="write a SavedModel for TF Serving")
    export.add_argument("--model", required=True, help="a training run folder")
    export.add_argument("--out", required=True, help="the SavedModel folder to write")
    export.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="serving_default averages the four 90-degree rotations (default off; "
        "the `tta` signature always does)",
    )

    bench = commands.add_parser("bench", help="measure throughput and memory here")
    bench.add_argument("--json", help="also write the figures here")
    bench.add_argument(
        "--quick", action="store_true", help="fewer steps: a few minutes on 2 CPU cores"
    )
    bench.add_argument(
        "--backbone", default="resnet152v2", help="default resnet152v2 (the paper's)"
    )
    bench.add_argument(
        "--heads",
        default="fc,classification,scoremap",
        help="comma-separated (default all three)",
    )

    demo = commands.add_parser(
        "demo",
        help="train, evaluate, predict and export on the built-in synthetic hands",
    )
    _add_data_flags(demo)
    demo.add_argument("--out", default="demo", help="output folder (default demo/)")
    demo.add_argument(
        "--head", default="fc", help="fc (default), classification, scoremap"
    )
    demo.add_argument("--steps", type=_positive, help="training steps (default 2400)")


TRAIN_KEYS = (
    "head",
    "backbone",
    "weights",
    "steps",
    "batch_size",
    "lr",
    "seed",
    "eval_every",
    "strategy",
    "precision",
    "jit",
)


def _train(args):
    from .config import PRESETS, load_config, resolve
    from .train import train

    given = {k: getattr(args, k) for k in TRAIN_KEYS if getattr(args, k) is not None}
    if args.data != "synthetic" or args.crop != "biased":
        given.update(data=args.data, crop=args.crop)
    # Not configuration keys that resolve() takes: data_dir is where this machine
    # keeps prepared data, and resolve() ignores None values.
    extra = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.no_augment:
        extra["augment"] = None
    if args.resume:
        given.update(extra)
        conf = load_config(args.resume)
        for key, value in given.items():
            if key not in ("steps", "data_dir") and conf.get(key) != value:
                flag = "--" + key.replace("_", "-")
                raise UserError(
                    f"--resume {args.resume}: {flag} {value} conflicts with the run's "
                    f"{key} {conf.get(key)!r}"
                )
        conf.update(given)
        return train(conf, args.resume, resume=True)
    if args.preset and args.preset not in PRESETS:
        raise UserError(f"--preset {args.preset}: expected one of {', '.join(PRESETS)}")
    if "head" not in given:
        raise UserError("--head is required: fc, classification or scoremap")
    conf = {**resolve(args.preset or "paper", given), **extra}
    if args.max_angle is not None:
        conf["augment"] = dict(conf["augment"] or {}, max_angle=args.max_angle)
    out = args.out or os.path.join(os.environ.get("HJR_RUNS_DIR", "runs"), conf["head"])
    return train(conf, out, dry_run=args.dry_run)


def _predict(args, source):
    from pathlib import Path

    from .predict import predict

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
    from data_pipeline.pipeline import is_labelled, make_dataset, open_split

    from . import evaluate
    from .predict import predict

    builder, count = open_split(source, args.split, args.crop, args.data_dir)
    if not is_labelled(builder, args.split):
        raise UserError(f"--split {args.split}: {source} has no labels for it")
    if args.model:
        _, predictions, labels = predict(
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
        labels = {}
        for batch in make_dataset(
            source, args.split, 256, crop=args.crop, data_dir=args.data_dir
        ):
            for i, kp in zip(batch["id"].numpy(), batch["keypoints"].numpy()):
                labels[int(i)] = kp
        if sorted(ids.tolist()) != sorted(labels):
            raise UserError(
                f"--predictions {args.predictions}: {len(ids)} rows with Ids that are "
                f"not the {count} Ids of the {args.split} split"
            )
        labels = np.stack([labels[int(i)] for i in ids])
    result = evaluate.scores(predictions, labels)
    try:  # the mean training keypoints; the split's own mean where there is none
        from .train import mean_keypoints

        mean = mean_keypoints(source, args.data_dir, args.crop)[None]
    except UserError:
        mean = labels.mean(axis=0, keepdims=True)
    result["mean_predictor_kaggle_mse"] = evaluate.scores(
        np.broadcast_to(mean, labels.shape), labels
    )["kaggle_mse"]
    print(evaluate.table(result))
    if args.json:
        evaluate.write_report(args.json, result, predictions, labels)


def _bench(args):
    from .backbones import BACKBONES
    from .bench import bench, table
    from .heads import HEADS

    heads = [h for h in args.heads.split(",") if h]
    unknown = [h for h in heads if h not in HEADS]
    if unknown or not heads:
        raise UserError(f"--heads {args.heads}: expected some of {', '.join(HEADS)}")
    if args.backbone not in BACKBONES:
        raise UserError(
            f"--backbone {args.backbone}: expected one of {', '.join(BACKBONES)}"
        )
    if args.json and not os.path.isdir(os.path.dirname(args.json) or "."):
        raise UserError(f"--json {args.json}: its folder does not exist")
    result = bench(args.quick, args.backbone, heads, args.json)
    print(table(result))
    if args.json:
        print(f"hjr bench: figures in {args.json}")


def _run(args):
    if args.command == "train":
        return _train(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "export":
        from .export import export

        out = export(args.model, args.out, args.tta)
        with_tta = "with" if args.tta else "without"
        print(f"hjr: wrote the SavedModel {out} (serving_default {with_tta} TTA)")
        return None
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
        from .demo import demo

        demo(args.out, args.data, args.head, args.steps, args.crop, args.data_dir)
    elif args.command == "browse":
        from .browse import browse

        browse(
            source,
            args.split,
            args.out,
            num=args.num,
            seed=args.seed,
            augmented=args.augment,
            crop=args.crop,
            data_dir=args.data_dir,
            augment_conf={"max_angle": args.max_angle},
        )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow Datasets logs its internals (custom configs, deprecations) as
    # absl warnings: nothing a user can act on.
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        _run(args)
    except UserError as error:
        print(f"hjr: error: {error}", file=sys.stderr)
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
