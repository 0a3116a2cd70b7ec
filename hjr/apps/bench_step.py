"""`hjr bench --train-step`: the training step alone, per head, on any backend.

Each head's whole step (augmentation of the batch, forward pass, the head's loss
with labels encoded on the device, backward pass, optimizer) is timed through
Keras' own `fit`: one epoch over `--steps` synthetic batches held in memory
(Keras prefetches them to the device), after a first call that compiles it,
`--repeats` times. Each pass's time is divided by the steps the optimizer
counted, and the median is the figure: on an H200, a head timed once took 1.4
to 1.7 times as long when it was the first timed in its process as when it came
after another head. Nothing here imports TensorFlow, OpenCV or the input
pipeline: it runs where only Keras, JAX (or PyTorch) and NumPy are installed.
"""

import platform
import resource
import time

import keras
import numpy as np

from hjr.core.augment import NUM_DRAWS
from hjr.config import configure
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


def _batches(batch, size, steps, seed=0):
    """`steps` batches of random crops, keypoints and augmentation draws."""
    rng = np.random.default_rng(seed)
    count = batch * steps
    return {
        "images": rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        "keypoints": rng.uniform(16, size - 16, (count, 21, 2)).astype(np.float32),
        "draws": rng.uniform(0, 1, (count, NUM_DRAWS)).astype(np.float32),
    }


def _iterations(trainer) -> int:
    return int(keras.ops.convert_to_numpy(trainer.optimizer.iterations))


def bench_head(
    head, backbone, batch, precision, steps, steps_per_execution, jit, repeats=3
):
    """{ms_per_step, images_per_s, peak memory} of one head's training step: the
    median of `repeats` timed passes over the batches (each pass's in
    ms_per_step_runs)."""
    conf = configure(
        "paper",
        {
            "head": head,
            "backbone": backbone,
            "weights": "none",
            "batch_size": batch,
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
            data = _batches(batch, conf["input_size"], steps)
            fit = dict(batch_size=batch, shuffle=False, verbose=0)
            trainer.fit(data, epochs=1, steps_per_epoch=steps_per_execution, **fit)
            runs = []
            for _ in range(repeats):
                done = _iterations(trainer)
                start = time.perf_counter()
                history = trainer.fit(data, epochs=1, **fit)
                seconds = time.perf_counter() - start
                runs.append(1000 * seconds / (_iterations(trainer) - done))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    step_ms = float(np.median(runs))
    result = {
        "ms_per_step": round(step_ms, 2),
        "ms_per_step_runs": [round(ms, 2) for ms in runs],
        "images_per_s": round(batch * 1000 / step_ms, 1),
        "final_loss": float(history.history["loss"][-1]),
        "jit": bool(trainer.jit_compile),
        "peak_accelerator_mib": peak_accelerator_mib(),
    }
    del trainer
    keras.backend.clear_session()
    return result


def bench_train_step(
    backbone="resnet152v2",
    heads=("fc",),
    batch=32,
    precision="float32",
    steps=20,
    steps_per_execution=1,
    jit="auto",
    repeats=3,
    log=print,
) -> dict:
    result = {
        **device_summary(),
        "settings": {
            "backbone": backbone,
            "batch_size": batch,
            "precision": precision,
            "steps": steps,
            "steps_per_execution": steps_per_execution,
            "jit": jit,
            "repeats": repeats,
            "input": "synthetic batches in memory, fed by Keras fit",
        },
        "train_step": {},
    }
    for head in heads:
        log(f"hjr bench: training step of the {head} head ({backbone}, batch {batch})")
        entry = bench_head(
            head, backbone, batch, precision, steps, steps_per_execution, jit, repeats
        )
        result["train_step"][head] = entry
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
