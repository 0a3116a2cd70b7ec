"""`hjr predict`: a split's keypoints as a Kaggle submission CSV or COCO keypoint
results, and pictures; a video's hands, tracked or detected, as COCO results per
frame and an annotated video."""

from hjr.cli.flags import BOXES, DATA, WITH_VIDEO, Flag, box, declared

HELP = "write a Kaggle submission CSV or COCO keypoint results"
FLAGS = {
    **declared(["model"], model={"required": True}),
    **declared(DATA, data=WITH_VIDEO),
    **declared(BOXES),
    **declared(["split", "tta", "batch_size"], split={"default": "test"}),
    "out": Flag(
        "the CSV to write; for a coco, images or video source a .json: COCO "
        "keypoint results with scores",
        required=True,
        metavar="PATH",
    ),
    "visualize": Flag(
        "also draw the predictions: for a coco or images source each original image "
        "once with its hands, in this folder; for a video source the video, to this "
        "file (.mp4, .avi); else the first 16 crops, in this folder",
        metavar="PATH",
    ),
}


def check(args):
    from data_pipeline.files import check_writable
    from data_pipeline.sources import parse_source

    box(args)
    check_writable(args.out, "the predictions", folder_must_exist=True)
    source = parse_source(args.data)
    if source.kind == "video":
        _check_video(args, source)
    elif args.visualize:
        check_writable(args.visualize, "the pictures")


def _check_video(args, source):
    """A video source: its own outputs, and no flag that reads splits."""
    from pathlib import Path

    from data_pipeline.errors import UserError
    from data_pipeline.files import check_writable
    from data_pipeline.video import VIDEO_SUFFIXES, video_info
    from hjr.inference.track import check_box

    for key in ("shift", "scale", "box_seed"):
        if getattr(args, key) != FLAGS[key].default:
            raise UserError("not with a video source", key, getattr(args, key))
    if Path(args.out).suffix.lower() != ".json":
        raise UserError(
            "a video's hands are written as COCO results: a .json", "out", args.out
        )
    if args.visualize:
        if Path(args.visualize).suffix.lower() not in VIDEO_SUFFIXES:
            raise UserError(
                f"for a video source a video file ({', '.join(VIDEO_SUFFIXES)})",
                "visualize",
                args.visualize,
            )
        check_writable(args.visualize, "the annotated video", folder_must_exist=True)
    info = video_info(source.path)
    if source.options.get("box") is not None:
        check_box(source.options["box"], info)


def run(args, verbose):
    from pathlib import Path

    from data_pipeline.sources import parse_source
    from hjr.quiet import start_tensorflow

    source = parse_source(args.data)
    start_tensorflow(verbose)
    if source.kind == "video":
        from hjr.inference.track import predict_video

        predict_video(
            args.model, source, args.out, args.visualize, args.tta, args.data_dir
        )
        return
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
