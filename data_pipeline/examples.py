"""The samples of each source, split and cut: what a prepared source stores.

`plan(kind, location, preparation)` returns, per split, its Samples: called, they
yield the split's samples `(id, image uint8 [128, 128, 3], keypoints float32
[21, 2], visible bool [21])`, a coco source's with a fifth item, its fields
{name: value} (data_pipeline.store.FIELDS), and the metadata that goes with them
(`num_validation`, and once a split was generated, `skipped_<split>`; a coco
source's also `labelled` and `has_visibility`). Unlabelled joints (COCO's v = 0)
are NaN (data_pipeline.keypoints). It needs neither TensorFlow nor TensorFlow
Datasets: hjr's own preparation (data_pipeline.store) and the TFDS builders
(data_pipeline.tfds_builders, for `tfds build`) both take their samples here.

Crops: one crop mode (`crop`) for train and validation; the test split is always
cut with the biased crop, as the competition's test set was. COCO files give their
hands' boxes: their crops are always the padded box (data_pipeline.coco).

Visibility: synthetic hands mark the joints that another part of the hand covers
(data_pipeline.synthetic), RHD keeps its annotation's flags (data_pipeline.rhd), and
the competition's files have none: every joint of theirs is marked visible, so a
kaggle source gives no split into visible and hidden joints. A COCO file's joints
are visible where v = 2; one that uses only one of v = 1 and v = 2 tells nothing
apart, and its labelled joints all count as visible.

Splits: `train`, `validation` (held out of the source's training data by a seeded
shuffle, 480 samples by default, as the paper) and `test`. A source with no more
training samples than that has a tenth of them held out instead (at least one), and
one with fewer than two has no train or validation split; its test split is always
there.
"""

import functools
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import coco, kaggle_h5, parallel, rhd
from .crop import crop_hand, frame_slice
from .errors import UserError
from .keypoints import CROP_SIZE, NUM_JOINTS
from .splits import hold_out

SPLITS_ORDER = ("train", "validation", "test")
TEST_INDEX_OFFSET = 10**9  # synthetic test frames come from their own index range
LABELLED = {  # the splits whose keypoints are labels (the competition's test is not)
    "synthetic": ("train", "validation", "test"),
    "kaggle": ("train", "validation"),
    "rhd": ("train", "validation", "test"),
    "coco": ("train", "validation", "test"),  # the metadata says, per file (plan)
    "images": (),
}
HAS_VISIBILITY = {
    "synthetic": True,
    "kaggle": False,
    "rhd": True,
    "coco": True,
    "images": False,
}


@dataclass
class Preparation:
    """How a source is turned into crops."""

    crop: str = "biased"  # "biased" or "centered", for train and validation
    num_validation: int = 480  # samples held out of the training data
    split_seed: int = 0  # seed of the shuffle that picks the validation samples
    num_train: int = 10000  # synthetic only: training samples after the hold-out
    num_test: int = 1000  # synthetic only: labelled test samples
    seed: int = 0  # synthetic only: seed of the drawn hands
    padding: float = 1.25  # coco only: the crop's side over the box's longer side
    order: str = "coco"  # coco only: the files' joint order (data_pipeline.coco)
    images: str = ""  # coco only: the image folder ("": beside the files)
    boxes: str = ""  # coco only: a detection results file whose boxes are the hands
    min_score: float = 0.0  # coco with boxes: the lowest box score kept
    # Yield each crop's surroundings in its frame's pixels in place of the crop:
    # (pixels, place) of data_pipeline.crop.frame_slice.
    context: bool = False

    def name(self, kind: str, fingerprint: str = "") -> str:
        """A name that tells preparations apart (the files' fingerprint for
        kaggle, rhd and coco sources)."""
        if kind == "coco":
            boxes = f"_dets{self.min_score:g}" if self.boxes else ""
            return (
                f"box{self.padding:g}_{self.order}_val{self.num_validation}"
                f"_split{self.split_seed}{boxes}_{fingerprint}"
            )
        if kind == "images":
            return f"pad{self.padding:g}_{fingerprint}"
        if kind == "synthetic":
            return (
                f"{self.crop}_train{self.num_train}_val{self.num_validation}"
                f"_test{self.num_test}_seed{self.seed}_split{self.split_seed}"
            )
        return (
            f"{self.crop}_val{self.num_validation}_split{self.split_seed}_{fingerprint}"
        )


@dataclass(frozen=True)
class Samples:
    """One split's samples: calling it yields them (`make()`); `count` says how
    many it will yield where that is known before reading (progress lines)."""

    make: Callable
    count: Optional[int] = None

    def __call__(self):
        return self.make()


def plan(kind: str, path, prep: Preparation):
    """({split: function yielding its samples}, metadata) of a source: `path` is
    its folder, a coco source's {split: file} (data_pipeline.sources)."""
    planner = {
        "synthetic": _synthetic,
        "kaggle": _kaggle,
        "rhd": _rhd,
        "coco": _coco,
        "images": _images,
    }
    planner = planner[kind]
    metadata = {}
    splits = planner(path, prep, metadata)
    return splits, metadata


def _held_out(held, metadata):
    metadata["num_validation"] = 0 if held is None else len(held[1])


def _crops(samples, crop, context=False):
    for index, image, keypoints, visible in samples:
        patch, moved = crop_hand(image, keypoints, crop, context)
        yield int(index), patch, moved, visible


def _padded(samples, context):
    """Crops as they are or, with `context`, their surroundings: a source that
    holds only the crops has each crop as its own frame, its box the whole crop
    (zeros around it)."""
    for index, image, keypoints, visible in samples:
        if context:
            image = frame_slice(image, (0, 0, CROP_SIZE))
        yield index, image, keypoints, visible


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
        draw = functools.partial(
            parallel.synthetic_crop, prep.seed, offset, crop, context=prep.context
        )
        for index, sample in zip(indices, parallel.in_order(draw, indices)):
            yield (int(index), *sample)

    test = np.arange(prep.num_test)
    return {
        "train": Samples(functools.partial(drawn, train, 0, prep.crop), len(train)),
        "validation": Samples(
            functools.partial(drawn, validation, 0, prep.crop), len(validation)
        ),
        "test": Samples(
            functools.partial(drawn, test, TEST_INDEX_OFFSET, "biased"), len(test)
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
            yield from _crops(samples, prep.crop, prep.context)
            skipped = [s for s in reader.skipped if s[0] in wanted]
            _note_skipped(metadata, "hjr_kaggle", split, skipped)

    def testing():
        blank = np.zeros((NUM_JOINTS, 2), np.float32)
        with kaggle_h5.open_kaggle(folder / "testing.h5", "test") as reader:
            samples = ((int(i), image, blank, visible) for i, image, _ in reader)
            yield from _padded(samples, prep.context)

    if held is not None:
        for name, indices in zip(("train", "validation"), held):
            splits[name] = Samples(
                functools.partial(training, name, indices), len(indices)
            )
    if (folder / "testing.h5").exists():
        with kaggle_h5.open_kaggle(folder / "testing.h5", "test") as reader:
            splits["test"] = Samples(testing, len(reader))
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
    with rhd.open_rhd(root, "evaluation") as reader:
        evaluation = len(reader)
    held = hold_out(len(ids), prep.num_validation, prep.split_seed, where)
    _held_out(held, metadata)

    def samples(rhd_split, split, indices):
        crop = "biased" if split == "test" else prep.crop
        with rhd.open_rhd(root, rhd_split) as reader:
            samples = reader.samples(indices, visibility=True)
            yield from _crops(samples, crop, prep.context)
            _note_skipped(metadata, "hjr_rhd", split, reader.skipped)

    splits = {}
    if held is not None:
        for name, indices in zip(("train", "validation"), held):
            chosen = ids[indices]
            splits[name] = Samples(
                functools.partial(samples, "training", name, chosen), len(chosen)
            )
    test = functools.partial(samples, "evaluation", "test", None)
    splits["test"] = Samples(test, evaluation)
    return splits


def _coco(files, prep, metadata):
    """Hands of COCO keypoint files: `train` (with the validation hold-out unless
    a `validation` file is given), `validation` and `test` as given. A lone file
    of boxes (no labelled joint) is a test split; with `boxes` (detection
    results), the detections on the file's images are the test split, labelled
    where they find a labelled hand of the file (data_pipeline.coco.match)."""
    if prep.boxes:
        return _detections(files, prep, metadata)
    read = {}
    for split, path in files.items():
        hands, labelled = coco.read_hands(path, prep.order)
        folder = coco.image_folder(path, hands, prep.images or None)
        read[split] = (path, hands, folder, labelled)
    if list(read) == ["train"] and not read["train"][3]:
        read = {"test": read["train"]}  # boxes to predict on
    splits, held = {}, None
    if "train" in read:
        path, hands, folder, labelled = read["train"]
        if not labelled:
            raise UserError(f"{path}: no labelled joint (v > 0) to train on")
        if "validation" not in read:
            held = hold_out(len(hands), prep.num_validation, prep.split_seed, path)
            if held is None:
                raise UserError(f"{path}: {len(hands)} hand: too few to train on")
            read["validation"] = (path, [hands[i] for i in held[1]], folder, True)
            read["train"] = (path, [hands[i] for i in held[0]], folder, True)
    flags = np.concatenate([h.flags for r in read.values() for h in r[1]] or [[]])
    tells = bool((flags == 1).any() and (flags == 2).any())
    for split, (path, hands, folder, _) in read.items():
        crops = functools.partial(
            coco.crops, path, hands, folder, prep.padding, tells, prep.context
        )
        splits[split] = Samples(crops, len(hands))
    metadata["num_validation"] = len(read.get("validation", (0, ()))[1])
    metadata["labelled"] = [s for s in SPLITS_ORDER if s in read and read[s][3]]
    metadata["has_visibility"] = tells
    return splits


def _detections(files, prep, metadata):
    """The test split of a COCO file's images cut at a detector's boxes."""
    from .coco import labelled_by_match, load, read_detections, read_images

    path = next(iter(files.values()))
    truth, labelled = coco.read_hands(path, prep.order)
    images = read_images(load(path), path)
    found = read_detections(prep.boxes, images, prep.min_score)
    if labelled:
        found, missed = labelled_by_match(truth, found)
        metadata["hands"] = sum(bool((h.flags > 0).any()) for h in truth)
        metadata["missed"] = missed
    metadata["detections"] = len(found)
    flags = np.concatenate([h.flags for h in found] or [[]])
    tells = bool((flags == 1).any() and (flags == 2).any())
    folder = coco.image_folder(path, found, prep.images or None)
    crops = functools.partial(
        coco.crops, prep.boxes, found, folder, prep.padding, tells, prep.context
    )
    metadata["num_validation"] = 0
    metadata["labelled"] = ["test"] if labelled else []
    metadata["has_visibility"] = tells
    return {"test": Samples(crops, len(found))}


def _images(folder, prep, metadata):
    """A folder of images: the test split, one hand per image (its whole box)."""
    hands = coco.folder_hands(folder)
    crops = functools.partial(
        coco.crops, folder, hands, folder, prep.padding, False, prep.context
    )
    metadata["num_validation"] = 0
    return {"test": Samples(crops, len(hands))}
