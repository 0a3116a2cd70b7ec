"""What hjr writes: prepared arrays keyed by the code that made them, and no
temporary file or folder left behind by a preparation that was stopped or killed."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SMALL_SYNTHETIC

from data_pipeline import files, store
from data_pipeline.sources import parse_source

PACKAGE = Path(store.__file__).parent


def test_the_code_key_follows_the_code_not_its_comments(tmp_path):
    copy = tmp_path / "data_pipeline"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert store.code_key(copy) == store.code_key()
    crop = copy / "crop.py"
    text = crop.read_text()
    crop.write_text(
        text.replace('"""', '"""Reworded. ', 1).replace(
            "\nimport", "\n# why\nimport", 1
        )
    )
    store.code_key.cache_clear()
    assert store.code_key(copy) == store.code_key()  # docstrings and comments
    assert "x0 + 0.5 * scale" in text
    crop.write_text(text.replace("x0 + 0.5 * scale", "x0 + 0.25 * scale"))
    store.code_key.cache_clear()
    assert store.code_key(copy) != store.code_key()  # what the code does
    folder = store.folder_for(parse_source("synthetic"))
    assert f"code-{store.code_key()}" in folder.parts


def _leftover(parent, name, pid, host=files.HOST, age=0.0):
    item = parent / f".{name}{files.MARK}{host}@{pid}-abc123"
    item.mkdir(parents=True)
    (item / "train.image.u8").write_bytes(b"\0" * 10)
    if age:
        then = time.time() - age
        for path in (item / "train.image.u8", item):
            os.utime(path, (then, then))
    return item


def test_leftovers_of_killed_preparations_are_swept(data_dir):
    source = parse_source(SMALL_SYNTHETIC)
    folder = store.folder_for(source, data_dir=data_dir)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()  # a process of this host that no longer runs
    dead = _leftover(folder.parent, folder.name, done.pid)
    live = _leftover(folder.parent, "other", os.getpid())
    old = _leftover(
        folder.parent, "b", 7, host="elsewhere", age=2 * files.STALE_SECONDS
    )
    recent = _leftover(folder.parent, "c", 7, host="elsewhere")
    store.prepare(source, data_dir=data_dir)
    assert (folder / "info.json").is_file()
    assert not dead.exists() and not old.exists()
    assert live.exists() and recent.exists()  # their writers may still be at work


def _temporaries(root):
    return [p for p in Path(root).rglob(f"*{files.MARK}*")]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_preparation_leaves_nothing_behind(tmp_path, how):
    """SIGTERM (docker stop, Slurm) cleans up on the way out; after SIGKILL the next
    preparation in the same folder removes what it left."""
    data = tmp_path / "data"
    argv = ["prepare", "--data", "synthetic:train=4000,validation=8,test=8"]
    code = "import sys; from hjr.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not _temporaries(data) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temporaries(data), "the preparation never started"
    process.send_signal(getattr(signal, how))
    out = process.communicate(timeout=60)[0].decode()
    if how == "SIGTERM":
        assert process.returncode == 130 and "hjr: interrupted" in out, out
        assert not _temporaries(data)
        return
    assert _temporaries(data)  # a killed process cleans nothing up
    store.prepare(parse_source(SMALL_SYNTHETIC), data_dir=data)
    assert not _temporaries(data)
    assert not list(data.rglob("*train4000*"))
