"""Checkpoints that every Keras backend writes and reads.

A checkpoint folder (`checkpoints/latest`, `checkpoints/best`) holds one folder per
saved step and a pointer to the newest:

    step-00000400/net.weights.h5   the network's weights (Keras' own format)
    step-00000400/optimizer.npz    the optimizer's variables in order (latest only)
    checkpoint.json                {"step": 400, "folder": "step-00000400"}

A step folder is written under a temporary name and renamed; the pointer is
written (atomically) after it. A crash at any moment leaves the pointer on a
complete checkpoint. A run trained on one backend loads on any other.
"""

import json
import shutil
from pathlib import Path

import numpy as np
from keras import ops

from data_pipeline.errors import UserError
from data_pipeline.files import atomic_path, temporary_folder

POINTER = "checkpoint.json"
WEIGHTS = "net.weights.h5"
OPTIMIZER = "optimizer.npz"


def save(folder, step: int, net, optimizer=None, keep: int = 2) -> Path:
    """Save net (and the optimizer's state) as step `step` in folder; keep the
    newest `keep` steps. Returns the step folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = temporary_folder(folder / name)  # beside it; swept later if killed
    try:
        net.save_weights(str(tmp / WEIGHTS))
        if optimizer is not None:
            values = [ops.convert_to_numpy(v.value) for v in optimizer.variables]
            np.savez(tmp / OPTIMIZER, *values)
        final = folder / name
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with atomic_path(folder / POINTER) as pointer:
        pointer.write_text(json.dumps({"step": step, "folder": name}) + "\n")
    for old in sorted(folder.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(folder):
    """The newest complete step folder in folder, or None."""
    pointer = Path(folder) / POINTER
    if not pointer.is_file():
        return None
    try:
        path = Path(folder) / json.loads(pointer.read_text())["folder"]
    except (ValueError, KeyError) as error:
        raise UserError(f"{pointer}: not a checkpoint pointer ({error})") from None
    return path if (path / WEIGHTS).is_file() else None


def restore(path, net, optimizer=None) -> None:
    """Load a step folder into net (and the optimizer, built for net)."""
    net.load_weights(str(Path(path) / WEIGHTS))
    if optimizer is None:
        return
    with np.load(Path(path) / OPTIMIZER) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    variables = optimizer.variables
    if len(values) != len(variables):
        raise UserError(
            f"{path}: {len(values)} optimizer variables saved, this run's optimizer "
            f"has {len(variables)}"
        )
    for variable, value in zip(variables, values):
        variable.assign(value)
