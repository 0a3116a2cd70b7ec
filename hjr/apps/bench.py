"""`hjr bench`: throughput and memory on the machine it runs on, as JSON.

Sections of the result:
- pipeline: images/s from a prepared source to batches (`images_per_s`), the same
  batches through the training augmentation (`augmented_images_per_s`, compiled as
  the training step would be; `augmented_xla_images_per_s`), and
  `naive_images_per_s`: the same samples through a per-sample reader in the style
  of the course skeleton (h5py inside tf.py_function, OpenCV crop and resize per
  sample). The samples are synthetic hands written in the competition's HDF5 layout
  (data_pipeline/benchmark.py).
- train.<head>: images/s of the training step at batch 32 per configuration (XLA on
  and off; mixed precision where the device has fast half-precision), the forward
  `gflop_per_image`, the usual 3x estimate for a training step, the achieved
  TFLOP/s, the step time relative to the fc head's, and the projected wall time of
  the paper's 120k-step schedule.
- predict: images/s without and with 4-rotation TTA, and the exported SavedModel's
  latency for one image.
- memory: peak host RSS (and GPU memory where there is a GPU).
- device, targets (pass/fail of the performance targets), settings.

`hjr bench --export RUN` (bench_export) measures a run's exports instead: per
format, the file size and the latency of one image and of a batch of 32.
"""

import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hjr.apps.bench_pipeline import (
    BATCH,
    bench_pipeline,
    h5_source,
    timed,
    write_synthetic_h5,
)
from data_pipeline.files import atomic_path
from data_pipeline.pipeline import make_dataset

from hjr.apps.bench_step import peak_host_rss_mib
from hjr.config import configure
from hjr.training.distribute import make_strategy, use_jit
from hjr.core.heads import HEADS
from hjr.core.model import build_model
from hjr.training.train import trainer_inputs

PAPER_STEPS = 120_000
SETTINGS = {  # (frames in the HDF5 file, pipeline batches, min timed steps, seconds)
    "full": dict(frames=1024, batches=300, steps=5, seconds=20.0, calls=20),
    "quick": dict(frames=256, batches=60, steps=2, seconds=2.0, calls=5),
}


def device_info() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    names = [
        tf.config.experimental.get_device_details(g).get("device_name", g.name)
        for g in gpus
    ]
    cpu = platform.processor() or platform.machine()
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "gpus": names,
        "tpu": bool(tf.config.list_logical_devices("TPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    info["summary"] = ", ".join(names) if names else info["cpu"] + " (no GPU)"
    return info


# --- training and prediction -----------------------------------------------------


def forward_gflop(net, size=128) -> float:
    """GFLOP of one image's forward pass (2 per multiply-add): TensorFlow's
    profiler on the frozen graph (the fast map heads' products are matmuls it
    counts: hjr.core.layers.UpsampledConv.flops_per_image)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda x: net(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        )
        .with_empty_output()
        .build()
    )
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler's deprecation notices
    try:
        info = tf.compat.v1.profiler.profile(
            graph=frozen.graph,
            run_meta=tf.compat.v1.RunMetadata(),
            cmd="op",
            options=options,
        )
    finally:
        logger.setLevel(level)
    return info.total_float_ops / 1e9


def _configs(device: dict, quick: bool):
    """(jit, precision) pairs worth measuring here."""
    accelerated = bool(device["gpus"]) or device["tpu"]
    jits = ["auto"] if quick else ["off", "on"]
    precisions = ["float32"]
    if device["tpu"]:
        precisions.append("mixed_bfloat16")
    elif device["gpus"]:
        precisions.append("mixed_float16")
    if quick and accelerated:
        precisions = precisions[-1:]
    return [(j, p) for j in jits for p in precisions]


def bench_train(head, backbone, jit, precision, batches, settings) -> dict:
    from hjr.training.step import build_trainer

    conf = configure(
        "paper",
        dict(
            head=head, backbone=backbone, weights="none", jit=jit, precision=precision
        ),
    )
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        strategy = make_strategy("auto")
        net, trainer = build_trainer(conf, strategy)
        state = {"i": 0}

        def step():
            trainer.train_on_batch(batches[state["i"] % len(batches)])
            state["i"] += 1

        seconds = timed(step, settings["steps"], settings["seconds"])
        return {
            "images_per_s": round(BATCH / seconds, 2),
            "step_ms": round(1000 * seconds, 1),
            "xla": bool(trainer.jit_compile),
        }, net
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bench_predict(net, conf, batches, settings, folder: Path) -> dict:
    from hjr.inference.export import export_network
    from hjr.inference.predict import NetworkPredictor

    predictor = NetworkPredictor(net)
    images = np.concatenate([b["images"] for b in batches])[: max(8, BATCH // 2)]
    result = {}
    for key, tta in (("images_per_s", False), ("tta_images_per_s", True)):
        seconds = timed(
            lambda: predictor.keypoints(images, tta),
            2,
            settings["seconds"] / 4,
            warmup=1,
        )
        result[key] = round(len(images) / seconds, 2)
    export_network(net, folder / "saved_model", conf, tta=False)
    loaded = tf.saved_model.load(str(folder / "saved_model"))
    one = tf.constant(images[:1])
    for key, name in (
        ("savedmodel_latency_ms", "serving_default"),
        ("savedmodel_tta_latency_ms", "tta"),
    ):
        signature = loaded.signatures[name]
        for _ in range(3):
            signature(images=one)["keypoints"].numpy()
        times = []
        for _ in range(settings["calls"]):
            start = time.perf_counter()
            signature(images=one)["keypoints"].numpy()
            times.append(1000 * (time.perf_counter() - start))
        result[key] = round(statistics.median(times), 2)
    result["batch_size"] = len(images)
    return result


def _bench_head(head, backbone, configs, batches, settings, log):
    """(figures of one head, its last network)."""
    entry = {}
    for jit, precision in configs:
        log(f"hjr bench: training {head} on {backbone}, XLA {jit}, {precision}")
        entry[f"xla_{jit}_{precision}"], net = bench_train(
            head, backbone, jit, precision, batches, settings
        )
        keras.backend.clear_session()
        gc.collect()
    entry["gflop_per_image"] = round(forward_gflop(net), 3)
    if head != "fc":  # the literal layout (upsample, then convolve) for comparison
        plain = build_model(
            dict(head=head, backbone=backbone, weights="none", head_layout="plain")
        )
        entry["plain_layout_gflop_per_image"] = round(forward_gflop(plain), 3)
        del plain
    entry["train_gflop_per_image"] = round(3 * entry["gflop_per_image"], 3)
    best = max(
        (v for v in entry.values() if isinstance(v, dict)),
        key=lambda v: v["images_per_s"],
    )
    entry["images_per_s"] = best["images_per_s"]
    entry["achieved_tflop_per_s"] = round(
        entry["train_gflop_per_image"] * best["images_per_s"] / 1000, 4
    )
    entry["paper_schedule_minutes"] = round(
        PAPER_STEPS * BATCH / best["images_per_s"] / 60, 1
    )
    return entry, net


def bench(
    quick=False, backbone="resnet152v2", heads=tuple(HEADS), json_path=None, log=print
) -> dict:
    settings = SETTINGS["quick" if quick else "full"]
    device = device_info()
    result = {
        "device": device,
        "settings": dict(settings, quick=quick, backbone=backbone, batch_size=BATCH),
    }
    folder = Path(tempfile.mkdtemp(prefix="hjr-bench-"))
    try:
        log(f"hjr bench: input pipeline ({settings['frames']} synthetic frames)")
        write_synthetic_h5(folder, settings["frames"])
        jit_auto = use_jit("auto", make_strategy("auto"))
        result["pipeline"] = bench_pipeline(folder, settings, jit_auto)
        source, data_dir = h5_source(folder)
        data = make_dataset(
            source, "train", BATCH, training=True, seed=0, data_dir=data_dir
        )
        batches = [
            {name: value.numpy() for name, value in b.items()}
            for b in trainer_inputs(data).take(4)
        ]
        configs = _configs(device, quick)
        result["settings"]["configurations"] = [f"xla_{j}_{p}" for j, p in configs]
        result["train"] = {}
        for head in heads:
            entry, net = _bench_head(head, backbone, configs, batches, settings, log)
            result["train"][head] = entry
            if head == heads[0]:
                log("hjr bench: prediction and SavedModel latency")
                conf = configure(
                    "paper", dict(head=head, backbone=backbone, weights="none")
                )
                result["predict"] = bench_predict(net, conf, batches, settings, folder)
                result["predict"]["head"] = head
            del net
            keras.backend.clear_session()  # one model in memory at a time
            gc.collect()
        if "fc" in result["train"]:
            fc = result["train"]["fc"]["images_per_s"]
            for head, entry in result["train"].items():
                entry["step_ratio_to_fc"] = round(fc / entry["images_per_s"], 3)
        result["memory"] = memory()
        result["targets"] = targets(result)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result


def memory() -> dict:
    result = {"peak_host_rss_mib": peak_host_rss_mib()}
    for gpu in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(gpu.name)
        result[f"peak_{gpu.name.split(':', 1)[-1].lower().replace(':', '')}_mib"] = (
            round(info["peak"] / 2**20, 1)
        )
    return result


def targets(result: dict) -> dict:
    """The performance targets of the project, each {value, target, met}."""
    out = {}
    pipe = result["pipeline"]
    out["pipeline_vs_naive"] = dict(value=pipe["speedup_over_naive"], target=">= 10")
    out["pipeline_images_per_s"] = dict(value=pipe["images_per_s"], target=">= 10000")
    out["pipeline_vs_naive"]["met"] = pipe["speedup_over_naive"] >= 10
    out["pipeline_images_per_s"]["met"] = pipe["images_per_s"] >= 10_000
    for head, entry in result["train"].items():
        if head != "fc" and "step_ratio_to_fc" in entry:
            ratio = entry["step_ratio_to_fc"]
            out[f"{head}_step_vs_fc"] = dict(
                value=ratio, target="<= 1.3", met=ratio <= 1.3
            )
    if result["device"]["gpus"] and "fc" in result["train"]:
        minutes = result["train"]["fc"]["paper_schedule_minutes"]
        out["fc_paper_schedule_minutes"] = dict(
            value=minutes, target="< 15 on one H100", met=minutes < 15
        )
    return out


def table(result: dict) -> str:
    """The headline figures as plain text."""
    pipe = result["pipeline"]
    lines = [
        f"device: {result['device']['summary']}, TF {result['device']['tensorflow']}",
        f"pipeline: {pipe['images_per_s']:,.0f} images/s "
        f"(augmented {pipe['augmented_images_per_s']:,.0f}, XLA "
        f"{pipe['augmented_xla_images_per_s']:,.0f}; naive reader "
        f"{pipe['naive_images_per_s']:,.0f}: x{pipe['speedup_over_naive']})",
    ]
    for head, entry in result["train"].items():
        configs = ", ".join(
            f"{k} {v['images_per_s']}" for k, v in entry.items() if isinstance(v, dict)
        )
        lines.append(
            f"train {head}: {configs} images/s; {entry['gflop_per_image']} GFLOP/image "
            f"forward; {entry['achieved_tflop_per_s']} TFLOP/s; step x"
            f"{entry.get('step_ratio_to_fc', 1)} of fc; paper schedule "
            f"{entry['paper_schedule_minutes']} min"
        )
    pred = result["predict"]
    lines.append(
        f"predict ({pred['head']}): {pred['images_per_s']} images/s, TTA "
        f"{pred['tta_images_per_s']}; SavedModel one image "
        f"{pred['savedmodel_latency_ms']} ms "
        f"(TTA {pred['savedmodel_tta_latency_ms']} ms)"
    )
    lines.append(f"memory: {result['memory']}")
    for name, target in result["targets"].items():
        mark = "met" if target["met"] else "NOT met"
        lines.append(f"target {name}: {target['value']} ({target['target']}): {mark}")
    return "\n".join(lines)


# --- exported files ---------------------------------------------------------------

EXPORT_BATCH = 32
EXPORT_SETTINGS = {  # (least timed calls, most calls, seconds) per measurement
    "full": dict(calls=(5, 30), seconds=60.0),
    "quick": dict(calls=(3, 10), seconds=10.0),
}


def _latency_ms(fn, images, settings) -> dict:
    """Median and 90th percentile of fn(images) in ms, after one warm-up call."""
    fn(images)
    least, most = settings["calls"]
    times, started = [], time.perf_counter()
    while len(times) < most and (
        len(times) < least or time.perf_counter() - started < settings["seconds"]
    ):
        start = time.perf_counter()
        fn(images)
        times.append(1000 * (time.perf_counter() - start))
    return {
        "median": round(float(np.median(times)), 2),
        "p90": round(float(np.percentile(times, 90)), 2),
        "calls": len(times),
    }


def _size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _progress(line):
    print(line, file=sys.stderr, flush=True)


def _hand_crops(count, size):
    """`count` synthetic hand crops uint8 [count, size, size, 3] (biased crop): the
    differences between formats are measured where the network sees hands, not
    noise (on noise the maps are flat and the decoded keypoints ill-conditioned)."""
    import cv2

    from data_pipeline.crop import crop_hand
    from data_pipeline.synthetic import render_hand

    crops = [crop_hand(*render_hand(0, i))[0] for i in range(count)]
    if crops[0].shape[0] != size:
        crops = [cv2.resize(crop, (size, size)) for crop in crops]
    return np.stack(crops).astype(np.uint8)


def bench_export(run, quick=False, json_path=None, log=_progress) -> dict:
    """Per format (the run's network in Keras, its SavedModel, ONNX file in
    onnxruntime, LiteRT file float32 and float16 in the LiteRT interpreter): the
    file size and the median and p90 latency of one image and of a batch of 32
    (without TTA), all on this machine's CPU with all its cores."""
    from hjr.config import load_config
    from hjr.inference.export import export_network, open_exported
    from hjr.inference.predict import NetworkPredictor, SavedModelPredictor
    from hjr.training.train import load_network

    settings = EXPORT_SETTINGS["quick" if quick else "full"]
    conf = load_config(run)
    net = load_network(run)
    size = int(conf.get("input_size", 128))
    images = _hand_crops(EXPORT_BATCH, size)
    threads = os.cpu_count()
    result = {
        "run": str(run),
        "head": conf["head"],
        "backbone": conf["backbone"],
        "tta": False,
        "device": device_info(),
        "threads": threads,
        "settings": dict(settings, batch=EXPORT_BATCH, quick=quick),
        "formats": {},
    }
    folder = Path(tempfile.mkdtemp(prefix="hjr-bench-export-"))
    try:
        keras_net = NetworkPredictor(net)
        expected = keras_net.keypoints(images, False)
        runners = {"keras": (None, lambda x: keras_net.keypoints(x, False))}
        exports = (
            ("savedmodel", "saved_model", "savedmodel", None),
            ("onnx", "model.onnx", "onnx", None),
            ("tflite", "model.tflite", "tflite", None),
            ("tflite_float16", "model_float16.tflite", "tflite", "float16"),
        )
        for name, filename, fmt, quantize in exports:
            log(f"hjr bench: exporting {name}")
            path = export_network(
                net, folder / filename, conf, fmt=fmt, quantize=quantize
            )
            if fmt == "savedmodel":
                loaded = SavedModelPredictor(path)
                runners[name] = (path, lambda x, m=loaded: m.keypoints(x, False))
            else:
                exported = open_exported(path, threads)
                runners[name] = (path, exported.keypoints)
        for name, (path, fn) in runners.items():
            log(f"hjr bench: timing {name}")
            entry = {"size_mib": None if path is None else _size_mib(path)}
            entry["one_image_ms"] = _latency_ms(fn, images[:1], settings)
            entry[f"batch_{EXPORT_BATCH}_ms"] = _latency_ms(fn, images, settings)
            difference = np.abs(np.asarray(fn(images)) - expected).max()
            entry["max_difference_px"] = round(float(difference), 5)
            result["formats"][name] = entry
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["memory"] = memory()
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _size_mib(path: Path) -> float:
    return round(_size_bytes(path) / 2**20, 3)
