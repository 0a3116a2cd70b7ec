"""`hjr reproduce`: the paper's ablation table, or (--robustness) which head
survives an imperfect crop."""

from hjr.cli.flags import SWITCH, Flag, declared

HELP = "train and score the paper's ablations: a table and a chart"
DESCRIPTION = (
    "Train and score the paper's configurations (the fc head's crop, augmentation "
    "and TTA ablation, then every head) on a source; writes reproduce.md, "
    "reproduce.png and results.json in --out, the runs in --out/runs. Again in the "
    "same folder: finished rows are skipped and an interrupted run continues; "
    "another --data, --preset or --steps than the folder's table is refused."
)
FLAGS = {
    **declared(["data", "data_dir"]),
    **declared(
        ["preset", "steps", "heads", "box_jitter", "seeds"],
        preset={"default": None, "default_text": "the table's in --out, else paper"},
        steps={"default": None, "default_text": "the table's, else the preset's"},
        heads={"default": None},
        box_jitter={
            "default": None,
            "default_text": "32,1.25",
            "needs": ("robustness",),
            "help": "with --robustness: the jittered runs' box jitter, PX,S",
        },
        seeds={
            "default_text": "the table's in --out, else 2",
            "needs": ("robustness",),
        },
    ),
    "out": Flag(
        "the output folder", metavar="DIR", default_text="reproduce/, robustness/"
    ),
    "robustness": Flag(
        "instead: which head survives an imperfect crop: every head trained as is "
        "and with --box-jitter, with --seeds seeds each, scored on validation crops "
        "cut from boxes moved by 0, 4, 8, 16 and 32 px and scaled by 1 and 1.25; "
        "writes robustness.md, robustness.png and robustness.json",
        kind=SWITCH,
    ),
}


def check(args):
    from data_pipeline.files import check_writable
    from hjr.apps.folders import check_table

    args.out = args.out or ("robustness" if args.robustness else "reproduce")
    given = dict(data=args.data, preset=args.preset, steps=args.steps)
    if args.robustness:
        given.update(box_jitter=args.box_jitter, seeds=args.seeds)
    check_table(args.out, args.robustness, **given)
    check_writable(args.out, "the table's folder")


def run(args, verbose):
    from hjr.quiet import start_tensorflow

    start_tensorflow(verbose)
    if args.robustness:
        from hjr.apps.robustness import robustness

        robustness(
            args.out,
            args.data,
            preset=args.preset,
            steps=args.steps,
            data_dir=args.data_dir,
            heads=args.heads,
            jitter=args.box_jitter,
            seeds=args.seeds,
        )
        return
    from hjr.apps.reproduce import reproduce

    reproduce(args.out, args.data, args.preset, args.steps, args.data_dir, args.heads)
