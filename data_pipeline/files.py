"""Writing outputs atomically: a crash never leaves a half-written file behind."""

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, value) -> Path:
    """Write a value as JSON, atomically."""
    import json

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")
    return Path(path)


def write_png(path, image: np.ndarray) -> Path:
    """Write an RGB (or grey) uint8 image as PNG, atomically."""
    import cv2  # only where PNGs are written or read

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return Path(path)


def read_png(path) -> np.ndarray:
    """An RGB uint8 image from a PNG (or any format OpenCV reads)."""
    import cv2  # only where PNGs are written or read

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
