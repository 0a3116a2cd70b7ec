"""`hjr bench`: throughput and memory on the machine it runs on.

Sections of the result:
- pipeline: images/s from a prepared source to batches through tf.data
  (`images_per_s`) and the TensorFlow-free loader (`loader_images_per_s`), the same
  batches through the training augmentation (`augmented_images_per_s`, compiled as
  the training step would be; `augmented_xla_images_per_s`), and
  `naive_images_per_s`: the same samples through a per-sample reader in the style
  of the course skeleton (hjr/apps/bench_pipeline.py).
- train.<head>: per configuration (XLA on and off; mixed precision where the device
  has fast half-precision) the step time at batch 32 (`step_ms`: median, p90 and
  every timed step) and images/s; the forward `gflop_per_image`, the usual 3x
  estimate for a training step, the achieved TFLOP/s, the step time relative to
  the fc head's, and the projected wall time of the paper's 120k-step schedule.
- predict: images/s without and with 4-rotation TTA, and the exported SavedModel's
  latency for one image (`savedmodel_ms`, `savedmodel_tta_ms`).
- memory: peak host RSS (and GPU memory where there is a GPU); device; settings.

Every figure is timed by hjr.apps.bench_timing.time_calls. `hjr bench --export
RUN` (hjr.apps.bench_formats.bench_export) measures a run's exports.
"""

import gc
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data_pipeline.keypoints import CROP_SIZE
from data_pipeline.loader import train_batch
from data_pipeline.store import open_split
from hjr.apps.bench_machine import device_info, memory, write_json
from hjr.apps.bench_pipeline import BATCH, bench_pipeline, h5_source, write_synthetic_h5
from hjr.apps.bench_timing import time_calls
from hjr.config import configure
from hjr.core.heads import HEADS
from hjr.training.distribute import make_strategy, use_jit
from hjr.training.train import trainer_inputs

PAPER_STEPS = 120_000
SETTINGS = {
    # frames: in the HDF5 file; batches: per timed pipeline pass; passes: timed
    # pipeline passes; steps: timed training steps; calls: timed prediction calls
    "full": dict(frames=1024, batches=50, passes=5, steps=20, calls=10),
    "quick": dict(frames=256, batches=10, passes=3, steps=3, calls=3),
}


def forward_gflop(net, size=CROP_SIZE) -> float:
    """GFLOP of one image's forward pass (2 per multiply-add): TensorFlow's
    profiler on the frozen graph (the map heads' products are matmuls it counts:
    hjr.core.layers.UpsampledConv)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda x: net(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
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


def bench_train(head, backbone, jit, precision, batches, settings) -> tuple:
    """({images_per_s, step_ms, xla} of one configuration's step, the network)."""
    from hjr.training.step import build_trainer

    overrides = dict(
        head=head, backbone=backbone, weights="none", jit=jit, precision=precision
    )
    conf = configure("paper", overrides)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        net, trainer = build_trainer(conf, make_strategy("auto"))
        state = {"i": 0}

        def step():
            trainer.train_on_batch(batches[state["i"] % len(batches)])
            state["i"] += 1

        timing = time_calls(step, settings["steps"])
        return {
            "images_per_s": round(BATCH * timing.per_second(), 2),
            "step_ms": timing.ms(1),
            "xla": bool(trainer.jit_compile),
        }, net
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bench_predict(net, conf, batches, settings, folder: Path) -> dict:
    from hjr.inference.export import export_network
    from hjr.inference.predictors import NetworkPredictor, SavedModelPredictor

    predictor = NetworkPredictor(net)
    images = np.concatenate([b["images"] for b in batches])[: max(8, BATCH // 2)]
    result = {"batch_size": len(images)}
    for key, tta in (("images_per_s", False), ("tta_images_per_s", True)):
        timing = time_calls(
            lambda t=tta: predictor.keypoints(images, t), settings["calls"]
        )
        result[key] = round(len(images) * timing.per_second(), 2)
    path = export_network(net, folder / "saved_model", conf, tta=False)
    loaded = SavedModelPredictor(path)
    one = images[:1]
    for key, tta in (("savedmodel_ms", False), ("savedmodel_tta_ms", True)):
        timing = time_calls(
            lambda t=tta: loaded.keypoints(one, t), 4 * settings["calls"], warmup=3
        )
        result[key] = timing.ms()
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
    """The pipeline, the training step per head and configuration, prediction and
    memory (the module's docstring), written to json_path if given."""
    heads = list(heads)
    settings = SETTINGS["quick" if quick else "full"]
    device = device_info()
    result = {
        "device": device,
        "settings": dict(settings, quick=quick, backbone=backbone, batch_size=BATCH),
    }
    scratch = tempfile.TemporaryDirectory(prefix="hjr-bench-")
    folder = Path(scratch.name)
    try:
        log(f"hjr bench: input pipeline ({settings['frames']} synthetic frames)")
        write_synthetic_h5(folder, settings["frames"])
        jit_auto = use_jit("auto", make_strategy("auto"))
        result["pipeline"] = bench_pipeline(folder, settings, jit_auto)
        source, data_dir = h5_source(folder)
        train = open_split(source, "train", "biased", data_dir)
        batches = [
            trainer_inputs(train_batch(train, 0, step, BATCH)) for step in range(4)
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
            for entry in result["train"].values():
                entry["step_ratio_to_fc"] = round(fc / entry["images_per_s"], 3)
        result["memory"] = memory()
    finally:
        scratch.cleanup()
    write_json(result, json_path)
    return result


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
            f"{k} {v['images_per_s']} images/s (step {v['step_ms']['median']} ms, "
            f"p90 {v['step_ms']['p90']})"
            for k, v in entry.items()
            if isinstance(v, dict)
        )
        ratio = entry.get("step_ratio_to_fc")
        lines.append(
            f"train {head}: {configs}; {entry['gflop_per_image']} GFLOP/image "
            f"forward; {entry['achieved_tflop_per_s']} TFLOP/s; "
            + (f"step x{ratio} of fc; " if ratio is not None else "")
            + f"paper schedule {entry['paper_schedule_minutes']} min"
        )
    pred = result["predict"]
    lines.append(
        f"predict ({pred['head']}): {pred['images_per_s']} images/s, TTA "
        f"{pred['tta_images_per_s']}; SavedModel one image "
        f"{pred['savedmodel_ms']['median']} ms (p90 {pred['savedmodel_ms']['p90']}; "
        f"TTA {pred['savedmodel_tta_ms']['median']} ms)"
    )
    lines.append(f"memory: {result['memory']}")
    return "\n".join(lines)
