"""Batches of a prepared split (data_pipeline.store) with NumPy alone: the input of
training and prediction on every Keras backend, and what the tf.data pipeline
(data_pipeline.pipeline) serves on TensorFlow, batch for batch.

Training batch number `step` (from 0) of a run seeded `seed` is a pure function of
(seed, step): its rows are positions step * B .. step * B + B - 1 of an endless
stream that goes through the split in a new seeded order each pass (epoch e: the
permutation of numpy's default_rng((seed, e))), and its augmentation draws are
default_rng((seed, step, 1)) uniform numbers. So a run resumes at any step with
the same batches, and every loader gives the same ones. Batches are dicts:

    image: uint8 [B, 128, 128, 3] RGB
    keypoints: float32 [B, 21, 2] (x = column, y = row, crop pixels)
    visible: bool [B, 21], whether each joint is visible
    id: int64 [B], the sample's index in its source split
    draws: float32 [B, 4] in [0, 1), training batches only: the random numbers of
        the training augmentation (hjr.core.augment maps them to its parameters)
With a `jitter` (shift, scale) other than (0, 1), training batches are cut from
boxes moved and scaled (data_pipeline.boxes; --box-jitter) out of the split's
surroundings (opened with open_split(..., context=True)).
"""

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import boxes
from .errors import UserError
from .sources import Source
from .store import Split, open_split

NUM_DRAWS = 4  # columns of a batch's draws (hjr.core.augment.NUM_DRAWS)


@functools.lru_cache(maxsize=8)
def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The rows of pass `epoch` over a split of `count` samples, in their order
    (kept for the batches of the same pass; read-only)."""
    order = np.random.default_rng((seed, epoch)).permutation(count)
    order.flags.writeable = False
    return order


def stream_rows(count: int, seed: int, step: int, batch_size: int) -> np.ndarray:
    """The rows of training batch `step`: positions of the endless stream."""
    positions = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    epochs, within = np.divmod(positions, count)
    rows = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
        chosen = epochs == epoch
        rows[chosen] = epoch_order(count, seed, int(epoch))[within[chosen]]
    return rows


def batch_draws(seed: int, step: int, batch_size: int) -> np.ndarray:
    """The augmentation draws of training batch `step`: float32 [B, NUM_DRAWS]."""
    rng = np.random.default_rng((seed, step, 1))
    return rng.random((batch_size, NUM_DRAWS), dtype=np.float32)


def train_batch(
    split: Split, seed: int, step: int, batch_size: int, jitter=None
) -> dict:
    """Training batch `step` of the run seeded `seed`, its boxes moved by `jitter`
    (shift, scale), or as stored where it is None or (0, 1) (module docstring)."""
    if len(split) == 0:
        raise UserError(f"{split.source} has no {split.name} samples to train on")
    rows = stream_rows(len(split), seed, step, batch_size)
    if jitter is None or not boxes.moves(*jitter):
        batch = split.rows(rows)
    else:
        if split.context is None:
            raise ValueError("a jitter needs the split's surroundings (context=True)")
        batch = split.rows(rows, ("keypoints", "visible", "id"))
        moves = boxes.training_draws(seed, step, batch_size, *jitter)
        batch["image"], batch["keypoints"] = boxes.perturb(
            split.context, rows, batch["keypoints"], moves
        )
    batch["draws"] = batch_draws(seed, step, batch_size)
    return batch


def train_batches(
    split: Split, seed, batch_size, start=0, stop=None, workers=2, jitter=None
):
    """Training batches start, start + 1, ... (until `stop`, else forever) of
    train_batch (`jitter` as there), made by `workers` threads a few batches
    ahead, in order."""
    steps = iter(range(start, stop)) if stop is not None else _count(start)
    make = functools.partial(train_batch, jitter=jitter)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        ahead = []
        for step in steps:
            ahead.append(pool.submit(make, split, seed, step, batch_size))
            if len(ahead) > 2 * workers:
                yield ahead.pop(0).result()
        for future in ahead:
            yield future.result()


def _count(start):
    while True:
        yield start
        start += 1


def num_batches(split: Split, batch_size: int) -> int:
    return -(-len(split) // batch_size)


def eval_batch(split: Split, index: int, batch_size: int) -> dict:
    """Batch `index` of a split read once in storage order (the last one smaller)."""
    rows = np.arange(index * batch_size, min(len(split), (index + 1) * batch_size))
    return split.rows(rows)


def eval_batches(split: Split, batch_size: int):
    """Every sample of a split once, in storage order, in batches."""
    for index in range(num_batches(split, batch_size)):
        yield eval_batch(split, index, batch_size)


def read_split(
    source: Source, split: str, keys, ids=None, crop: str = "biased", data_dir=None
) -> dict:
    """Some fields of one split's samples as arrays {key: [N, ...]}, rows sorted by
    id; where `ids` are given, only those samples, in that order (UserError for an
    id the split lacks)."""
    prepared = open_split(source, split, crop, data_dir)
    if ids is None:
        rows = np.argsort(prepared.id, kind="stable")
    else:
        rows = prepared.positions(ids)
    return prepared.rows(rows, tuple(keys))


def read_visibility(source: Source, split: str, ids, crop="biased", data_dir=None):
    """bool [N, 21], whether each joint of the samples `ids` (in that order) is
    visible; None where the source does not tell."""
    if not open_split(source, split, crop, data_dir).has_visibility:
        return None
    where = dict(crop=crop, data_dir=data_dir)
    return read_split(source, split, ("visible",), ids, **where)["visible"]
