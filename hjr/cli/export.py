"""`hjr export`: a run's best network as a SavedModel, an ONNX or a LiteRT file."""

import json

from hjr.cli.flags import DATA, SWITCH, Flag, declared, existing_model
from hjr.config import CALIBRATION_CROPS, EXPORT_FORMATS, QUANTIZATIONS

HELP = "write a SavedModel, an ONNX file or a LiteRT (TFLite) file"
DESCRIPTION = (
    "Export a run's best network. Every format takes uint8 RGB crops `images` "
    "[N, 128, 128, 3] and returns `keypoints` [N, 21, 2] in crop pixels. onnx and "
    "tflite also write <out>.json (what was exported; for --quantize the sizes and "
    "mean joint errors before and after)."
)
_WITH_QUANTIZE = {"needs": ("quantize",)}
FLAGS = {
    "model": Flag(
        "a training run folder", required=True, check=existing_model, metavar="RUN"
    ),
    "format": Flag(
        "savedmodel (a folder), onnx or tflite (one file)",
        choices=EXPORT_FORMATS,
        default="savedmodel",
    ),
    "out": Flag(
        "the SavedModel folder or the file to write", required=True, metavar="PATH"
    ),
    "overwrite": Flag("replace an existing --out (an earlier export)", kind=SWITCH),
    # Served models are timed without TTA: the export's graph runs it only if asked.
    **declared(["tta"], tta={"default": False}),
    "quantize": Flag(
        "tflite only: float16 weights, or int8 calibrated on "
        f"{CALIBRATION_CROPS} training crops; scored on the validation split",
        choices=QUANTIZATIONS,
    ),
    **declared(
        DATA,
        data={"default": None, "default_text": "the run's source", **_WITH_QUANTIZE},
        crop=_WITH_QUANTIZE,
        data_dir=_WITH_QUANTIZE,
    ),
}


def check(args):
    from data_pipeline.files import check_writable
    from hjr.inference.runtimes import check_out
    from hjr.quiet import need_tensorflow

    check_out(args.out, args.format, args.overwrite, args.quantize)
    check_writable(args.out, "the export")
    need_tensorflow("hjr export (its converters are TensorFlow's)")


def run(args, verbose):
    from hjr.inference.runtimes import info_path
    from hjr.quiet import start_tensorflow

    start_tensorflow(verbose)
    from hjr.inference.export import export

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
    info = json.loads(info_path(out).read_text())
    print(
        f"hjr: wrote {out} ({args.format}, {info['size_bytes'] / 2**20:.2f} MiB, "
        f"{with_tta} TTA) and {info_path(out).name}"
    )
    report = info.get("quantization")
    if report:
        mib = {k: report[f"{k}_bytes"] / 2**20 for k in ("float32", "quantized")}
        line = (
            f"hjr: {report['quantize']}: {mib['float32']:.2f} -> "
            f"{mib['quantized']:.2f} MiB"
        )
        if "quantized_mean_joint_error_px" in report:
            line += (
                f"; mean joint error on {report['validation_crops']} validation "
                f"crops {report['float32_mean_joint_error_px']:.3f} -> "
                f"{report['quantized_mean_joint_error_px']:.3f} px"
            )
        print(line)
