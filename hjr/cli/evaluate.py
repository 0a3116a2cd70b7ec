"""`hjr evaluate`: scores of a model, or of a submission CSV, on a labelled split."""

from hjr.cli.flags import BOXES, DATA, Flag, box, declared, existing

HELP = "score predictions on a split"
FLAGS = {
    **declared(["model"]),
    "predictions": Flag(
        "instead of --model: a CSV in the submission format",
        check=existing,
        metavar="CSV",
    ),
    **declared(DATA),
    **declared(BOXES),
    **declared(
        ["split", "tta", "batch_size"],
        split={"default": "validation"},
        tta={"needs": ("model",)},
        batch_size={"needs": ("model",)},
    ),
    "json": Flag(
        "write the metrics here too, and beside it PNGs: <stem>.pck.png (PCK "
        "curve), <stem>.joints.png (error per joint), <stem>.worst.png (the worst "
        "predictions)",
        metavar="PATH",
    ),
}


def check(args):
    from data_pipeline.errors import UserError
    from data_pipeline.files import check_writable

    if bool(args.model) == bool(args.predictions):
        raise UserError("give one of --model and --predictions")
    box(args)
    if args.json:
        check_writable(args.json, "the metrics")


def run(args, verbose):
    from data_pipeline.sources import parse_source
    from hjr.quiet import start_tensorflow

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
        box(args),
    )
    print(evaluate.table(result))
    if "hands_missed" in result:
        print(
            f"hjr: {result['hands_missed']} of {result['hands']} labelled hands were "
            f"found by none of the {result['detections']} detections (IoU >= 0.5) "
            "and count in no figure"
        )
    if result.get("share_hidden") is None:
        print(f"hjr: {source} has no joint visibility: no visible/hidden figures")
    if paths:
        print(f"hjr: wrote {', '.join(str(p) for p in paths)}")
