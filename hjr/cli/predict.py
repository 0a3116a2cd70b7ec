"""`hjr predict`: a split's keypoints as a Kaggle submission CSV or COCO keypoint
results, and pictures."""

from hjr.cli.flags import BOXES, DATA, Flag, box, declared

HELP = "write a Kaggle submission CSV or COCO keypoint results"
FLAGS = {
    **declared(["model"], model={"required": True}),
    **declared(DATA),
    **declared(BOXES),
    **declared(["split", "tta", "batch_size"], split={"default": "test"}),
    "out": Flag(
        "the CSV to write; for a coco source a .json: COCO keypoint results",
        required=True,
        metavar="PATH",
    ),
    "visualize": Flag("also write PNGs of the predictions here", metavar="DIR"),
}


def check(args):
    from data_pipeline.files import check_writable

    box(args)
    check_writable(args.out, "the predictions", folder_must_exist=True)
    if args.visualize:
        check_writable(args.visualize, "the pictures")


def run(args, verbose):
    from pathlib import Path

    from data_pipeline.sources import parse_source
    from hjr.quiet import start_tensorflow

    source = parse_source(args.data)
    start_tensorflow(verbose)
    from hjr.inference.predict import predict

    ids, _, _ = predict(
        args.model,
        source,
        args.split,
        args.tta,
        args.batch_size,
        Path(args.out),
        Path(args.visualize) if args.visualize else None,
        crop=args.crop,
        data_dir=args.data_dir,
        box=box(args),
    )
    tta = "with" if args.tta else "no"
    print(f"hjr: wrote {len(ids)} predictions ({tta} TTA) to {args.out}")
