"""Writing outputs: atomically, readable by others as the umask allows, and never
leaving a temporary file or folder behind for long.

Every output is written under a temporary name beside it and renamed into place
when complete, so a crash never leaves a half-written file. Temporary names carry
the host and process that made them (`.NAME.tmp-HOST@PID-TOKEN`): a process that
was killed outright (SIGKILL, a lost node) cannot clean up, and the next write
into the same folder removes what it left (`sweep`). Files and folders are made
with the modes the umask gives (0644 and 0755 under the usual 022), not the
private 0600 / 0700 of Python's tempfile, so that another user (another uid in a
container) can read what hjr wrote.
"""

import contextlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

import numpy as np

from .errors import UserError

HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
MARK = ".tmp-"  # in every temporary name
# A temporary item whose newest file is older than this is another host's (or
# container's) leftover: a live writer touches its files far more often.
STALE_SECONDS = 3600


def temporary_name(path, suffix: str = "") -> Path:
    """A fresh temporary name beside `path`, marked with this host and process."""
    path = Path(path)
    token = secrets.token_hex(3)
    return path.parent / f".{path.name}{MARK}{HOST}@{os.getpid()}-{token}{suffix}"


def _newest_change(item: Path) -> float:
    times = [item.lstat().st_mtime]
    if item.is_dir() and not item.is_symlink():
        times += [p.lstat().st_mtime for p in item.rglob("*")]
    return max(times)


def _abandoned(item: Path) -> bool:
    """Whether a temporary item's writer is gone: a process of this host that no
    longer runs, or nothing written in it for STALE_SECONDS."""
    owner = item.name.rpartition(MARK)[2]
    host, _, rest = owner.partition("@")
    pid = rest.split("-")[0]
    if host == HOST and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            pass  # another user's live process
    try:
        return time.time() - _newest_change(item) > STALE_SECONDS
    except OSError:  # removed meanwhile
        return False


_SWEPT = set()  # folders swept by this process: leftovers are older than it


def sweep(folder, again: bool = False) -> list:
    """Remove the temporary files and folders that killed writers left in
    `folder` (not those of live ones), once per process unless `again`; returns
    what was removed."""
    removed = []
    folder = Path(folder)
    key = os.path.realpath(folder)
    if (key in _SWEPT and not again) or not folder.is_dir():
        return removed
    _SWEPT.add(key)
    for item in folder.glob(f".*{MARK}*@*"):
        if item.name.startswith(".") and _abandoned(item):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    item.unlink()
            removed.append(item)
    return removed


def _remove(path: Path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def temporary_file(path, suffix: str = "") -> Path:
    """An empty temporary file beside `path` (mode by the umask), after sweeping
    that folder; the caller renames or removes it."""
    sweep(Path(path).parent)
    tmp = temporary_name(path, suffix)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return tmp


def temporary_folder(path) -> Path:
    """An empty temporary folder beside `path` (mode by the umask), after sweeping
    that folder; the caller renames or removes it."""
    sweep(Path(path).parent)
    tmp = temporary_name(path)
    tmp.mkdir(0o777)
    return tmp


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file path beside `path`; it replaces `path` only on
    success, and is removed otherwise (also on Ctrl-C or SIGTERM)."""
    path = Path(path)
    tmp = temporary_file(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path):
    """Yield a temporary folder beside `path`, renamed to `path` on success (an
    existing `path` is replaced); removed otherwise."""
    path = Path(path)
    tmp = temporary_folder(path)
    try:
        yield tmp
        if path.exists():
            _remove(path)
        tmp.rename(path)
    finally:
        if os.path.lexists(tmp):
            _remove(tmp)


def check_writable(path, what: str, folder_must_exist: bool = False):
    """UserError unless this process can write `path` (what: what goes there, in
    words): the path itself where it exists, else the folder that would hold it
    (with `folder_must_exist`, its parent must exist; else the nearest existing
    folder above it, as mkdir -p would make the rest)."""
    path = Path(path)
    if folder_must_exist and not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist (for {what})")
    above = path if path.exists() else path.parent
    while not above.exists():
        above = above.parent
    if not above.is_dir() and above != path:
        raise UserError(f"{above} is a file, not a folder (for {what} {path})")
    if not os.access(above, os.W_OK | (os.X_OK if above.is_dir() else 0)):
        raise UserError(f"{above}: {cannot_write(above, f'{what} {path}')}")


def permission_line(filename) -> str:
    """The one line for a PermissionError on `filename`: who may not do what
    there, and the fix."""
    path = Path(filename)
    if path.exists() and not os.access(path, os.R_OK):
        return f"{path}: uid {os.getuid()} may not read it"
    above = path if path.is_dir() else path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    return f"{path}: permission denied; {above}: {cannot_write(above)}"


def cannot_write(path, what: str = "") -> str:
    """Why this process cannot write `path` (for `what`), and the fix, in words."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        stat = Path(path).stat()
        owner = f"it belongs to uid {stat.st_uid}"
    except OSError:
        stat, owner = None, "it is not writable"
    line = f"uid {uid} cannot write here ({f'for {what}; ' if what else ''}{owner})"
    if os.environ.get("HJR_CONTAINER") and stat is not None:
        return (
            f"{line}; run the container as its owner, docker run --user "
            f"{stat.st_uid}:{stat.st_gid} (for folders you made: --user "
            '"$(id -u):$(id -g)")'
        )
    return f"{line}; make it writable for uid {uid} or choose another folder"


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
