"""Reader for the course competition's HDF5 files, training.h5 and testing.h5.

Layout (as the course published the files):
- training.h5, group "train": "img" [N, 3, H, W] BGR 0..255 (full 320x320 RHD frames)
  and "kp_2D" [N, 21, 2] in full-frame pixels, x = column, y = row.
- testing.h5, group "test": "img" [M, 3, 128, 128] BGR crops, no labels.

The reader validates the layout when the file is opened and yields HWC RGB uint8 images.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.keypoints import CROP_SIZE, NUM_JOINTS

FILE_NAMES = {"train": "training.h5", "test": "testing.h5"}  # the group is the split
CHUNK_SIZE = 256  # samples per h5py read
MAX_GAP = 16  # indices further apart than this are read in separate slices


def open_kaggle(
    path: Path,
    split: str,
    max_bad_fraction: float = 0.01,
    chunk_size: int = CHUNK_SIZE,
) -> KaggleReader:
    """Open one competition file and check its layout and keypoints.

    path: the .h5 file, or the folder that holds training.h5 / testing.h5.
    split: "train" (group "train": img + kp_2D) or "test" (group "test": img).
    max_bad_fraction: training samples whose keypoints are NaN/inf or outside the frame
        are skipped (listed in `skipped`) while there are at most
        floor(max_bad_fraction * N) of them; more raises UserError.
    chunk_size: samples read per h5py access while iterating.
    Raises UserError for a missing, unreadable or wrongly laid out file.
    """
    if split not in FILE_NAMES:
        raise UserError(f"split {split!r}: expected 'train' or 'test'")
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAMES[split]
    if not path.is_file():
        raise UserError(
            f"{path}: file not found; expected the competition's {FILE_NAMES[split]}"
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise UserError(
            f"{path}: not a readable HDF5 file (truncated or another format?): {err}"
        ) from None
    try:
        return KaggleReader(path, split, h5, max_bad_fraction, chunk_size)
    except BaseException:
        h5.close()
        raise


class KaggleReader:
    """Samples of one competition file, in file order; use open_kaggle() to make one.

    Iterating yields (index, image, keypoints):
        index: int, position in the file (skipped samples leave gaps)
        image: uint8 [H, W, 3] RGB ([128, 128, 3] for the test split)
        keypoints: float32 [21, 2] full-frame pixels (x = column, y = row), or None
            for the test split.
    len() counts every sample in the file, including the skipped ones.
    skipped: [(index, reason)] of training samples with unusable keypoints; filled when
        the file is opened.
    """

    def __init__(
        self,
        path: Path,
        split: str,
        h5: h5py.File,
        max_bad_fraction: float,
        chunk_size: int,
    ):
        self.path = path
        self.split = split
        self.chunk_size = max(1, int(chunk_size))
        self._h5 = h5
        self._img = _dataset(h5, path, split, "img")
        self._check_images()
        self._keypoints = None
        self.skipped: list[tuple[int, str]] = []
        if split == "train":
            self._keypoints = self._read_keypoints()
            self.skipped = self._bad_samples(max_bad_fraction)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the stored images."""
        return tuple(int(s) for s in self._img.shape[2:])

    def __len__(self) -> int:
        return int(self._img.shape[0])

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        return self.samples()

    def samples(self, indices=None) -> Iterator[tuple]:
        """Like iterating, but only the given sorted indices (all when None).

        Runs of nearby indices are read in one slice, isolated ones on their own.
        """
        skip = {index for index, _ in self.skipped}
        wanted = range(len(self)) if indices is None else [int(i) for i in indices]
        wanted = [i for i in wanted if i not in skip]
        for run in _runs(wanted, self.chunk_size, MAX_GAP):
            images = self._read_chunk(run[0], run[-1] + 1)
            for index in run:
                keypoints = None
                if self._keypoints is not None:
                    keypoints = self._keypoints[index].copy()
                yield index, images[index - run[0]], keypoints

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> KaggleReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _field(self, name: str) -> str:
        return f"{self.path}: dataset '{self.split}/{name}'"

    def _check_images(self) -> None:
        shape = self._img.shape
        expected = "[N, 3, H, W] (channel-first BGR)"
        if self.split == "test":
            expected = f"[N, 3, {CROP_SIZE}, {CROP_SIZE}] (channel-first BGR crops)"
        problem = f"{self._field('img')} has shape {shape}; expected"
        if len(shape) != 4 or shape[1] != 3:
            raise UserError(f"{problem} {expected}")
        if self.split == "test" and shape[2:] != (CROP_SIZE, CROP_SIZE):
            raise UserError(f"{problem} {expected}")
        if min(shape) == 0:
            raise UserError(f"{problem} at least one non-empty image")

    def _read_keypoints(self) -> np.ndarray:
        """All keypoints, float32 [N, 21, 2] (small enough to keep in memory)."""
        dataset = _dataset(self._h5, self.path, self.split, "kp_2D")
        expected = (len(self), NUM_JOINTS, 2)
        if dataset.shape != expected:
            raise UserError(
                f"{self._field('kp_2D')} has shape {dataset.shape}; expected {expected}"
                f" (one [{NUM_JOINTS}, 2] (x, y) array per image in '{self.split}/img')"
            )
        try:
            return np.asarray(dataset[()], dtype=np.float32)
        except OSError as err:
            raise UserError(
                f"{self._field('kp_2D')} could not be read: {err}"
            ) from None

    def _bad_samples(self, max_bad_fraction: float) -> list[tuple[int, str]]:
        height, width = self.image_size
        bad = keypoint_problems(self._keypoints, width, height)
        allowed = math.floor(max_bad_fraction * len(self) + 1e-9)
        if len(bad) > allowed:
            index, reason = bad[0]
            raise UserError(
                f"{self._field('kp_2D')}: bad keypoints in {len(bad)} of {len(self)} "
                f"samples, the first in sample {index}: {reason}; expected finite "
                f"(x, y) in [0, {width}] x [0, {height}], with at most {allowed} bad "
                f"samples (max_bad_fraction={max_bad_fraction})"
            )
        return bad

    def _read_chunk(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as uint8 [n, H, W, 3] RGB."""
        try:
            block = self._img[start:stop]
        except OSError as err:
            raise UserError(
                f"{self._field('img')}: samples {start}..{stop - 1} could not be read: "
                f"{err}"
            ) from None
        if block.dtype.kind == "f":
            finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
            if not finite.all():
                index = start + int(np.flatnonzero(~finite)[0])
                raise UserError(
                    f"{self._field('img')}: sample {index} has NaN or inf pixels; "
                    "expected intensities 0..255"
                )
            block = np.rint(block)
        if block.dtype != np.uint8:
            block = np.clip(block, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(block[:, ::-1].transpose(0, 2, 3, 1))


def keypoint_problems(
    keypoints: np.ndarray, width: int, height: int
) -> list[tuple[int, str]]:
    """(index, reason) for each sample with a NaN/inf joint or one outside the frame.

    keypoints: float [N, 21, 2] (x, y); the frame is [0, width] x [0, height].
    """
    x, y = keypoints[..., 0], keypoints[..., 1]
    finite = np.isfinite(keypoints).all(axis=-1)
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    problems = []
    for index in np.flatnonzero(~(finite & inside).all(axis=1)):
        if not finite[index].all():
            joint = int(np.flatnonzero(~finite[index])[0])
            what = "is not finite"
        else:
            joint = int(np.flatnonzero(~inside[index])[0])
            what = f"is outside [0, {width}] x [0, {height}]"
        jx, jy = keypoints[index, joint]
        problems.append((int(index), f"joint {joint} at ({jx:g}, {jy:g}) {what}"))
    return problems


def _dataset(h5: h5py.File, path: Path, group: str, name: str) -> h5py.Dataset:
    """The numeric dataset group/name, or a UserError saying what the file holds."""
    node = h5.get(group)
    if not isinstance(node, h5py.Group):
        raise UserError(
            f"{path}: no group '{group}' (the file holds {_names(h5)}); expected group "
            f"'{group}' as in the competition's {FILE_NAMES[group]}"
        )
    dataset = node.get(name)
    if not isinstance(dataset, h5py.Dataset):
        raise UserError(
            f"{path}: no dataset '{group}/{name}' (group '{group}' holds "
            f"{_names(node)}); expected '{group}/{name}'"
        )
    if dataset.dtype.kind not in "uif":
        raise UserError(
            f"{path}: dataset '{group}/{name}' has dtype {dataset.dtype}; "
            "expected integers or floats"
        )
    return dataset


def _names(group: h5py.Group) -> str:
    names = sorted(group.keys())
    return ", ".join(f"'{n}'" for n in names) if names else "nothing"


def _runs(indices: list, size: int, gap: int) -> Iterator[list]:
    """Sorted indices cut into runs spanning fewer than `size` positions, with no
    gap wider than `gap` inside a run."""
    run = []
    for index in indices:
        if run and (index - run[0] >= size or index - run[-1] > gap):
            yield run
            run = []
        run.append(index)
    if run:
        yield run


def to_bgr_chw(images_rgb: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] RGB -> [N, 3, H, W] BGR, the competition's storage."""
    return np.ascontiguousarray(np.asarray(images_rgb)[..., ::-1].transpose(0, 3, 1, 2))


def write_kaggle_files(folder, train_images_rgb, train_keypoints, test_images_rgb=None):
    """Write folder/training.h5 (and folder/testing.h5) in the competition's layout.

    train_images_rgb: uint8 [N, H, W, 3]; train_keypoints: [N, 21, 2] (x, y);
    test_images_rgb: uint8 [M, 128, 128, 3] or None (no testing.h5).
    Stored as "train/img" [N, 3, H, W] BGR, "train/kp_2D" float32 [N, 21, 2] and
    "test/img" [M, 3, 128, 128] BGR.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "training.h5", "w") as h5:
        h5.create_dataset("train/img", data=to_bgr_chw(train_images_rgb))
        h5.create_dataset("train/kp_2D", data=np.asarray(train_keypoints, np.float32))
    if test_images_rgb is not None:
        with h5py.File(folder / "testing.h5", "w") as h5:
            h5.create_dataset("test/img", data=to_bgr_chw(test_images_rgb))
