"""`hjr demo`: train, evaluate, predict and export one head on the synthetic hands."""

from hjr.cli.flags import DATA, Flag, declared

HELP = "train, evaluate, predict and export on the built-in synthetic hands"
FLAGS = {
    **declared(DATA),
    "out": Flag("the demo's folder", default="demo", metavar="DIR"),
    **declared(
        ["head", "steps"],
        head={"default": "offsets"},
        steps={"default": None, "default_text": "the quick preset's for the head"},
    ),
}


def check(args):
    from pathlib import Path

    from data_pipeline.files import check_writable
    from hjr.apps.folders import demo_config

    demo_config(Path(args.out), args.data, args.head, args.steps, args.crop)
    check_writable(args.out, "the demo's folder")


def run(args, verbose):
    from hjr.quiet import start_tensorflow

    start_tensorflow(verbose)
    from hjr.apps.demo import demo

    demo(args.out, args.data, args.head, args.steps, args.crop, args.data_dir)
