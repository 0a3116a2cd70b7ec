"""`--data SOURCE`: which hands to read (prepared by data_pipeline.store).

SOURCE is `synthetic` (the default, built in), a folder holding the competition's
`training.h5` / `testing.h5`, or a folder holding the public RHD dataset
(`RHD_published_v2/`). Options follow a colon, comma separated:
    synthetic:train=2000,validation=100,test=200,seed=3
    /data/kaggle:validation=480
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
ENV_DATA_DIR = "HJR_DATA_DIR"


def default_data_dir() -> Path:
    """$HJR_DATA_DIR, else $XDG_CACHE_HOME/hjr/datasets (~/.cache/hjr/datasets)."""
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hjr" / "datasets"


@dataclass
class Source:
    kind: str  # "synthetic", "kaggle" or "rhd"
    path: Path = None  # the folder of a kaggle or rhd source
    options: dict = field(default_factory=dict)  # Preparation field -> int

    def __str__(self):
        return "synthetic" if self.path is None else f"{self.kind} data in {self.path}"


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


def fingerprint(source: Source) -> str:
    """A short hash of a folder source's files' paths, sizes and times: a changed
    file gives a new prepared copy."""
    digest = hashlib.sha1(str(source.path).encode())
    patterns = ("*.h5", "RHD_published_v2/*/*.pickle", "*/*.pickle")
    for pattern in patterns:
        for item in sorted(source.path.glob(pattern)):
            stat = item.stat()
            digest.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:10]
