"""`hjr bench --train-step`: the training step alone, per head, on any backend.

Each head's whole step (augmentation of the batch, forward pass, the head's loss
with labels encoded on the device, backward pass, optimizer) is timed through
Keras' own `fit`: one epoch over `timed_steps` synthetic batches held in memory
(Keras prefetches them to the device) is a pass; after one untimed pass that
compiles it, `repeats` passes are timed (hjr.apps.bench_timing) and each pass's
time is divided by the steps the optimizer counted in it. The median pass is the
figure, because a head's first timed pass in a process is often slower than the
rest. Nothing here imports TensorFlow, OpenCV or the input pipeline: it runs
where only Keras, JAX (or PyTorch) and NumPy are installed.
"""

import platform
import resource

import keras
import numpy as np

from data_pipeline.keypoints import CROP_SIZE
from hjr.apps.bench_timing import time_calls
from hjr.config import configure
from hjr.core.augment import NUM_DRAWS
from hjr.training.distribute import local_devices, make_strategy
from hjr.training.step import build_trainer


def device_summary() -> dict:
    summary = {"backend": keras.backend.backend(), "devices": local_devices()}
    if keras.backend.backend() == "jax":
        import jax

        summary["device_kind"] = jax.devices()[0].device_kind
    elif keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            summary["device_kind"] = torch.cuda.get_device_name(0)
    summary.setdefault("device_kind", platform.processor() or platform.machine())
    return summary


def peak_accelerator_mib():
    """Peak memory in use on the first accelerator (MiB), or None on a CPU."""
    name = keras.backend.backend()
    if name == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
    elif name == "torch":
        import torch

        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    else:
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        info = tf.config.experimental.get_memory_info(gpus[0].name) if gpus else {}
        peak = info.get("peak")
    return None if peak is None else round(peak / 2**20, 1)


def _batches(batch_size, steps, seed=0):
    """`steps` batches of random crops, keypoints and augmentation draws."""
    rng = np.random.default_rng(seed)
    count, size = batch_size * steps, CROP_SIZE
    return {
        "images": rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        "keypoints": rng.uniform(16, size - 16, (count, 21, 2)).astype(np.float32),
        "draws": rng.uniform(0, 1, (count, NUM_DRAWS)).astype(np.float32),
    }


def _iterations(trainer) -> int:
    return int(keras.ops.convert_to_numpy(trainer.optimizer.iterations))


def bench_head(
    head,
    backbone,
    batch_size,
    precision,
    timed_steps,
    steps_per_execution,
    jit,
    repeats=3,
) -> dict:
    """{ms_per_step (median pass), ms_per_step_p90, ms_per_step_runs (every pass),
    images_per_s, final_loss, jit, peak accelerator memory} of one head's step."""
    conf = configure(
        "paper",
        {
            "head": head,
            "backbone": backbone,
            "weights": "none",
            "batch_size": batch_size,
            "precision": precision,
            "steps_per_execution": steps_per_execution,
            "jit": jit,
        },
    )
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        strategy = make_strategy("auto")
        with strategy.scope():
            _, trainer = build_trainer(conf, strategy)
            data = _batches(batch_size, timed_steps)
            losses, counted = [], []

            def one_pass():
                history = trainer.fit(
                    data, epochs=1, batch_size=batch_size, shuffle=False, verbose=0
                )
                losses.append(float(history.history["loss"][-1]))

            def steps_done():
                counted.append(_iterations(trainer))
                return counted[-1] - counted[-2]

            one_pass()  # compiles the step, untimed
            counted.append(_iterations(trainer))
            timing = time_calls(one_pass, repeats, warmup=0, units=steps_done)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    step_ms = timing.ms()
    result = {
        "ms_per_step": step_ms["median"],
        "ms_per_step_p90": step_ms["p90"],
        "ms_per_step_runs": step_ms["runs"],
        "images_per_s": round(batch_size * timing.per_second(), 1),
        "final_loss": losses[-1],
        "jit": bool(trainer.jit_compile),
        "peak_accelerator_mib": peak_accelerator_mib(),
    }
    keras.backend.clear_session()
    return result


def bench_train_step(
    backbone="resnet152v2",
    heads=("fc",),
    batch_size=32,
    precision="float32",
    timed_steps=20,
    steps_per_execution=1,
    jit="auto",
    repeats=3,
    log=print,
) -> dict:
    """Per head, the training step's time (bench_head), its ratio to the fc
    head's where fc is among `heads`, and this process's peak host memory."""
    result = {
        **device_summary(),
        "settings": {
            "backbone": backbone,
            "batch_size": batch_size,
            "precision": precision,
            "timed_steps": timed_steps,
            "steps_per_execution": steps_per_execution,
            "jit": jit,
            "repeats": repeats,
            "input": "synthetic batches in memory, fed by Keras fit",
        },
        "train_step": {},
    }
    for head in heads:
        log(
            f"hjr bench: training step of the {head} head ({backbone}, "
            f"batch size {batch_size})"
        )
        result["train_step"][head] = bench_head(
            head,
            backbone,
            batch_size,
            precision,
            timed_steps,
            steps_per_execution,
            jit,
            repeats,
        )
    fc = result["train_step"].get("fc")
    if fc:
        for entry in result["train_step"].values():
            entry["ratio_to_fc"] = round(entry["ms_per_step"] / fc["ms_per_step"], 3)
    result["peak_host_rss_mib"] = peak_host_rss_mib()
    return result


def peak_host_rss_mib() -> float:
    """This process's peak resident memory, MiB."""
    scale = 1 / 1024 if platform.system() != "Darwin" else 1 / 2**20  # KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)
