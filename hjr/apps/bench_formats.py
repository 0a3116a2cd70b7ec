"""`hjr bench --export RUN`: a run's exported files, per format: the file size and
the latency of one image and of a batch of 32 (median, p90 and every timed call,
through hjr.apps.bench_timing.time_calls), without TTA, on this machine's CPU with
all its cores."""

import os
import tempfile
from pathlib import Path

import numpy as np

from hjr.apps.bench_machine import device_info, memory, progress, write_json
from hjr.apps.bench_timing import time_calls

EXPORT_BATCH = 32
EXPORT_CALLS = {"full": 20, "quick": 5}  # timed calls per measurement
EXPORTS = (  # (name, file name, format, quantization)
    ("savedmodel", "saved_model", "savedmodel", None),
    ("onnx", "model.onnx", "onnx", None),
    ("tflite", "model.tflite", "tflite", None),
    ("tflite_float16", "model_float16.tflite", "tflite", "float16"),
)


def _hand_crops(count):
    """`count` synthetic hand crops uint8 [count, 128, 128, 3] (biased crop): the
    formats are compared where the network sees hands, because on noise the maps
    are flat and the decoded keypoints ill-conditioned."""
    from data_pipeline.crop import crop_hand
    from data_pipeline.synthetic import render_hand

    crops = [crop_hand(*render_hand(0, i))[0] for i in range(count)]
    return np.stack(crops).astype(np.uint8)


def _size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 3)


def bench_export(run, quick=False, json_path=None, log=progress) -> dict:
    """Per format (the run's network in Keras, its SavedModel, ONNX file in
    onnxruntime, LiteRT file float32 and float16 in the LiteRT interpreter): the
    file size, the latency of one image and of a batch of 32, and the largest
    difference from the Keras network's keypoints."""
    from hjr import runs
    from hjr.inference.export import export_network
    from hjr.inference.predictors import NetworkPredictor, SavedModelPredictor
    from hjr.inference.runtimes import open_exported

    calls = EXPORT_CALLS["quick" if quick else "full"]
    conf = runs.load_config(run)
    net = runs.load_network(run)
    images = _hand_crops(EXPORT_BATCH)
    threads = os.cpu_count()
    result = {
        "run": str(run),
        "head": conf["head"],
        "backbone": conf["backbone"],
        "tta": False,
        "device": device_info(),
        "threads": threads,
        "settings": dict(calls=calls, batch_size=EXPORT_BATCH, quick=quick),
        "formats": {},
    }
    scratch = tempfile.TemporaryDirectory(prefix="hjr-bench-export-")
    folder = Path(scratch.name)
    try:
        keras_net = NetworkPredictor(net)
        expected = keras_net.keypoints(images, False)
        runners = {"keras": (None, lambda x: keras_net.keypoints(x, False))}
        for name, filename, fmt, quantize in EXPORTS:
            log(f"hjr bench: exporting {name}")
            path = export_network(
                net, folder / filename, conf, fmt=fmt, quantize=quantize
            )
            if fmt == "savedmodel":
                loaded = SavedModelPredictor(path)
                runners[name] = (path, lambda x, m=loaded: m.keypoints(x, False))
            else:
                runners[name] = (path, open_exported(path, threads).keypoints)
        for name, (path, fn) in runners.items():
            log(f"hjr bench: timing {name}")
            entry = {"size_mib": None if path is None else _size_mib(path)}
            for key, batch in (
                ("one_image_ms", images[:1]),
                (f"batch_{EXPORT_BATCH}_ms", images),
            ):
                entry[key] = time_calls(lambda b=batch: fn(b), calls).ms()
            difference = np.abs(np.asarray(fn(images)) - expected).max()
            entry["max_difference_px"] = round(float(difference), 5)
            result["formats"][name] = entry
    finally:
        scratch.cleanup()
    result["memory"] = memory()
    write_json(result, json_path)
    return result
