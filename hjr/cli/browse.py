"""`hjr browse`: the network's input crops as PNGs."""

from hjr.cli.flags import (
    BOXES,
    DATA,
    SWITCH,
    WITH_VIDEO,
    Flag,
    at_least,
    box,
    declared,
)
from hjr.quiet import start_tensorflow

HELP = "write the network's input crops as PNGs"
FLAGS = {
    **declared(DATA, data=WITH_VIDEO),
    **declared(BOXES),
    **declared(["split"], split={"default": "train"}),
    "augment": Flag(
        "show the crops as the training augmentation draws them", kind=SWITCH
    ),
    **declared(
        ["max_angle", "flip", "seed"],
        max_angle={"needs": ("augment",)},
        flip={"needs": ("augment",)},
        seed={"needs": ("augment",)},
    ),
    "num": Flag(
        "samples to write", type=int, default=16, check=at_least(1), metavar="N"
    ),
    "out": Flag("the folder to write", required=True, metavar="DIR"),
}


def check(args):
    from data_pipeline.files import check_writable

    box(args)
    check_writable(args.out, "the crops' folder")


def run(args, verbose):
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
        box=box(args),
    )
