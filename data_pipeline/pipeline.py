"""The tf.data input pipeline: prepared TFDS source -> batches of crops.

One function for training and evaluation (`training` switch). Batches are dicts:
    image: uint8 [B, 128, 128, 3] RGB
    keypoints: float32 [B, 21, 2] (x = column, y = row, crop pixels)
    visible: bool [B, 21], whether each joint is visible (all True for the
        competition's files, which say nothing about it; tfds_builders)
    id: int64 [B], the sample's index in its source split
    draws: float32 [B, 4] uniform in [0, 1), training batches only: the random
        numbers of the training augmentation (batch_draws)
Augmentation is not done here: it runs on the batch on the accelerator
(hjr.core.augment, any Keras backend), inside or next to the compiled training step,
and only maps each sample's draws to its parameters.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from .errors import UserError
from .sources import SPLITS, Source, prepare

SHUFFLE_BUFFER = 8192  # samples; about 400 MB of 128x128 crops
NUM_DRAWS = 4  # columns of a batch's draws (hjr.core.augment.NUM_DRAWS)


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


def has_visibility(builder) -> bool:
    """Whether a source's `visible` tells visible and hidden joints apart (the
    competition's files do not: their joints are all marked visible)."""
    return builder.HAS_VISIBILITY


def batch_draws(seed, step, batch_size) -> tf.Tensor:
    """The augmentation draws of training batch number `step` (from 0) of the run
    seeded `seed`: float32 [batch_size, NUM_DRAWS] uniform in [0, 1), stateless
    (philox, keyed on (seed, step)), so a resumed run replays them."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.stateless_uniform([batch_size, NUM_DRAWS], key, alg="philox")


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
    Training batches also carry `draws`, batch_draws(seed, n, batch_size) for
    batch n of the stream: numbered before any skip, so skipping n batches
    (resume) gives batch n its own draws.
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
    if training:
        ds = ds.enumerate().map(
            lambda step, batch: {
                **batch,
                "draws": batch_draws(seed, step, batch_size),
            }
        )
    if options is not None:
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


def read_split(
    source: Source, split: str, keys, ids=None, crop: str = "biased", data_dir=None
) -> dict:
    """Some features of one split's samples as NumPy arrays {key: [N, ...]}, rows
    sorted by id; where `ids` are given, only those samples, in that order (UserError
    for an id the split lacks). One pass over the prepared split."""
    names = ("id", *(k for k in keys if k != "id"))
    ds = make_dataset(source, split, 256, crop=crop, data_dir=data_dir)
    ds = ds.map(lambda batch: {k: batch[k] for k in names})
    wanted = None if ids is None else np.asarray(ids, np.int64).reshape(-1)
    spec = ds.element_spec
    parts = {
        k: [np.zeros((0, *spec[k].shape[1:]), spec[k].dtype.as_numpy_dtype)]
        for k in names
    }
    for batch in ds.as_numpy_iterator():
        keep = slice(None) if wanted is None else np.isin(batch["id"], wanted)
        for k in names:
            parts[k].append(batch[k][keep])
    found = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(found["id"], kind="stable")
    if wanted is not None:
        missing = wanted[~np.isin(wanted, found["id"])]
        if len(missing):
            raise UserError(f"{source} {split}: no sample with id {missing[0]}")
        order = order[np.searchsorted(found["id"], wanted, sorter=order)]
    return {k: found[k][order] for k in keys}


def read_visibility(source: Source, split: str, ids, crop="biased", data_dir=None):
    """bool [N, 21], whether each joint of the samples `ids` (in that order) is
    visible; None where the source does not tell (has_visibility)."""
    builder, _ = open_split(source, split, crop, data_dir)
    if not has_visibility(builder):
        return None
    where = dict(crop=crop, data_dir=data_dir)
    return read_split(source, split, ("visible",), ids, **where)["visible"]
