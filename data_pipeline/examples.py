"""The samples of each source, split and cut: what a prepared source stores.

`plan(source, preparation)` returns, per split, a function that yields the split's
samples `(id, image uint8 [128, 128, 3], keypoints float32 [21, 2], visible bool
[21])`, and the metadata that goes with them (`num_validation`, and once a split
was generated, `skipped_<split>`). It needs neither TensorFlow nor TensorFlow
Datasets: hjr's own preparation (data_pipeline.store) and the TFDS builders
(data_pipeline.tfds_builders, for `tfds build`) both take their samples here.

Crops: one crop mode (`crop`) for train and validation; the test split is always
cut with the biased crop, as the competition's test set was.

Visibility: synthetic hands mark the joints that another part of the hand covers
(data_pipeline.synthetic), RHD keeps its annotation's flags (data_pipeline.rhd), and
the competition's files have none: every joint of theirs is marked visible, so a
kaggle source gives no split into visible and hidden joints.

Splits: `train`, `validation` (held out of the source's training data by a seeded
shuffle, 480 samples by default, as the paper) and `test`. A source with no more
training samples than that has a tenth of them held out instead (at least one), and
one with fewer than two has no train or validation split; its test split is always
there.
"""

import functools
from dataclasses import dataclass

import numpy as np

from . import kaggle_h5, parallel, rhd
from .crop import crop_hand
from .errors import UserError
from .keypoints import NUM_JOINTS
from .splits import hold_out

TEST_INDEX_OFFSET = 10**9  # synthetic test frames come from their own index range
LABELLED = {  # the splits whose keypoints are labels (the competition's test is not)
    "synthetic": ("train", "validation", "test"),
    "kaggle": ("train", "validation"),
    "rhd": ("train", "validation", "test"),
}
HAS_VISIBILITY = {"synthetic": True, "kaggle": False, "rhd": True}


@dataclass
class Preparation:
    """How a source is turned into crops."""

    crop: str = "biased"  # "biased" or "centered", for train and validation
    num_validation: int = 480  # samples held out of the training data
    split_seed: int = 0  # seed of the shuffle that picks the validation samples
    num_train: int = 10000  # synthetic only: training samples after the hold-out
    num_test: int = 1000  # synthetic only: labelled test samples
    seed: int = 0  # synthetic only: seed of the drawn hands

    def name(self, kind: str, fingerprint: str = "") -> str:
        """A name that tells preparations apart (a folder's files' fingerprint
        for kaggle and rhd sources)."""
        if kind == "synthetic":
            return (
                f"{self.crop}_train{self.num_train}_val{self.num_validation}"
                f"_test{self.num_test}_seed{self.seed}_split{self.split_seed}"
            )
        return (
            f"{self.crop}_val{self.num_validation}_split{self.split_seed}_{fingerprint}"
        )


def plan(kind: str, path, prep: Preparation):
    """({split: function yielding its samples}, metadata) of a source."""
    planner = {"synthetic": _synthetic, "kaggle": _kaggle, "rhd": _rhd}[kind]
    metadata = {}
    splits = planner(path, prep, metadata)
    return splits, metadata


def _held_out(held, metadata):
    metadata["num_validation"] = 0 if held is None else len(held[1])


def _crops(samples, crop):
    for index, image, keypoints, visible in samples:
        patch, moved = crop_hand(image, keypoints, crop)
        yield int(index), patch, moved, visible


def _note_skipped(metadata, where, split, skipped):
    metadata[f"skipped_{split}"] = len(skipped)
    if skipped:
        first = ", ".join(f"{i} ({why})" for i, why in skipped[:5])
        print(f"hjr: {where} {split}: skipped {len(skipped)} samples: {first}")


def _synthetic(path, prep, metadata):
    if prep.num_train < 1:  # else the pool is larger than the hold-out
        raise UserError("synthetic:train=0: expected at least 1 training sample")
    pool = prep.num_train + prep.num_validation
    held = hold_out(pool, prep.num_validation, prep.split_seed, "synthetic")
    _held_out(held, metadata)
    train, validation = held

    def drawn(indices, offset, crop):
        draw = functools.partial(parallel.synthetic_crop, prep.seed, offset, crop)
        for index, sample in zip(indices, parallel.in_order(draw, indices)):
            yield (int(index), *sample)

    return {
        "train": functools.partial(drawn, train, 0, prep.crop),
        "validation": functools.partial(drawn, validation, 0, prep.crop),
        "test": functools.partial(
            drawn, np.arange(prep.num_test), TEST_INDEX_OFFSET, "biased"
        ),
    }


def _kaggle(folder, prep, metadata):
    splits, held = {}, None
    has_training = (folder / "training.h5").exists()
    if has_training:
        with kaggle_h5.open_kaggle(folder / "training.h5", "train") as reader:
            count, where = len(reader), str(reader.path)
        held = hold_out(count, prep.num_validation, prep.split_seed, where)
    visible = np.ones(NUM_JOINTS, bool)

    def training(split, indices):
        wanted = set(indices.tolist())
        with kaggle_h5.open_kaggle(folder / "training.h5", "train") as reader:
            samples = (sample + (visible,) for sample in reader.samples(indices))
            yield from _crops(samples, prep.crop)
            skipped = [s for s in reader.skipped if s[0] in wanted]
            _note_skipped(metadata, "hjr_kaggle", split, skipped)

    def testing():
        blank = np.zeros((NUM_JOINTS, 2), np.float32)
        with kaggle_h5.open_kaggle(folder / "testing.h5", "test") as reader:
            for index, image, _ in reader:
                yield int(index), image, blank, visible

    if held is not None:
        splits["train"] = functools.partial(training, "train", held[0])
        splits["validation"] = functools.partial(training, "validation", held[1])
    if (folder / "testing.h5").exists():
        kaggle_h5.open_kaggle(folder / "testing.h5", "test").close()
        splits["test"] = testing
    if not splits and has_training:
        raise UserError(
            f"{where}: too few training samples to split into train and "
            "validation, and no testing.h5 beside it: nothing to prepare"
        )
    if not splits:
        raise UserError(f"{folder}: holds neither training.h5 nor testing.h5")
    _held_out(held, metadata)
    return splits


def _rhd(root, prep, metadata):
    with rhd.open_rhd(root, "training") as reader:
        ids, where = np.array(reader.ids), str(reader.root)
    rhd.open_rhd(root, "evaluation").close()
    held = hold_out(len(ids), prep.num_validation, prep.split_seed, where)
    _held_out(held, metadata)

    def samples(rhd_split, split, indices):
        crop = "biased" if split == "test" else prep.crop
        with rhd.open_rhd(root, rhd_split) as reader:
            yield from _crops(reader.samples(indices, visibility=True), crop)
            _note_skipped(metadata, "hjr_rhd", split, reader.skipped)

    splits = {}
    if held is not None:
        splits["train"] = functools.partial(samples, "training", "train", ids[held[0]])
        splits["validation"] = functools.partial(
            samples, "training", "validation", ids[held[1]]
        )
    splits["test"] = functools.partial(samples, "evaluation", "test", None)
    return splits
