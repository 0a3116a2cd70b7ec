"""The exported files' names and runtimes: a SavedModel folder (with `hjr.json`),
an ONNX file run by onnxruntime, a LiteRT file run by ai_edge_litert's
interpreter, each with `<file>.json` beside it (written by hjr.inference.export).
Imports no TensorFlow."""

import json
import os
from pathlib import Path

import numpy as np

from data_pipeline.errors import UserError
from hjr.config import EXPORT_FORMATS as FORMATS
from hjr.config import QUANTIZATIONS
from hjr.quiet import converter_output

MARKER = "hjr.json"  # in an exported SavedModel folder
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite"}


def check_out(
    out, fmt: str = "savedmodel", overwrite: bool = False, quantize: str = None
) -> Path:
    """The output path `out` of an export in format `fmt` (quantized as
    `quantize`: tflite only), checked before any work: an existing path is
    refused unless `overwrite`, and even then a folder that is not an earlier hjr
    export is left alone (UserError)."""
    if fmt not in FORMATS:
        raise UserError(f"expected one of {', '.join(FORMATS)}", "format", fmt)
    if quantize is not None and fmt != "tflite":
        raise UserError(f"only for --format tflite, not {fmt}", "quantize", quantize)
    if quantize not in (None, *QUANTIZATIONS):
        raise UserError(
            f"expected one of {', '.join(QUANTIZATIONS)}", "quantize", quantize
        )
    out = Path(out)
    wrong = [f for f, suffix in SUFFIXES.items() if f != fmt and out.suffix == suffix]
    if wrong:
        raise UserError(f"a {wrong[0]} file's name; this is --format {fmt}", "out", out)
    if not os.path.lexists(out):
        return out
    if not overwrite:
        raise UserError("exists; pass --overwrite to replace it", "out", out)
    if fmt == "savedmodel":
        if not out.is_dir():
            raise UserError(
                "exists and is not a folder; a SavedModel is one", "out", out
            )
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise UserError(
                "exists and is not an hjr export; choose another folder", "out", out
            )
    elif out.is_dir():
        raise UserError(f"is a folder; the {fmt} export is one file", "out", out)
    return out


def is_saved_model(path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def info_path(out) -> Path:
    """The JSON beside an exported file: `<file>.json`."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def export_info(model):
    """What `hjr export` wrote about an export (its run's configuration, TTA, crop
    rule...): a SavedModel's hjr.json, a file's <file>.json; None for a run
    folder."""
    path = Path(model)
    if is_saved_model(path):
        file = path / MARKER
    elif path.suffix in SUFFIXES.values():
        file = info_path(path)
    else:
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        raise UserError(
            f"{file}: missing or unreadable; hjr export writes it"
        ) from None


class ExportedModel:
    """An exported ONNX or LiteRT file in its own runtime (onnxruntime; the LiteRT
    interpreter of ai_edge_litert): keypoints of uint8 crops [N, 128, 128, 3]."""

    def __init__(self, path, threads: int = None):
        self.path = Path(path)
        self.format = "onnx" if self.path.suffix == ".onnx" else "tflite"
        threads = threads or os.cpu_count()
        if self.format == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name
            names = {output.name for output in self._session.get_outputs()}
            self._outputs = [n for n in ("keypoints", "scores") if n in names]
        else:
            from ai_edge_litert.interpreter import Interpreter

            with converter_output():  # "INFO: Created TensorFlow Lite XNNPACK..."
                self._interpreter = Interpreter(
                    model_path=str(path), num_threads=threads
                )
                self._runner = self._interpreter.get_signature_runner()
                shape = self._runner.get_input_details()["images"]["shape"]
                self._runner(images=np.zeros((1, *shape[1:]), np.uint8))

    def keypoints(self, images, batch_size: int = 64) -> np.ndarray:
        return self.joints(images, batch_size)[0]

    def joints(self, images, batch_size: int = 64) -> tuple:
        """(keypoints float32 [N, 21, 2], scores float32 [N, 21]: 1 from a file
        exported before it had scores)."""
        images = np.asarray(images, np.uint8)
        parts = [
            self._run(images[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
        if not parts:
            return np.zeros((0, 21, 2), np.float32), np.zeros((0, 21), np.float32)
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _run(self, images):
        if self.format == "onnx":
            outputs = self._session.run(self._outputs, {self._input: images})
            outputs = dict(zip(self._outputs, outputs))
        else:
            outputs = self._runner(images=images)
        keypoints = outputs["keypoints"]
        scores = outputs.get("scores")
        if scores is None:
            scores = np.ones(keypoints.shape[:2], np.float32)
        return keypoints, scores


def open_exported(path, threads: int = None) -> ExportedModel:
    """An ONNX (.onnx) or LiteRT (.tflite) file of `hjr export`, ready to run."""
    path = Path(path)
    if path.suffix not in SUFFIXES.values() or not path.is_file():
        raise UserError(f"{path}: not an exported .onnx or .tflite file")
    return ExportedModel(path, threads)
