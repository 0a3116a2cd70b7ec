"""`--data SOURCE`: which hands to read (prepared by data_pipeline.store).

SOURCE is `synthetic` (the default, built in), a folder holding the competition's
`training.h5` / `testing.h5`, a folder holding the public RHD dataset
(`RHD_published_v2/`), COCO keypoint files (data_pipeline.coco), or a folder of
images, each one hand (`images:DIR`). Options follow a colon, comma separated:
    synthetic:train=2000,validation=100,test=200,seed=3
    /data/kaggle:validation=480
    coco:hands/train.json,images=hands/images,order=coco,padding=1.25
    coco:train=a.json,validation=b.json,test=c.json
    coco:photos.json,boxes=detections.json,min_score=0.3
    images:crops/,padding=1
A COCO source's file (or `train=`) gives the train split and the validation
hold-out; `validation=FILE` gives the validation split instead (a number is the
hold-out's size, as for every source) and `test=FILE` a test split. A lone file of
boxes without keypoints gives a test split; `boxes=DETS` (a detection results list)
puts a detector's boxes on the file's images, as a test split.
"""

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

SPLITS = ("train", "validation", "test")
OPTIONS = {  # option -> (data_pipeline.examples.Preparation field, which sources)
    "validation": ("num_validation", ("synthetic", "kaggle", "rhd")),
    "split_seed": ("split_seed", ("synthetic", "kaggle", "rhd")),
    "train": ("num_train", ("synthetic",)),
    "test": ("num_test", ("synthetic",)),
    "seed": ("seed", ("synthetic",)),
}
COCO_OPTIONS = {  # option -> (Preparation field, its type)
    "validation": ("num_validation", int),
    "split_seed": ("split_seed", int),
    "images": ("images", str),
    "order": ("order", str),
    "padding": ("padding", float),
    "boxes": ("boxes", str),
    "min_score": ("min_score", float),
}
IMAGES_PADDING = 1.0  # images:DIR: each image is a hand's crop, as it is
ENV_DATA_DIR = "HJR_DATA_DIR"


def default_data_dir() -> Path:
    """$HJR_DATA_DIR, else $XDG_CACHE_HOME/hjr/datasets (~/.cache/hjr/datasets)."""
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hjr" / "datasets"


@dataclass
class Source:
    kind: str  # "synthetic", "kaggle", "rhd", "coco", "images" or "video"
    path: Path = None  # a kaggle, rhd or images source's folder, a coco one's file
    options: dict = field(default_factory=dict)  # Preparation field -> value
    files: dict = None  # a coco source's annotation files {split: Path}

    def __str__(self):
        if self.kind == "coco":
            files = ", ".join(f"{k}={v}" for k, v in self.files.items())
            boxes = self.options.get("boxes")
            return f"coco data in {files}" + (f", boxes={boxes}" if boxes else "")
        if self.kind == "images":
            return f"the images in {self.path}"
        if self.kind == "video":
            return f"the video {self.path}"
        return "synthetic" if self.path is None else f"{self.kind} data in {self.path}"

    def location(self):
        """What data_pipeline.examples.plan reads: the files of a coco source,
        else the folder (None for synthetic)."""
        return self.files if self.kind == "coco" else self.path


def _kind_of_folder(path: Path) -> str:
    if (path / "training.h5").exists() or (path / "testing.h5").exists():
        return "kaggle"
    if (path / "RHD_published_v2").is_dir() or path.name == "RHD_published_v2":
        return "rhd"
    if (path / "training" / "anno_training.pickle").exists():
        return "rhd"
    raise UserError(
        "expected training.h5 / testing.h5 (competition) or RHD_published_v2/ "
        "(RHD) in this folder, found neither",
        "data",
        str(path),
    )


def parse_source(spec: str) -> Source:
    """Parse a --data value; raises UserError naming `data` and what was expected."""
    spec = str(spec)
    if spec.startswith("coco:") or spec == "coco":
        return _parse_coco(spec)
    if spec.startswith("images:") or spec == "images":
        return _parse_images(spec)
    if spec.startswith("video:") or spec == "video":
        return _parse_video(spec)
    head, options = spec, {}
    match = re.fullmatch(r"(.*?):((?:\w+=[-\w]+,?)+)", spec)
    if match:
        head = match.group(1)
        for item in filter(None, match.group(2).split(",")):
            key, value = item.split("=", 1)
            options[key] = value
    if head == "synthetic":
        source = Source("synthetic")
    else:
        path = Path(head).expanduser()
        if not path.exists():
            raise UserError("no such folder (or use 'synthetic')", "data", head)
        if not path.is_dir():
            raise UserError("expected a folder, got a file", "data", head)
        source = Source(_kind_of_folder(path), path.resolve())
    for key, value in options.items():
        if key not in OPTIONS or source.kind not in OPTIONS[key][1]:
            allowed = [k for k, (_, kinds) in OPTIONS.items() if source.kind in kinds]
            raise UserError(
                f"unknown option {key!r} for a {source.kind} source; "
                f"expected one of {', '.join(allowed)}",
                "data",
                spec,
            )
        if not value.isdigit():
            raise UserError(
                f"{key} must be a whole number, got {value!r}", "data", spec
            )
        if key in SPLITS and int(value) < 1:
            raise UserError(
                f"{key} must be at least 1 (every split is read: training picks "
                f"its checkpoints on validation), got {value}",
                "data",
                spec,
            )
        source.options[OPTIONS[key][0]] = int(value)
    return source


def _parse_coco(spec: str) -> Source:
    """`coco:FILE[,OPTION=VALUE...]` or `coco:train=A,validation=B,test=C,...`."""
    from .coco import ORDERS

    files, options = {}, {}
    for item in filter(None, spec[len("coco:") :].split(",")):
        key, _, value = item.partition("=")
        if not _:
            key, value = "train", item
        key, value = key.strip(), value.strip()
        is_count = key == "validation" and value.isdigit()
        if key in SPLITS and not is_count:
            if key in files:
                raise UserError(f"{key} is given twice", "data", spec)
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(f"{key}: no such annotation file {value}", "data", spec)
            files[key] = path.resolve()
            continue
        if key not in COCO_OPTIONS:
            expected = ", ".join(["train", "test", *COCO_OPTIONS])
            raise UserError(
                f"unknown option {key!r} for a coco source; expected a file or one "
                f"of {expected}",
                "data",
                spec,
            )
        name, kind = COCO_OPTIONS[key]
        try:
            options[name] = kind(value)
        except ValueError:
            what = {int: "a whole number", float: "a number"}[kind]
            raise UserError(f"{key} must be {what}, got {value!r}", "data", spec)
        if key == "images":
            folder = Path(value).expanduser()
            if not folder.is_dir():
                raise UserError(f"images: no such folder {value}", "data", spec)
            options[name] = str(folder.resolve())
        if key == "boxes":
            file = Path(value).expanduser()
            if not file.is_file():
                raise UserError(f"boxes: no such detections file {value}", "data", spec)
            options[name] = str(file.resolve())
    if options.get("order", "coco") not in ORDERS:
        order = options["order"]
        raise UserError(
            f"order {order!r}: expected one of {', '.join(ORDERS)} (coco: each "
            "finger base to tip; rhd: tip to base)",
            "data",
            spec,
        )
    if not options.get("padding", 1.0) > 0:
        raise UserError("padding must be above 0 (1.25: mmpose's)", "data", spec)
    if not 0 <= options.get("min_score", 0.0) <= 1:
        raise UserError("min_score must be in [0, 1]", "data", spec)
    if "min_score" in options and "boxes" not in options:
        raise UserError("min_score goes with boxes=DETECTIONS.json", "data", spec)
    if "boxes" in options and len(files) > 1:
        raise UserError(
            "boxes=: give one COCO file, whose images the boxes are on", "data", spec
        )
    if not files:
        raise UserError(
            "expected an annotation file: coco:FILE.json or coco:train=FILE.json",
            "data",
            spec,
        )
    if "validation" in files and "num_validation" in options:
        raise UserError("validation is a file and a number", "data", spec)
    return Source("coco", next(iter(files.values())), options, files)


def _parse_images(spec: str) -> Source:
    """`images:DIR[,padding=P]`: a folder of images, each one hand."""
    folder, *items = spec[len("images:") :].split(",")
    path = Path(folder).expanduser()
    if not folder or not path.is_dir():
        raise UserError("expected images:FOLDER, a folder of images", "data", spec)
    options = {"padding": IMAGES_PADDING}
    for item in items:
        key, _, value = item.partition("=")
        if key.strip() != "padding":
            raise UserError(
                f"unknown option {key!r} for an images source; expected padding",
                "data",
                spec,
            )
        try:
            options["padding"] = float(value)
        except ValueError:
            raise UserError(f"padding must be a number, got {value!r}", "data", spec)
        if not options["padding"] > 0:
            raise UserError("padding must be above 0", "data", spec)
    return Source("images", path.resolve(), options)


def _parse_video(spec: str) -> Source:
    """`video:FILE[,box=X,Y,W,H][,boxes=DETS.json][,min_score=S][,padding=P]`."""
    from .video import VIDEO_SUFFIXES

    file, *items = spec[len("video:") :].split(",")
    path = Path(file).expanduser()
    if not file or not path.is_file():
        raise UserError(
            f"no such video file {file!r}; expected video:FILE[,box=X,Y,W,H]",
            "data",
            spec,
        )
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(
            f"expected a video file ({', '.join(VIDEO_SUFFIXES)})", "data", spec
        )
    options = {"min_score": 0.0}
    while items:
        key, _, value = items.pop(0).partition("=")
        key = key.strip()
        if key == "box":
            numbers = [value, *items[:3]]
            del items[:3]
            try:
                options["box"] = [float(v) for v in numbers]
            except ValueError:
                options["box"] = []
            if len(options["box"]) != 4:
                raise UserError("expected box=X,Y,W,H (four numbers)", "data", spec)
        elif key == "boxes":
            found = Path(value).expanduser()
            if not found.is_file():
                raise UserError(f"boxes: no such detections file {value}", "data", spec)
            options["boxes"] = str(found.resolve())
        elif key in ("min_score", "padding"):
            try:
                options[key] = float(value)
            except ValueError:
                raise UserError(f"{key} must be a number, got {value!r}", "data", spec)
        else:
            raise UserError(
                f"unknown option {key!r} for a video source; expected box, boxes, "
                "min_score or padding",
                "data",
                spec,
            )
    if "box" not in options and "boxes" not in options:
        raise UserError(
            "expected box=X,Y,W,H (the hand in the first frame, tracked) or "
            "boxes=DETECTIONS.json (the hands of every frame)",
            "data",
            spec,
        )
    if not 0 <= options["min_score"] <= 1:
        raise UserError("min_score must be in [0, 1]", "data", spec)
    if not options.get("padding", 1.0) > 0:
        raise UserError("padding must be above 0", "data", spec)
    return Source("video", path.resolve(), options)


def fingerprint(source: Source) -> str:
    """A short hash of a folder source's files' paths, sizes and times (a coco
    source's annotation files, and its image folder's name): a changed file gives a
    new prepared copy."""
    digest = hashlib.sha1(str(source.path).encode())
    if source.kind == "coco":
        for split, path in source.files.items():
            stat = path.stat()
            digest.update(f"{split}={path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(str(source.options.get("images")).encode())
        if source.options.get("boxes"):
            stat = Path(source.options["boxes"]).stat()
            digest.update(f"{source.options['boxes']}:{stat.st_size}".encode())
            digest.update(str(stat.st_mtime_ns).encode())
        return digest.hexdigest()[:10]
    if source.kind == "images":
        for item in sorted(source.path.iterdir()):
            if item.is_file():
                stat = item.stat()
                digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:10]
    patterns = ("*.h5", "RHD_published_v2/*/*.pickle", "*/*.pickle")
    for pattern in patterns:
        for item in sorted(source.path.glob(pattern)):
            stat = item.stat()
            digest.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:10]
