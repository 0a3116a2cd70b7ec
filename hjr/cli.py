"""The `hjr` command line: a thin layer over the Python API."""

import argparse
import os
import sys

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
    train.add_argument("--out", default=None, help="run folder (default runs/<head>)")
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
    return parser


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
    return train(conf, args.out or f"runs/{conf['head']}", dry_run=args.dry_run)


def _run(args):
    if args.command == "train":
        return _train(args)
    from data_pipeline.sources import parse_source

    source = parse_source(args.data)
    if args.command == "prepare":
        from data_pipeline.sources import prepare

        builder = prepare(source, args.crop, args.data_dir)
        sizes = ", ".join(
            f"{k} {v.num_examples}" for k, v in builder.info.splits.items()
        )
        print(f"hjr: {source} ({args.crop} crops) in {builder.data_dir}: {sizes}")
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
    try:
        _run(args)
    except UserError as error:
        print(f"hjr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hjr: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
