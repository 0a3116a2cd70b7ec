"""Prepared sources: each split's crops and labels as arrays on disk, what every hjr
command reads, with NumPy alone (no TensorFlow, no TensorFlow Datasets).

A source, prepared in one crop mode, is a folder in the data dir:

    <data dir>/hjr-prepared/code-<key>/<kind>/<preparation name>/
        info.json              the source, the splits' sizes, which are labelled,
                               whether `visible` tells hidden joints apart, metadata
        <split>.image.u8       uint8 [N, 128, 128, 3] RGB crops, raw (memory-mapped)
        <split>.keypoints.npy  float32 [N, 21, 2], x = column, y = row, crop pixels
        <split>.visible.npy    bool [N, 21]
        <split>.id.npy         int64 [N], each sample's index in its source split
        <split>.<field>.npy    a coco source's FIELDS: where each crop came from
        <split>.surroundings.u8   uint8, each crop's surroundings in its frame's
                                  pixels, one after another (data_pipeline.boxes:
                                  moved boxes are cut from them), written when
                                  first needed
        <split>.surroundings.npy  float64 [N, 9], where each one is and its place
                                  in the frame (data_pipeline.boxes.Surroundings)

Crops are cut once, at preparation (data_pipeline.examples), and stored raw: a batch
is a gather of rows, nothing to decode. The folder is written under a temporary
name and renamed when complete (data_pipeline.files: what a killed preparation
left is removed by the next one); a prepared source is reused afterwards, by the
same code only: `code-<key>` names the code that made it (code_key). The data dir
is --data-dir, else $HJR_DATA_DIR, else ~/.cache/hjr/datasets.
"""

import ast
import functools
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .errors import UserError
from .examples import HAS_VISIBILITY, LABELLED, Preparation, plan
from .files import atomic_path, check_writable, temporary_folder
from .keypoints import CROP_SIZE, NUM_JOINTS
from .progress import progress
from .sources import SPLITS, Source, default_data_dir, fingerprint

HAS_FIELDS = ("coco", "images")  # the kinds whose samples carry FIELDS
# The modules whose code makes a prepared folder's arrays (code_key).
MAKERS = (
    "store",
    "examples",
    "crop",
    "keypoints",
    "splits",
    "parallel",
    "synthetic",
    "kaggle_h5",
    "rhd",
    "coco",
)
IMAGE_SHAPE = (CROP_SIZE, CROP_SIZE, 3)
LABELS = {  # field: (dtype, shape of one sample)
    "keypoints": (np.float32, (NUM_JOINTS, 2)),
    "visible": (np.bool_, (NUM_JOINTS,)),
    "id": (np.int64, ()),
}
FIELDS = {  # what a coco (or images) source keeps of each hand: (dtype, shape)
    "box": (np.float64, (3,)),  # the crop's square (x0, y0, side), frame pixels
    "bbox": (np.float64, (4,)),  # the hand's (or detection's) box x, y, w, h
    "bbox_size": (np.float64, ()),  # max(w, h) of the labelled hand's box (PCK)
    "score": (np.float64, ()),  # the box's score (a detector's; else 1)
    "file_name": (np.str_, ()),  # the image's name in the file (or folder)
    "path": (np.str_, ()),  # the image file read
    "image_id": (np.int64, ()),
    "category_id": (np.int64, ()),
    "annotation_id": (np.int64, ()),
    "hand": (np.int8, ()),  # 0; COCO-WholeBody: 1 left, 2 right
}


@dataclass
class Split:
    """One prepared split: `image` memory-mapped, the labels in memory."""

    name: str
    image: np.ndarray  # uint8 [N, 128, 128, 3]
    keypoints: np.ndarray  # float32 [N, 21, 2]
    visible: np.ndarray  # bool [N, 21]
    id: np.ndarray  # int64 [N]
    labelled: bool  # whether the keypoints are labels (not the competition's test)
    has_visibility: bool  # whether `visible` tells hidden joints apart
    source: str  # the source, in words
    kind: str = ""  # the source's kind
    fields: dict = None  # a coco source's FIELDS {name: [N, ...]}, else {}
    context: object = None  # data_pipeline.boxes.Surroundings, where opened

    def __len__(self) -> int:
        return len(self.id)

    def positions(self, ids) -> np.ndarray:
        """The storage rows of the samples `ids`, in that order; UserError for an
        id the split lacks."""
        row_of = {int(index): row for row, index in enumerate(self.id)}
        rows = [row_of.get(int(index), -1) for index in np.ravel(ids)]
        if -1 in rows:
            missing = np.ravel(ids)[rows.index(-1)]
            raise UserError(f"{self.source} {self.name}: no sample with id {missing}")
        return np.asarray(rows, np.int64)

    def rows(self, rows, keys=("image", "keypoints", "visible", "id")) -> dict:
        """The samples at `rows` (positions in storage order), as arrays."""
        rows = np.asarray(rows, np.int64)
        order = np.argsort(rows, kind="stable")  # read the file forwards
        out = {}
        for key in keys:
            values = getattr(self, key)[rows[order]]
            gathered = np.empty_like(values)
            gathered[order] = values
            out[key] = gathered
        return out


@functools.lru_cache(maxsize=None)
def code_key(package=None) -> str:
    """A short hash of the code that makes prepared arrays (MAKERS, in `package`:
    by default this one's folder): their syntax trees, so that a comment or
    docstring changes nothing and any change to what the code does gives other
    folders."""
    digest = hashlib.sha1()
    for name in MAKERS:
        path = Path(package or Path(__file__).parent) / f"{name}.py"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and _is_docstring(body[0]):
                node.body = body[1:] or [ast.Pass()]
        digest.update(f"{name}:{ast.dump(tree)}".encode())
    return digest.hexdigest()[:10]


def _is_docstring(node) -> bool:
    value = getattr(node, "value", None)
    return (
        isinstance(node, ast.Expr)
        and isinstance(value, ast.Constant)
        and (isinstance(value.value, str))
    )


def folder_for(source: Source, crop: str = "biased", data_dir=None) -> Path:
    """Where a source prepared in crop mode `crop` lives: under the key of the
    code that prepares it (code_key), so that arrays made by other code are never
    taken for this code's."""
    prep = preparation(source, crop)
    name = prep.name(source.kind, "" if source.path is None else fingerprint(source))
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    return data_dir / "hjr-prepared" / f"code-{code_key()}" / source.kind / name


def preparation(source: Source, crop: str = "biased") -> Preparation:
    return Preparation(crop=crop, **source.options)


def prepare(source: Source, crop: str = "biased", data_dir=None) -> dict:
    """The info of a prepared source, preparing it first where it is not (with a
    progress bar)."""
    return _prepared(source, crop, data_dir)[1]


def _prepared(source, crop, data_dir):
    """(folder, info) of a prepared source (prepare)."""
    if source.kind == "video":
        raise UserError(
            "a video is read frame by frame by hjr predict and hjr browse, not "
            "prepared",
            "data",
            str(source.path),
        )
    folder = folder_for(source, crop, data_dir)
    if not (folder / "info.json").is_file():
        check_writable(folder, "the prepared data")
        how = "hand box" if source.kind in HAS_FIELDS else crop
        print(f"hjr: preparing {source} ({how} crops) into {folder}")
        _write(source, crop, folder)
    return folder, json.loads((folder / "info.json").read_text())


def _write(source, crop, folder):
    prep = preparation(source, crop)
    splits, metadata = plan(source.kind, source.location(), prep)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_folder(folder)  # removed below, or by a later sweep if killed
    try:
        sizes = {
            name: _write_split(tmp, name, samples) for name, samples in splits.items()
        }
        info = {
            "code": code_key(),
            "source": str(source),
            "kind": source.kind,
            "preparation": asdict(prep),
            "splits": sizes,
            "labelled": [
                s for s in metadata.pop("labelled", LABELLED[source.kind]) if s in sizes
            ],
            "has_visibility": metadata.pop(
                "has_visibility", HAS_VISIBILITY[source.kind]
            ),
            "fields": sorted(FIELDS) if source.kind in HAS_FIELDS else [],
            "metadata": metadata,
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        try:
            tmp.rename(folder)
        except OSError:  # prepared meanwhile by another process: keep theirs
            if not (folder / "info.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_split(folder, name, samples) -> int:
    """Write one split's samples (data_pipeline.examples.Samples); returns their
    number."""
    labels = {key: [] for key in LABELS}
    fields = {}
    count = getattr(samples, "count", None)  # unknown for a plain function
    shown = progress(samples(), count, f"hjr: {name}", "crops")
    with open(folder / f"{name}.image.u8", "wb") as images:
        for index, image, keypoints, visible, *more in shown:
            images.write(np.ascontiguousarray(image, np.uint8).tobytes())
            labels["keypoints"].append(keypoints)
            labels["visible"].append(visible)
            labels["id"].append(index)
            for key, value in (more[0] if more else {}).items():
                fields.setdefault(key, []).append(value)
    specs = {**LABELS, **{key: FIELDS[key] for key in fields}}
    for key, (dtype, shape) in specs.items():
        values = np.asarray(labels.get(key, fields.get(key)), dtype)
        np.save(folder / f"{name}.{key}.npy", values.reshape(-1, *shape))
    return len(labels["id"])


def open_split(
    source: Source,
    split: str,
    crop: str = "biased",
    data_dir=None,
    context: bool = False,
    box: tuple = None,
):
    """One split of a source, prepared first where it is not; UserError if the
    source has no such split. With `context`, its crops' surroundings too
    (`context`, prepared first where they are not); with `box` (shift, scale, seed),
    the split cut from boxes moved and scaled (data_pipeline.boxes), in memory, each
    crop one bilinear cut from the frame's pixels: (0, 1, seed) too, which differs
    from the stored crops (the competition's resize) at an enlarged crop's outer
    pixel ring only."""
    from . import boxes

    if box is not None:
        boxes.check(box[0], box[1])
        whole = open_split(source, split, crop, data_dir, context=True)
        return _moved(whole, *box)
    if split not in SPLITS:
        raise UserError(f"expected one of {', '.join(SPLITS)}", "split", split)
    folder, info = _prepared(source, crop, data_dir)
    if split not in info["splits"]:
        have = ", ".join(info["splits"]) or "none"
        raise UserError(f"has no {split} split (it has: {have})", "data", source)
    count = info["splits"][split]
    labels = {key: np.load(folder / f"{split}.{key}.npy") for key in LABELS}
    fields = {}
    for key in info.get("fields", []):
        path = folder / f"{split}.{key}.npy"  # an empty split wrote none
        fields[key] = np.load(path) if path.exists() else np.zeros((0, *FIELDS[key][1]))
    if count:
        shape = (count, *IMAGE_SHAPE)
        image = np.memmap(folder / f"{split}.image.u8", np.uint8, "r", shape=shape)
    else:
        image = np.zeros((0, *IMAGE_SHAPE), np.uint8)
    prepared = Split(
        name=split,
        image=image,
        labelled=split in info["labelled"],
        has_visibility=info["has_visibility"],
        source=info["source"],
        kind=info["kind"],
        fields=fields,
        **labels,
    )
    if context:
        prepared.context = _context(source, crop, folder, prepared)
    return prepared


def _context(source, crop, folder, prepared):
    """The surroundings of a prepared split's crops in their frames' pixels
    (data_pipeline.boxes.Surroundings), memory-mapped; written first (under
    temporary names, the index renamed last) where they are not."""
    from .boxes import Surroundings

    path = folder / f"{prepared.name}.surroundings.u8"
    index_path = path.with_suffix(".npy")
    if not index_path.is_file():
        print(f"hjr: storing the surroundings of {source} {prepared.name} in {path}")
        prep = replace(preparation(source, crop), context=True)
        samples = plan(source.kind, source.location(), prep)[0][prepared.name]
        index = []
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            count = getattr(samples, "count", None)
            rows = progress(samples(), count, "hjr: surroundings", "crops")
            for row, (sample, (pixels, place), *_) in enumerate(rows):
                if row >= len(prepared) or sample != prepared.id[row]:
                    raise UserError(
                        f"{source}: the {prepared.name} split changed since it "
                        f"was prepared into {folder}; delete that folder"
                    )
                index.append([out.tell(), *pixels.shape[:2], *place])
                out.write(np.ascontiguousarray(pixels, np.uint8).tobytes())
            if len(index) != len(prepared):
                raise UserError(
                    f"{source}: the {prepared.name} split changed since it was "
                    f"prepared into {folder}; delete that folder"
                )
        with atomic_path(index_path) as tmp, open(tmp, "wb") as out:
            np.save(out, np.asarray(index, np.float64).reshape(-1, 9))
    index = np.load(index_path)
    size = path.stat().st_size
    pixels = np.memmap(path, np.uint8, "r") if size else np.zeros(0, np.uint8)
    return Surroundings(pixels, index)


def _moved(whole: Split, shift, scale, seed) -> Split:
    """A split cut from its samples' boxes moved and scaled (data_pipeline.boxes),
    in memory; a coco source's `box` field moved with them."""
    from . import boxes

    draws = boxes.evaluation_draws(whole.id, shift, scale, seed)
    rows = np.arange(len(whole))
    images, keypoints = boxes.perturb(whole.context, rows, whole.keypoints, draws)
    fields = dict(whole.fields)
    if "box" in fields:
        fields["box"] = boxes.frame_boxes(fields["box"], draws)
    return replace(
        whole, image=images, keypoints=keypoints, fields=fields, context=None
    )
