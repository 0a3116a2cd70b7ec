"""`hjr bench --loader`: images/s of the TensorFlow-free loader alone
(data_pipeline.loader.train_batches) on a prepared source, on any machine: what it
can feed a training step, to set beside the step's own images/s."""

import os

from data_pipeline.loader import train_batches
from data_pipeline.store import open_split
from hjr.apps.bench_timing import time_calls


def bench_loader(
    source,
    crop="biased",
    data_dir=None,
    batch_size=32,
    timed_steps=20,
    repeats=3,
    workers=4,
) -> dict:
    """{images_per_s (median pass), ms_per_batch {median, p90, runs}, settings}:
    training batches made `workers` threads ahead, `timed_steps` per timed pass."""
    split = open_split(source, "train", crop, data_dir)
    batches = train_batches(split, 0, batch_size, workers=workers)

    def one_pass():
        for _ in range(timed_steps):
            next(batches)

    timing = time_calls(one_pass, repeats, units=timed_steps)
    return {
        "loader": {
            "images_per_s": round(batch_size * timing.per_second(), 1),
            "ms_per_batch": timing.ms(),
        },
        "settings": {
            "source": str(source),
            "train_samples": len(split),
            "batch_size": batch_size,
            "timed_steps": timed_steps,
            "repeats": repeats,
            "workers": workers,
            "cpus": os.cpu_count(),
        },
    }
