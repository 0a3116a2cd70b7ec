"""Reader for the public RHD dataset (v1.1) in its original, unzipped layout.

RHD_published_v2/<split>/anno_<split>.pickle   {sample id: {'uv_vis', 'xyz', 'K'}}
RHD_published_v2/<split>/color/%05d.png        RGB 320x320
RHD_published_v2/<split>/mask/%05d.png         labels: 2..17 left hand, 18..33 right

One hand per frame, as the dataset authors' loader does: the hand with more mask pixels
(left only if strictly more). Its 21 keypoints are uv_vis[:21, :2] (left) or
uv_vis[21:, :2] (right), in RHD's joint order (see data_pipeline/keypoints.py), and
its joints' visibility the same rows' flag, visible where uv_vis[:, 2] == 1 (the test
of the dataset authors' loader).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.keypoints import NUM_JOINTS

RHD_FOLDER = "RHD_published_v2"
SPLITS = ("training", "evaluation")
FRAME_SIZE = 320  # every RHD frame is 320x320


def open_rhd(root: Path, split: str) -> RhdReader:
    """Open one RHD split and load its annotations.

    root: the RHD_published_v2 folder, or a folder that contains it.
    split: "training" or "evaluation".
    Raises UserError for a missing folder or pickle, or a pickle of the wrong form.
    """
    if split not in SPLITS:
        raise UserError(f"split {split!r}: expected 'training' or 'evaluation'")
    root = Path(root)
    split_dir = _find_split_dir(root, split)
    pickle_path = split_dir / f"anno_{split}.pickle"
    if not pickle_path.is_file():
        raise UserError(
            f"{pickle_path}: annotation file not found; expected RHD's "
            f"anno_{split}.pickle next to color/ and mask/"
        )
    return RhdReader(root, split, split_dir, load_annotations(pickle_path))


def load_annotations(path: Path) -> dict[int, np.ndarray]:
    """uv_vis of every sample: {sample id: float32 [42, 3] (u=x, v=y, visible)}.

    pickle.load can run code stored in the file: load only the official RHD pickle.
    """
    try:
        with open(path, "rb") as f:
            anno = pickle.load(f, encoding="latin1")
    except Exception as err:  # unpickling garbage raises many different types
        raise UserError(
            f"{path}: not a readable pickle ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(anno, dict) or not anno:
        raise UserError(
            f"{path}: holds a {type(anno).__name__}; expected a non-empty dict "
            "{sample id: {'uv_vis', 'xyz', 'K'}}"
        )
    uv_vis = {}
    for key, entry in anno.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise UserError(
                f"{path}: key {key!r}; expected non-negative int sample ids"
            )
        if not isinstance(entry, dict) or "uv_vis" not in entry:
            raise UserError(
                f"{path}: sample {key} has no field 'uv_vis'; expected a dict with "
                "'uv_vis' (42, 3), 'xyz' and 'K'"
            )
        try:
            value = np.asarray(entry["uv_vis"], dtype=np.float32)
        except (TypeError, ValueError):
            value = None
        if value is None or value.shape != (2 * NUM_JOINTS, 3):
            shape = "not numeric" if value is None else f"shape {value.shape}"
            raise UserError(
                f"{path}: sample {key}, field 'uv_vis' is {shape}; expected numbers of "
                f"shape ({2 * NUM_JOINTS}, 3)"
            )
        uv_vis[int(key)] = value
    return uv_vis


class RhdReader:
    """The annotated frames of one RHD split, in sorted id order; see open_rhd().

    Iterating yields (sample_id, image, keypoints):
        sample_id: int, the RHD id (file name %05d.png)
        image: uint8 [320, 320, 3] RGB
        keypoints: float32 [21, 2] of the chosen hand, pixels (x = column, y = row)
    samples(ids, visibility=True) adds visible: bool [21], the chosen hand's flags.
    len() counts the annotated frames, including the ones skipped while iterating.
    skipped: [(sample_id, reason)] of frames whose chosen hand has a joint that is NaN
        or outside [0, 320); reset at the start of each pass.
    """

    def __init__(
        self, root: Path, split: str, split_dir: Path, uv_vis: dict[int, np.ndarray]
    ):
        self.root = root
        self.split = split
        self.split_dir = split_dir
        self.uv_vis = uv_vis
        self.skipped: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.uv_vis)

    @property
    def ids(self) -> list:
        """The annotated sample ids, sorted."""
        return sorted(self.uv_vis)

    def close(self) -> None:
        """Nothing to release; for symmetry with the competition reader."""

    def __enter__(self) -> "RhdReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        return self.samples()

    def samples(self, ids=None, visibility: bool = False) -> Iterator[tuple]:
        """Like iterating, but only the given ids (all when None); with
        `visibility`, each sample also carries its joints' flags, bool [21]."""
        self.skipped = []
        wanted = sorted(self.uv_vis) if ids is None else sorted(int(i) for i in ids)
        for sample_id in wanted:
            image = self.read_image(sample_id)
            hand = choose_hand(self.read_mask(sample_id))
            uv = self.uv_vis[sample_id]
            uv = uv[:NUM_JOINTS] if hand == "left" else uv[NUM_JOINTS:]
            keypoints = uv[:, :2]
            reason = _outside_frame(keypoints, hand)
            if reason:
                self.skipped.append((sample_id, reason))
                continue
            if visibility:
                yield sample_id, image, keypoints.copy(), uv[:, 2] == 1
            else:
                yield sample_id, image, keypoints.copy()

    def read_image(self, sample_id: int) -> np.ndarray:
        """The colour frame, uint8 [320, 320, 3] RGB."""
        path = self.split_dir / "color" / f"{sample_id:05d}.png"
        image = _read_png(path, sample_id, cv2.IMREAD_COLOR, "an RGB PNG")
        if image.shape != (FRAME_SIZE, FRAME_SIZE, 3):
            raise UserError(
                f"{path}: sample {sample_id} has shape {image.shape}; expected a "
                f"{FRAME_SIZE}x{FRAME_SIZE} RGB frame"
            )
        return np.ascontiguousarray(image[..., ::-1])

    def read_mask(self, sample_id: int) -> np.ndarray:
        """The label mask, integer [320, 320] (first channel if stored with several)."""
        path = self.split_dir / "mask" / f"{sample_id:05d}.png"
        mask = _read_png(path, sample_id, cv2.IMREAD_UNCHANGED, "a label PNG")
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != (FRAME_SIZE, FRAME_SIZE):
            raise UserError(
                f"{path}: sample {sample_id} has shape {mask.shape}; expected a "
                f"{FRAME_SIZE}x{FRAME_SIZE} label image"
            )
        return mask


def choose_hand(mask: np.ndarray) -> str:
    """The hand to keep, "left" or "right": more mask pixels wins, a tie gives right.

    mask: integer [H, W]; 0 background, 1 person, 2..17 left hand, 18..33 right hand.
    A frame with no hand pixels gives "right", as in the dataset authors' loader.
    """
    left = np.count_nonzero((mask >= 2) & (mask <= 17))
    right = np.count_nonzero(mask >= 18)
    return "left" if left > right else "right"


def _outside_frame(keypoints: np.ndarray, hand: str) -> str | None:
    """Why a hand's keypoints [21, 2] cannot be used; None if all lie in the frame."""
    with np.errstate(invalid="ignore"):
        inside = ((keypoints >= 0) & (keypoints < FRAME_SIZE)).all(axis=1)
    if inside.all():
        return None
    joint = int(np.flatnonzero(~inside)[0])
    x, y = keypoints[joint]
    return (
        f"{hand} hand joint {joint} at ({x:g}, {y:g}) is outside "
        f"[0, {FRAME_SIZE}) x [0, {FRAME_SIZE})"
    )


def _find_split_dir(root: Path, split: str) -> Path:
    expected = (
        f"expected the {RHD_FOLDER} folder (or a folder containing it) with "
        f"{split}/anno_{split}.pickle, {split}/color/ and {split}/mask/"
    )
    if not root.is_dir():
        raise UserError(f"{root}: RHD folder not found; {expected}")
    for candidate in (root / RHD_FOLDER / split, root / split):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{root}: no RHD '{split}' folder; {expected}")


def _read_png(path: Path, sample_id: int, flags: int, expected: str) -> np.ndarray:
    """Decode an image file; UserError naming the file and sample if that fails."""
    if not path.is_file():
        raise UserError(
            f"{path}: file not found for sample {sample_id}; expected {expected}"
        )
    data = np.fromfile(path, dtype=np.uint8)
    try:
        image = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:
        image = None
    if image is None:
        raise UserError(
            f"{path}: sample {sample_id} could not be decoded; expected {expected}"
        )
    return image
