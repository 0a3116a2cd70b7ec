"""Input pipeline throughput: prepared source -> batches, without and with augmentation.

    python run_scripts/bench_pipeline.py [--data SOURCE] [--batches N] [--json PATH]

Prints JSON: images per second of the training pipeline (shuffle, repeat, batch,
prefetch) and of the same batches through the training augmentation, as a plain
tf.function and XLA-compiled (on the CPU here; on an accelerator it runs next to
the training step).
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from data_pipeline.augment import augment_batch  # noqa: E402
from data_pipeline.pipeline import make_dataset  # noqa: E402
from data_pipeline.sources import parse_source, prepare  # noqa: E402


def images_per_second(batches, count, batch_size, step=None):
    """Rate over `count` batches after two warm-up batches."""
    iterator = iter(batches)
    for i in range(2):
        batch = next(iterator)
        if step is not None:
            step(batch, i)
    start = time.perf_counter()
    for i in range(count):
        batch = next(iterator)
        if step is not None:
            step(batch, i)
    return count * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="synthetic:train=2000,validation=100,test=100"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    source = parse_source(args.data)
    prepare(source)
    ds = make_dataset(source, "train", args.batch_size, training=True, seed=0)
    plain = images_per_second(ds, args.batches, args.batch_size)

    augmented = {}
    for jit in (False, True):
        augment = tf.function(augment_batch, jit_compile=jit)

        def step(batch, i):
            seed = tf.constant([0, i])
            augment(batch["image"], batch["keypoints"], seed)[0].numpy()

        augmented[jit] = images_per_second(ds, args.batches, args.batch_size, step)
    result = {
        "pipeline": {
            "images_per_s": round(plain, 1),
            "augmented_images_per_s": round(augmented[False], 1),
            "augmented_xla_images_per_s": round(augmented[True], 1),
            "batch_size": args.batch_size,
            "data": args.data,
        },
        "device": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, TF {tf.__version__}",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
