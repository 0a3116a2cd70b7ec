"""TensorFlow Datasets builders for the three sources of hands.

Each builder stores 128x128 crops, cut once at preparation, as raw uint8 bytes
(no PNG to decode), their keypoints in crop pixels, which joints are visible
(`visible`) and the sample's index in its source split (`id`). One builder config
per crop mode; the test split is always cut with the biased crop, as the
competition's test set was.

Visibility: synthetic hands mark the joints that another part of the hand covers
(data_pipeline.synthetic), RHD keeps its annotation's flags (data_pipeline.rhd), and
the competition's files have none: every joint of theirs is marked visible, so a
kaggle source gives no split into visible and hidden joints.

Splits: `train`, `validation` (held out of the source's training data by a seeded
shuffle, 480 samples by default, as the paper) and `test`. A source with no more
training samples than that has a tenth of them held out instead (at least one), and
one with fewer than two has no train or validation split; its test split is always
there. The number held out is kept in the metadata as `num_validation`.

`tfds build` works too, e.g. for the competition's files:
    tfds build hjr_kaggle/biased --imports data_pipeline.tfds_builders \\
        --manual_dir /path/to/folder_with_h5_files
"""

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds

from . import kaggle_h5, parallel, rhd
from .crop import crop_hand
from .errors import UserError
from .keypoints import CROP_SIZE, NUM_JOINTS
from .splits import hold_out

TEST_INDEX_OFFSET = 10**9  # synthetic test frames come from their own index range


def _example(index, patch, keypoints, visible) -> tuple:
    """(key, features) of one stored sample."""
    features = {"image": patch, "keypoints": keypoints, "visible": visible}
    return int(index), {**features, "id": int(index)}


@dataclasses.dataclass(eq=False)
class HandConfig(tfds.core.BuilderConfig):
    """How a source is turned into crops (the name must tell configs apart)."""

    crop: str = "biased"  # "biased" or "centered", for train and validation
    num_validation: int = 480  # samples held out of the training data
    split_seed: int = 0  # seed of the shuffle that picks the validation samples
    num_train: int = 10000  # synthetic only: training samples after the hold-out
    num_test: int = 1000  # synthetic only: labelled test samples
    seed: int = 0  # synthetic only: seed of the drawn hands


class _HandBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "`visible`: bool [21], whether each joint is visible.",
    }
    BUILDER_CONFIGS = [
        HandConfig(name="biased", crop="biased"),
        HandConfig(name="centered", crop="centered"),
    ]
    LABELLED_SPLITS = ("train", "validation", "test")
    HAS_VISIBILITY = True  # whether `visible` tells hidden joints apart

    def _info(self):
        features = {
            "image": tfds.features.Tensor(
                shape=(CROP_SIZE, CROP_SIZE, 3),
                dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES,
                doc="RGB crop, 0..255",
            ),
            "keypoints": tfds.features.Tensor(
                shape=(NUM_JOINTS, 2),
                dtype=np.float32,
                doc="x = column, y = row in crop pixels; zeros where unlabelled",
            ),
            "visible": tfds.features.Tensor(
                shape=(NUM_JOINTS,),
                dtype=np.bool_,
                doc="joint not covered (synthetic, RHD's flag); all True for kaggle",
            ),
            "id": tfds.features.Scalar(dtype=np.int64, doc="index in source split"),
        }
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
            homepage="https://github.com/sarlinpe/Hand-Joint-Recognition",
        )

    # TFDS prints "Downloading and preparing dataset Unknown size (download: Unknown
    # size, ...)" before and "Dataset ... downloaded and prepared to ..." after
    # preparing: hjr says what it prepares where itself (sources.prepare).
    def _log_download_bytes(self):
        pass

    def _log_download_done(self):
        pass

    def _crops(self, samples, crop):
        """Examples from (id, frame, keypoints, visible) samples cut with `crop`."""
        for index, image, keypoints, visible in samples:
            yield _example(index, *crop_hand(image, keypoints, crop), visible)

    def _note_held_out(self, held):
        """Record how many samples `hold_out` gave to validation (0 for None)."""
        self.info.metadata["num_validation"] = 0 if held is None else len(held[1])

    def _note_skipped(self, split, skipped):
        self.info.metadata[f"skipped_{split}"] = len(skipped)
        if skipped:
            first = ", ".join(f"{i} ({why})" for i, why in skipped[:5])
            print(f"hjr: {self.name} {split}: skipped {len(skipped)} samples: {first}")


class HjrSynthetic(_HandBuilder):
    """Procedurally drawn hands on textured backgrounds (data_pipeline.synthetic)."""

    def _split_generators(self, dl_manager):
        conf = self.builder_config
        if conf.num_train < 1:  # else the pool is larger than the hold-out
            raise UserError("synthetic:train=0: expected at least 1 training sample")
        pool = conf.num_train + conf.num_validation
        held = hold_out(pool, conf.num_validation, conf.split_seed, "synthetic")
        self._note_held_out(held)
        train, validation = held
        test = np.arange(conf.num_test)
        return {
            "train": self._generate_examples(train, 0, conf.crop),
            "validation": self._generate_examples(validation, 0, conf.crop),
            "test": self._generate_examples(test, TEST_INDEX_OFFSET, "biased"),
        }

    def _generate_examples(self, indices, offset, crop):
        seed = self.builder_config.seed
        draw = functools.partial(parallel.synthetic_crop, seed, offset, crop)
        for index, sample in zip(indices, parallel.in_order(draw, indices)):
            yield _example(index, *sample)


class HjrKaggle(_HandBuilder):
    """The course competition's training.h5 / testing.h5 (no visibility in them:
    every joint is marked visible)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put the competition's `training.h5` and/or `testing.h5` (Kaggle, course
    "Machine Perception 2018: Hand Joint Recognition", Data tab) in one folder and
    pass it: `hjr ... --data /path/to/folder` or `tfds build --manual_dir ...`.
    """
    LABELLED_SPLITS = ("train", "validation")
    HAS_VISIBILITY = False

    def _split_generators(self, dl_manager):
        conf = self.builder_config
        folder = dl_manager.manual_dir
        splits, held = {}, None
        has_training = (folder / "training.h5").exists()
        if has_training:
            with kaggle_h5.open_kaggle(folder / "training.h5", "train") as reader:
                count, where = len(reader), str(reader.path)
            held = hold_out(count, conf.num_validation, conf.split_seed, where)
        if held is not None:
            train, val = held
            splits["train"] = self._generate_examples(folder, "train", train)
            splits["validation"] = self._generate_examples(folder, "validation", val)
        if (folder / "testing.h5").exists():
            kaggle_h5.open_kaggle(folder / "testing.h5", "test").close()
            splits["test"] = self._generate_examples(folder, "test", None)
        if not splits and has_training:
            raise UserError(
                f"{where}: too few training samples to split into train and "
                "validation, and no testing.h5 beside it: nothing to prepare"
            )
        if not splits:
            raise UserError(f"{folder}: holds neither training.h5 nor testing.h5")
        self._note_held_out(held)
        return splits

    def _generate_examples(self, folder, split, indices):
        visible = np.ones(NUM_JOINTS, bool)
        if split == "test":
            with kaggle_h5.open_kaggle(folder / "testing.h5", "test") as reader:
                blank = np.zeros((NUM_JOINTS, 2), np.float32)
                for index, image, _ in reader:
                    yield index, {
                        "image": image,
                        "keypoints": blank,
                        "visible": visible,
                        "id": index,
                    }
            return
        wanted = set(indices.tolist())
        with kaggle_h5.open_kaggle(folder / "training.h5", "train") as reader:
            samples = (sample + (visible,) for sample in reader.samples(indices))
            yield from self._crops(samples, self.builder_config.crop)
            self._note_skipped(split, [s for s in reader.skipped if s[0] in wanted])


class HjrRhd(_HandBuilder):
    """The public Rendered Handpose Dataset (RHD v1.1, `RHD_published_v2`).

    One hand per frame, the one with more mask pixels, with its joints' visibility
    flags; frames whose hand has joints outside the frame are skipped and counted.
    `evaluation` is the test split.
    """

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download RHD v1.1 from https://lmb.informatik.uni-freiburg.de/resources/datasets/
    RenderedHandposeDataset.en.html (research use only), unzip it and pass the folder
    holding `RHD_published_v2/`: `hjr ... --data /path/to/folder`.
    """

    def _split_generators(self, dl_manager):
        conf = self.builder_config
        root = dl_manager.manual_dir
        with rhd.open_rhd(root, "training") as reader:
            ids, where = np.array(reader.ids), str(reader.root)
        rhd.open_rhd(root, "evaluation").close()
        held = hold_out(len(ids), conf.num_validation, conf.split_seed, where)
        self._note_held_out(held)
        splits = {}
        if held is not None:
            train, val = ids[held[0]], ids[held[1]]
            splits["train"] = self._generate_examples(root, "training", "train", train)
            splits["validation"] = self._generate_examples(
                root, "training", "validation", val
            )
        splits["test"] = self._generate_examples(root, "evaluation", "test", None)
        return splits

    def _generate_examples(self, root, rhd_split, split, indices):
        crop = "biased" if split == "test" else self.builder_config.crop
        with rhd.open_rhd(root, rhd_split) as reader:
            yield from self._crops(reader.samples(indices, visibility=True), crop)
            self._note_skipped(split, reader.skipped)
