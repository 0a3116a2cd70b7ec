"""The tf.data input pipeline: prepared TFDS source -> batches of crops.

One function for training and evaluation (`training` switch). Batches are dicts:
    image: uint8 [B, 128, 128, 3] RGB
    keypoints: float32 [B, 21, 2] (x = column, y = row, crop pixels)
    id: int64 [B], the sample's index in its source split
Augmentation is not done here: it runs on the batch on the accelerator
(data_pipeline.augment), inside or next to the compiled training step.
"""

import tensorflow as tf
import tensorflow_datasets as tfds

from .errors import UserError
from .sources import SPLITS, Source, prepare

SHUFFLE_BUFFER = 8192  # samples; about 400 MB of 128x128 crops


def open_split(source: Source, split: str, crop: str = "biased", data_dir=None):
    """(prepared builder, number of samples) of one split; UserError if absent."""
    if split not in SPLITS:
        raise UserError(f"expected one of {', '.join(SPLITS)}", "split", split)
    builder = prepare(source, crop, data_dir)
    if split not in builder.info.splits:
        have = ", ".join(builder.info.splits) or "none"
        raise UserError(f"has no {split} split (it has: {have})", "data", source)
    return builder, builder.info.splits[split].num_examples


def is_labelled(builder, split: str) -> bool:
    """Whether a split's keypoints are real labels (the competition's test is not)."""
    return split in builder.LABELLED_SPLITS


def make_dataset(
    source: Source,
    split: str,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    crop: str = "biased",
    data_dir=None,
    options: tf.data.Options = None,
) -> tf.data.Dataset:
    """Batches of one split.

    training: shuffled with `seed`, repeated forever, full batches only. The order
    is fixed by `seed` and TF's global seed (tf.data's rule; `hjr train` sets both
    from its --seed), so the same seeds give the same batches. Otherwise: each
    sample once, in storage order, with a last smaller batch.
    """
    builder, count = open_split(source, split, crop, data_dir)
    read_config = tfds.ReadConfig(
        interleave_cycle_length=1, shuffle_seed=seed, try_autocache=False
    )
    ds = builder.as_dataset(split, shuffle_files=False, read_config=read_config)
    if training:
        # One seeded shuffle over the endless stream (no per-epoch reshuffle): the
        # batches are a pure function of the seeds, and skipping n of them
        # replays the stream exactly (resume).
        ds = ds.repeat().shuffle(min(count, SHUFFLE_BUFFER), seed=seed)
    ds = ds.batch(batch_size, drop_remainder=training)
    if options is not None:
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)
