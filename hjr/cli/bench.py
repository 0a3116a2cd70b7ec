"""`hjr bench`: throughput, latency and memory on this machine, in four modes."""

from hjr.cli.flags import DATA, SWITCH, Flag, at_least, declared, existing_model

HELP = "measure throughput and memory here"
DESCRIPTION = (
    "The input pipeline, training per head, prediction and memory (TensorFlow "
    "backend); or, with --train-step, the training step alone on any Keras backend "
    "(KERAS_BACKEND), without TensorFlow; or, with --loader, the input loader alone "
    "(without TensorFlow); or, with --export RUN, the size and latency of a run's "
    "exported files; or, with --tracking MODEL, how fast a model tracks a hand "
    "through a video, decoding included."
)
MODES = ("export", "train_step", "loader", "tracking")
_TIMED = {"needs": ("train_step", "loader")}
_REPEATED = {"needs": ("train_step", "loader", "tracking")}
FLAGS = {
    "json": Flag("also write the figures to this JSON file", metavar="PATH"),
    "export": Flag(
        "instead: the run's SavedModel, ONNX and LiteRT (float32, float16) files and "
        "its Keras network: size, latency of 1 image and of 32",
        metavar="RUN",
    ),
    "loader": Flag(
        "instead: the training batches of --data alone, without TensorFlow",
        kind=SWITCH,
    ),
    "tracking": Flag(
        "instead: frames/s of tracking a drawn hand through a 320-px video with this "
        "run or export (an .onnx or .tflite file for speed), without and with the "
        "annotated video, decoding included",
        check=existing_model,
        metavar="MODEL",
    ),
    **declared(
        DATA,
        data={"needs": ("loader",)},
        crop={"needs": ("loader",)},
        data_dir={"needs": ("loader", "tracking")},
    ),
    "workers": Flag(
        "threads making batches ahead",
        type=int,
        default=4,
        check=at_least(1),
        metavar="N",
        needs=("loader",),
    ),
    "train_step": Flag(
        "instead: the training step of each head alone, on synthetic batches, on any "
        "Keras backend",
        kind=SWITCH,
    ),
    **declared(
        ["batch_size", "precision", "steps_per_execution", "jit"],
        batch_size=_TIMED,
        precision={"needs": ("train_step",)},
        steps_per_execution={"needs": ("train_step",)},
        jit={"needs": ("train_step",)},
    ),
    "frames": Flag(
        "frames of the tracked video",
        type=int,
        default=300,
        check=at_least(1),
        metavar="N",
        needs=("tracking",),
    ),
    "timed_steps": Flag(
        "steps (batches) per timed pass",
        type=int,
        default=20,
        check=at_least(1),
        metavar="N",
        **_TIMED,
    ),
    "repeats": Flag(
        "timed passes; the median is reported",
        type=int,
        default=3,
        check=at_least(1),
        metavar="N",
        **_REPEATED,
    ),
    "quick": Flag("fewer steps: minutes on 2 CPU cores", kind=SWITCH),
    **declared(["backbone", "heads"]),
}


def check(args):
    from data_pipeline.errors import UserError
    from data_pipeline.files import check_writable
    from hjr.cli.flags import flag_name

    modes = [m for m in MODES if getattr(args, m)]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(map(flag_name, modes))}: give one of them")
    if args.json:
        check_writable(args.json, "the figures", folder_must_exist=True)
    if not (args.loader or args.train_step or args.tracking):
        from hjr.quiet import need_tensorflow

        need_tensorflow("hjr bench (but --train-step and --loader)")


def run(args, verbose):
    if args.tracking:  # an export needs only its runtime
        from hjr.apps.bench_tracking import bench_tracking
        from hjr.quiet import start_tensorflow

        start_tensorflow(verbose)
        result = bench_tracking(args.tracking, args.frames, args.repeats, args.data_dir)
        _print_json(result, args.json)
        return
    if args.loader:
        from data_pipeline.sources import parse_source
        from hjr.apps.bench_loader import bench_loader

        result = bench_loader(
            parse_source(args.data),
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
    from hjr.quiet import start_tensorflow

    start_tensorflow(verbose)
    if args.export:
        from hjr.apps.bench_formats import bench_export

        _print_json(bench_export(args.export, args.quick), args.json)
        return
    from hjr.apps import bench

    print(bench.table(bench.bench(args.quick, args.backbone, args.heads, args.json)))
    if args.json:
        print(f"hjr bench: figures in {args.json}")


def _print_json(result, path):
    import json

    from data_pipeline.files import write_json

    print(json.dumps(result, indent=2))
    if path:
        write_json(path, result)
