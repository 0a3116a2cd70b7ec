"""TensorFlow Datasets builders of the three sources of hands, for `tfds build` and
TFDS-based tools: the samples of data_pipeline.examples (crops, splits, visibility)
as TFDS datasets, one builder config per crop mode. hjr itself reads its own
prepared arrays (data_pipeline.store), without TensorFlow.

    tfds build hjr_kaggle/biased --imports data_pipeline.tfds_builders \\
        --manual_dir /path/to/folder_with_h5_files
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from .examples import HAS_VISIBILITY, LABELLED, Preparation, plan
from .keypoints import CROP_SIZE, NUM_JOINTS


@dataclasses.dataclass(eq=False)
class HandConfig(tfds.core.BuilderConfig):
    """How a source is turned into crops (data_pipeline.examples.Preparation)."""

    crop: str = "biased"
    num_validation: int = 480
    split_seed: int = 0
    num_train: int = 10000
    num_test: int = 1000
    seed: int = 0

    def preparation(self) -> Preparation:
        fields = [f.name for f in dataclasses.fields(Preparation)]
        return Preparation(**{f: getattr(self, f) for f in fields if hasattr(self, f)})


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
    KIND = None  # the source's kind (data_pipeline.sources)

    @property
    def LABELLED_SPLITS(self):
        return LABELLED[self.KIND]

    @property
    def HAS_VISIBILITY(self):
        return HAS_VISIBILITY[self.KIND]

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
    # preparing: hjr says what it prepares where itself.
    def _log_download_bytes(self):
        pass

    def _log_download_done(self):
        pass

    def _split_generators(self, dl_manager):
        path = None if self.KIND == "synthetic" else dl_manager.manual_dir
        splits, metadata = plan(self.KIND, path, self.builder_config.preparation())
        self.info.metadata.update(metadata)
        return {
            name: self._generate_examples(samples, metadata)
            for name, samples in splits.items()
        }

    def _generate_examples(self, samples, metadata):
        for index, image, keypoints, visible in samples():
            features = {"image": image, "keypoints": keypoints, "visible": visible}
            yield index, {**features, "id": index}
        self.info.metadata.update(metadata)  # the split's skipped samples


class HjrSynthetic(_HandBuilder):
    """Procedurally drawn hands on textured backgrounds (data_pipeline.synthetic)."""

    KIND = "synthetic"


class HjrKaggle(_HandBuilder):
    """The course competition's training.h5 / testing.h5 (no visibility in them:
    every joint is marked visible)."""

    KIND = "kaggle"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put the competition's `training.h5` and/or `testing.h5` (Kaggle, course
    "Machine Perception 2018: Hand Joint Recognition", Data tab) in one folder and
    pass it: `hjr ... --data /path/to/folder` or `tfds build --manual_dir ...`.
    """


class HjrRhd(_HandBuilder):
    """The public Rendered Handpose Dataset (RHD v1.1, `RHD_published_v2`).

    One hand per frame, the one with more mask pixels, with its joints' visibility
    flags; frames whose hand has joints outside the frame are skipped and counted.
    `evaluation` is the test split.
    """

    KIND = "rhd"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download RHD v1.1 from https://lmb.informatik.uni-freiburg.de/resources/datasets/
    RenderedHandposeDataset.en.html (research use only), unzip it and pass the folder
    holding `RHD_published_v2/`: `hjr ... --data /path/to/folder`.
    """
