"""`hjr export`: a training run's best network as a SavedModel for TF Serving, an
ONNX file (onnxruntime, TensorRT, OpenVINO) or a LiteRT (TFLite) file for phones.

ONNX and LiteRT (formats "onnx", "tflite"): one file with one input `images` uint8
RGB [N, 128, 128, 3] (any N; preprocessing inside) and one output `keypoints`
float32 [N, 21, 2] in crop pixels, with the 4-rotation TTA where exported with
tta: what the SavedModel's serving_default gives. Written by Keras' own exporters
(`model.export(format="onnx")`, through tf2onnx; `format="litert"`, through the
TFLite converter). The LiteRT file can be quantized: float16 weights, or int8
weights and activations calibrated on training crops. Beside the file,
`<file>.json`: the same information as a SavedModel's hjr.json, its size and,
quantized, the size and the mean joint error on the validation split before and
after (`quantization`).

SavedModel signatures (all take `images` uint8 RGB and return `keypoints` float32
[B, 21, 2], x = column, y = row, pixel i covering [i, i+1)):
- `serving_default`: images [B, 128, 128, 3]; 4-rotation TTA if exported with tta.
- `plain`: the same without TTA; map heads also return `maps` [B, s, s, 21] (s =
  128 / map_stride), the offsets head also `offsets` [B, s, s, 21, 2].
- `tta`: the same with TTA.
- `any_size`: images [B, H, W, 3] of any size, resized bilinearly to 128x128;
  keypoints in the input's pixels (TTA as serving_default).
The folder also holds `hjr.json` (the run's configuration, joint names, TTA); the
SavedModel itself loads with plain TensorFlow, without hjr.
"""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data_pipeline.errors import UserError
from data_pipeline.files import atomic_path, temporary_file, temporary_folder
from data_pipeline.keypoints import CROP_SIZE, JOINT_NAMES
from hjr import runs
from hjr.config import CALIBRATION_CROPS
from hjr.core.codec import joint_scores
from hjr.inference.runtimes import (
    MARKER,
    SUFFIXES,
    check_out,
    info_path,
    is_saved_model,
    open_exported,
)
from hjr.inference.tta import predict_joints
from hjr.quiet import converter_output


def _resized_joints(net, images, size, tta):
    """Keypoints in the pixels of images uint8 [B, H, W, 3] of any size, and their
    scores."""
    shape = tf.shape(images)
    scale = tf.cast(tf.stack([shape[2], shape[1]]), tf.float32) / float(size)
    resized = tf.image.resize(tf.cast(images, tf.float32), [size, size])
    joints = predict_joints(net, resized, tta)
    return {"keypoints": joints["keypoints"] * scale, "scores": joints["scores"]}


def export_network(
    net,
    out,
    conf: dict,
    tta: bool = False,
    fmt: str = "savedmodel",
    overwrite: bool = False,
    quantize: str = None,
    calibration=None,
    validation=None,
    verbose: bool = False,
    log=None,
    crop_rule: dict = None,
) -> Path:
    """Write net (of hjr.core.model.build_model) to `out` in format `fmt` (FORMATS),
    atomically: into a temporary file or folder beside it, then renamed. An
    existing `out` is refused unless `overwrite` (check_out).

    quantize (tflite only): "float16" or "int8"; int8 takes `calibration`, uint8
    crops [N, 128, 128, 3]. With `validation` (crops, keypoints [N, 21, 2]) the
    mean joint error before and after quantization is measured and reported.
    crop_rule: the run's (data_pipeline.crop_rule), kept for tracking."""
    out = check_out(out, fmt, overwrite, quantize)
    if quantize == "int8" and calibration is None:
        raise UserError("int8 needs calibration crops", "quantize", quantize)
    if fmt != "savedmodel":
        return _export_file(
            net, out, conf, tta, fmt, quantize, calibration, validation, verbose, log,
            crop_rule,
        )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    size = CROP_SIZE
    square = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
    any_size = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")

    def plain(images):
        outputs = net(tf.cast(images, tf.float32), training=False)
        outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
        return {**outputs, "scores": joint_scores(outputs, size)}

    archive = keras.export.ExportArchive()
    archive.track(net)
    endpoints = {
        "serving_default": lambda images: predict_joints(net, images, tta),
        "plain": plain,
        "tta": lambda images: predict_joints(net, images, True),
    }
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=[square])
    archive.add_endpoint(
        "any_size",
        lambda images: _resized_joints(net, images, size, tta),
        input_signature=[any_size],
    )
    tmp = temporary_folder(out)
    absl = logging.getLogger("absl")
    level = absl.level
    try:
        archive.write_out(str(tmp), verbose=False)
        absl.setLevel(level)  # saving resets it, and TFDS's notices would come back
        info = {
            "head": conf["head"],
            "backbone": conf["backbone"],
            "input_size": size,
            "tta": bool(tta),
            "signatures": ["serving_default", "plain", "tta", "any_size"],
            "joint_names": list(JOINT_NAMES),
            "config": conf,
            **({"crop_rule": crop_rule} if crop_rule else {}),
        }
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _replace_folder(new: Path, out: Path) -> None:
    """Put folder `new` at `out`; an existing `out` is moved aside first and removed
    only once `new` is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class ServingModel(keras.Model):
    """uint8 crops [N, S, S, 3] -> {"keypoints": float32 [N, 21, 2], "scores":
    float32 [N, 21]}: the SavedModel's serving_default as a Keras model, for
    Keras' exporters."""

    def __init__(self, net, tta: bool):
        super().__init__(name="hjr_serving")
        self.net, self.tta = net, bool(tta)

    def call(self, images):
        return predict_joints(self.net, images, self.tta)


def _serving(net, size: int, tta: bool):
    """(ServingModel built on one crop, its input signature)."""
    model = ServingModel(net, tta)
    model(np.zeros((1, size, size, 3), np.uint8))  # builds it: export needs that
    return model, [tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")]


def _convert(model, spec, path: Path, fmt: str, quantize=None, calibration=None):
    """Keras' own exporter: ONNX through tf2onnx, LiteRT through the TFLite
    converter (float32 unless quantize; builtin LiteRT ops only, so that the plain
    LiteRT runtime runs the file without TensorFlow's Flex delegate). int8: see
    _convert_int8."""
    if fmt == "onnx":
        model.export(str(path), format="onnx", input_signature=spec, verbose=False)
        return
    if quantize == "int8":
        path.write_bytes(_convert_int8(model, spec, calibration))
        return
    options = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize == "float16":
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
        options["target_spec"]["supported_types"] = [tf.float16]
    model.export(
        str(path), format="litert", input_signature=spec, verbose=False, **options
    )


def _convert_int8(model, spec, calibration) -> bytes:
    """The LiteRT file with int8 weights and activations, calibrated on crops
    uint8 [N, S, S, 3], except the keypoint decoding (soft-argmax, voting: sums
    and divisions that int8 would round to whole pixels, or divide by a zero
    mass) and the TTA arithmetic, which stay float32: the TFLite converter's
    selective quantization (tf.lite.experimental.QuantizationDebugger with
    denylisted nodes; Keras' exporter has no such option). The SavedModel it
    converts is the one Keras' LiteRT exporter writes."""
    from ai_edge_litert.interpreter import Interpreter

    crops = np.asarray(calibration, np.uint8)

    def representative():
        for crop in crops:
            yield [crop[None]]

    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve", lambda images: model(images), input_signature=spec
        )
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative
        )
        calibrated = Interpreter(model_content=debugger.calibrated_model)
        net = model.net.name
        keep = [
            t["name"]
            for t in calibrated.get_tensor_details()
            if "/keypoints" in t["name"] or f"/{net}" not in t["name"]
        ]
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=keep
        )
        return debugger.get_nondebug_quantized_model()


def _temp_file(out: Path) -> Path:
    """An empty temporary file beside `out`, with its suffix (the LiteRT exporter
    wants `.tflite`)."""
    return temporary_file(out, out.suffix)


def _export_file(
    net, out, conf, tta, fmt, quantize, calibration, validation, verbose, log, rule
):
    log = log or (lambda line: None)
    size = CROP_SIZE
    out.parent.mkdir(parents=True, exist_ok=True)
    model, spec = _serving(net, size, tta)
    temps = [_temp_file(out)]
    try:
        what = {"onnx": "ONNX (tf2onnx)", "tflite": "LiteRT (TFLite converter)"}[fmt]
        if quantize:
            log(f"hjr export: converting to {what}, float32 then {quantize}")
        else:
            log(f"hjr export: converting to {what}")
        report = None
        if quantize is None:
            with converter_output(verbose):
                _convert(model, spec, temps[0], fmt)
        else:
            temps.append(_temp_file(out))
            with converter_output(verbose):
                _convert(model, spec, temps[1], fmt)
                _convert(model, spec, temps[0], fmt, quantize, calibration)
            report = {
                "quantize": quantize,
                "float32_bytes": temps[1].stat().st_size,
                "quantized_bytes": temps[0].stat().st_size,
            }
            if quantize == "int8":
                report["calibration_crops"] = int(len(calibration))
            if validation is not None:
                images, labels = validation
                log(f"hjr export: mean joint error on {len(images)} validation crops")
                for key, path in (("float32", temps[1]), ("quantized", temps[0])):
                    predicted = open_exported(path).keypoints(images)
                    error = np.linalg.norm(predicted - labels, axis=-1).mean()
                    report[f"{key}_mean_joint_error_px"] = round(float(error), 4)
                report["validation_crops"] = int(len(images))
        info = {
            "format": fmt,
            "file": out.name,
            "size_bytes": temps[0].stat().st_size,
            "input": {
                "name": "images",
                "dtype": "uint8",
                "shape": [None, size, size, 3],
            },
            "output": {"name": "keypoints", "dtype": "float32", "shape": [None, 21, 2]},
            "scores": {"name": "scores", "dtype": "float32", "shape": [None, 21]},
            "head": conf["head"],
            "backbone": conf["backbone"],
            "input_size": size,
            "tta": bool(tta),
            "quantize": quantize,
            "joint_names": list(JOINT_NAMES),
            "config": conf,
            **({"crop_rule": rule} if rule else {}),
        }
        if report is not None:
            info["quantization"] = report
        with atomic_path(info_path(out)) as tmp:
            tmp.write_text(json.dumps(info, indent=2) + "\n")
            os.replace(temps[0], out)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()
    return out


def split_arrays(source, split, count, crop="biased", data_dir=None):
    """(crops uint8 [n, S, S, 3], keypoints [n, 21, 2]) of the first `count`
    samples (or all) of a prepared split, in storage order."""
    from data_pipeline.store import open_split

    prepared = open_split(source, split, crop, data_dir)
    first = prepared.rows(np.arange(min(count, len(prepared))), ("image", "keypoints"))
    return first["image"], first["keypoints"]


def export(
    model,
    out,
    tta: bool = False,
    fmt: str = "savedmodel",
    quantize: str = None,
    overwrite: bool = False,
    data=None,
    crop: str = "biased",
    data_dir=None,
    verbose: bool = False,
    log=None,
) -> Path:
    """Export a run folder's best network (see export_network). int8 calibrates on
    CALIBRATION_CROPS training crops of `data` (default: the run's own source);
    a quantized export is scored on its validation split where it has one."""
    from data_pipeline.sources import parse_source

    check_out(out, fmt, overwrite, quantize)  # before the network loads
    if Path(model).suffix in SUFFIXES.values() or is_saved_model(model):
        raise UserError("already an export; give a run folder", "model", model)
    conf = runs.load_config(model)
    net = runs.load_network(model)
    calibration = validation = None
    if quantize is not None:
        source = parse_source(data or conf["data"])
        if quantize == "int8":
            if log:
                log(f"hjr export: {CALIBRATION_CROPS} training crops of {source}")
            calibration, _ = split_arrays(
                source, "train", CALIBRATION_CROPS, crop, data_dir
            )
        try:
            validation = split_arrays(source, "validation", 10**9, crop, data_dir)
        except UserError as error:
            raise UserError(
                f"{error.describe()}: the quantized model is scored on the "
                "validation split (give --data with one)"
            ) from None
    return export_network(
        net,
        out,
        conf,
        tta,
        fmt,
        overwrite,
        quantize,
        calibration,
        validation,
        verbose,
        log,
        crop_rule=_crop_rule(model, net, data_dir, log),
    )


def _crop_rule(model, net, data_dir, log):
    """The run's crop rule (hjr.inference.track), kept in the export for tracking
    where its training data is not; None (and a line saying so) where that data
    cannot be read here."""
    from hjr.inference.predictors import NetworkPredictor
    from hjr.inference.track import model_crop_rule

    try:
        return model_crop_rule(model, data_dir, NetworkPredictor(net)).to_dict()
    except UserError:
        if log:
            log("hjr export: the run's training data is not here: no crop rule kept")
        return None
