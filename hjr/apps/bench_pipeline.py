"""Throughput of the input pipeline, for `hjr bench` (hjr/apps/bench.py).

bench_pipeline: images/s from a prepared source to batches, through tf.data and
through the TensorFlow-free loader's threads (data_pipeline.loader), without and
with the training augmentation, and through `naive_dataset`, a per-sample reader in the
style of the course skeleton (h5py inside tf.py_function, OpenCV crop and resize
per sample), on the same samples: synthetic hands written in the competition's
HDF5 layout by `write_synthetic_h5`.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from data_pipeline.crop import crop_hand
from data_pipeline.kaggle_h5 import write_kaggle_files
from data_pipeline.keypoints import CROP_SIZE
from data_pipeline.loader import train_batches
from data_pipeline.pipeline import make_dataset
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from data_pipeline.synthetic import render_hand
from hjr.apps.bench_timing import time_calls
from hjr.core.augment import augment_batch

BATCH = 32


def write_synthetic_h5(folder: Path, frames: int) -> Path:
    """Synthetic hands in the competition's layout: folder/training.h5 and a
    testing.h5 of a few crops."""
    rendered = [render_hand(0, i) for i in range(frames)]
    images = np.stack([image for image, _ in rendered])
    keypoints = np.stack([kp for _, kp in rendered])
    test_crops = images[:8, :CROP_SIZE, :CROP_SIZE]
    write_kaggle_files(folder, images, keypoints, test_crops)
    return folder


def naive_dataset(h5_path: Path, count: int, batch_size: int) -> tf.data.Dataset:
    """The course skeleton's way: one sample at a time, read with h5py inside
    tf.py_function, cropped and resized with OpenCV on the CPU."""
    import h5py

    h5 = h5py.File(h5_path, "r")
    images, keypoints = h5["train/img"], h5["train/kp_2D"]

    def load(index):
        i = int(index)
        image = np.ascontiguousarray(images[i].transpose(1, 2, 0)[..., ::-1])
        crop, local = crop_hand(image, keypoints[i], "biased")
        return crop, local.astype(np.float32)

    def sample(index):
        crop, local = tf.py_function(load, [index], [tf.uint8, tf.float32])
        crop.set_shape([CROP_SIZE, CROP_SIZE, 3])
        local.set_shape([21, 2])
        return crop, local

    ds = tf.data.Dataset.range(count).shuffle(count, seed=0).repeat()
    return ds.map(sample).batch(batch_size).prefetch(1)


def images_per_s(batches, per_pass: int, repeats: int, step=None) -> float:
    """Images/s of the median of `repeats` passes of `per_pass` batches each (after
    one untimed pass), each batch through step(batch) where given."""
    iterator = iter(batches)

    def one_pass():
        for _ in range(per_pass):
            batch = next(iterator)
            if step is not None:
                step(batch)

    return time_calls(one_pass, repeats, units=per_pass * BATCH).per_second()


def h5_source(folder: Path) -> tuple:
    """(source, data dir) of the files of write_synthetic_h5 in folder."""
    return parse_source(f"{folder}:validation=32"), folder / "prepared"


def bench_pipeline(folder: Path, settings: dict, jit_auto: bool) -> dict:
    """Figures of the pipeline on the files of write_synthetic_h5 in folder:
    settings["batches"] batches per timed pass, settings["passes"] passes."""
    source, data_dir = h5_source(folder)
    train = open_split(source, "train", "biased", data_dir)
    fast = make_dataset(
        source, "train", BATCH, training=True, seed=0, data_dir=data_dir
    )
    per_pass, passes = settings["batches"], settings["passes"]
    result = {
        "images_per_s": images_per_s(fast, per_pass, passes),
        "loader_images_per_s": images_per_s(
            train_batches(train, 0, BATCH), per_pass, passes
        ),
    }
    for key, jit in (
        ("augmented_images_per_s", jit_auto),
        ("augmented_xla_images_per_s", True),
    ):
        augment = tf.function(augment_batch, jit_compile=jit)

        def step(batch):
            augment(batch["image"], batch["keypoints"], batch["draws"])[0].numpy()

        result[key] = images_per_s(fast, per_pass, passes, step)
    naive = naive_dataset(folder / "training.h5", settings["frames"], BATCH)
    result["naive_images_per_s"] = images_per_s(naive, max(2, per_pass // 10), passes)
    result = {k: round(v, 1) for k, v in result.items()}
    result["speedup_over_naive"] = round(
        result["images_per_s"] / result["naive_images_per_s"], 1
    )
    result.update(
        batch_size=BATCH,
        frames=settings["frames"],
        source="synthetic hands in the competition's HDF5 layout, biased crop",
    )
    return result
