"""The tf.data pipeline, for the TensorFlow backend: the batches of
data_pipeline.loader (the same rows and draws for the same seed and step), made in
parallel and prefetched by tf.data, which tf.distribute shards over workers.

Augmentation is not done here: it runs on the batch on the accelerator
(hjr.core.augment, any Keras backend), inside or next to the compiled training
step, and only maps each sample's draws to its parameters.
"""

import tensorflow as tf

from .boxes import moves
from .keypoints import CROP_SIZE, NUM_JOINTS
from .loader import NUM_DRAWS, eval_batch, num_batches, train_batch
from .sources import Source
from .store import Split, open_split

SPECS = {
    "image": (tf.uint8, (CROP_SIZE, CROP_SIZE, 3)),
    "keypoints": (tf.float32, (NUM_JOINTS, 2)),
    "visible": (tf.bool, (NUM_JOINTS,)),
    "id": (tf.int64, ()),
    "draws": (tf.float32, (NUM_DRAWS,)),
}


def _as_tensors(make, keys, batch_size):
    """A tf.data map function: step -> the dict make(step) as tensors."""

    def load(step):
        batch = make(int(step))
        return [batch[key] for key in keys]

    def function(step):
        values = tf.numpy_function(load, [step], [SPECS[k][0] for k in keys])
        batch = {}
        for key, value in zip(keys, values):
            value.set_shape((batch_size, *SPECS[key][1]))
            batch[key] = value
        return batch

    return function


def make_dataset(
    source: Source,
    split: str,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    crop: str = "biased",
    data_dir=None,
    options: tf.data.Options = None,
    start: int = 0,
    jitter=None,
) -> tf.data.Dataset:
    """Batches of one split of a source as a tf.data.Dataset (split_dataset)."""
    context = jitter is not None and moves(*jitter)
    prepared = open_split(source, split, crop, data_dir, context=context)
    return split_dataset(
        prepared,
        batch_size,
        training,
        seed,
        options=options,
        start=start,
        jitter=jitter,
    )


def split_dataset(
    prepared: Split,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    options: tf.data.Options = None,
    start: int = 0,
    jitter=None,
) -> tf.data.Dataset:
    """Batches of a prepared split as a tf.data.Dataset.

    training: the endless stream of training batches start, start + 1, ... of the
    run seeded `seed` (data_pipeline.loader.train_batch, its boxes moved by
    `jitter`), with their draws.
    Otherwise: each sample once, in storage order, with a last smaller batch.
    """
    keys = ("image", "keypoints", "visible", "id")
    if training:
        keys = (*keys, "draws")
        steps = tf.data.Dataset.range(start, 2**62)

        def batch(step):
            return train_batch(prepared, seed, step, batch_size, jitter)

        make = _as_tensors(batch, keys, batch_size)
    else:
        steps = tf.data.Dataset.range(num_batches(prepared, batch_size))
        make = _as_tensors(
            lambda index: eval_batch(prepared, index, batch_size), keys, None
        )
    ds = steps.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if options is not None:
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)
