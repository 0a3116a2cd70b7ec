"""`hjr export`: a training run's best network as a SavedModel for TF Serving.

Signatures (all take `images` uint8 RGB and return `keypoints` float32 [B, 21, 2],
x = column, y = row, pixel i covering [i, i+1)):
- `serving_default`: images [B, 128, 128, 3]; 4-rotation TTA if exported with tta.
- `plain`: the same without TTA; map heads also return `maps` [B, s, s, 21] (s =
  128 / map_stride), the offsets head also `offsets` [B, s, s, 21, 2].
- `tta`: the same with TTA.
- `any_size`: images [B, H, W, 3] of any size, resized bilinearly to 128x128;
  keypoints in the input's pixels (TTA as serving_default).
The folder also holds `hjr.json` (the run's configuration, joint names, TTA); the
SavedModel itself loads with plain TensorFlow, without hjr.
"""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from data_pipeline.errors import UserError
from data_pipeline.keypoints import JOINT_NAMES

from .predict import is_saved_model, predict_keypoints

MARKER = "hjr.json"


def _resized_keypoints(net, images, size, tta):
    """Keypoints in the pixels of images uint8 [B, H, W, 3] of any size."""
    shape = tf.shape(images)
    scale = tf.cast(tf.stack([shape[2], shape[1]]), tf.float32) / float(size)
    resized = tf.image.resize(tf.cast(images, tf.float32), [size, size])
    return predict_keypoints(net, resized, tta) * scale


def export_network(net, out, conf: dict, tta: bool = False) -> Path:
    """Write net (of hjr.model.build_model) as a SavedModel folder `out`, atomically:
    into a temporary folder beside it, then renamed. An earlier hjr export in `out`
    is replaced; any other non-empty folder is left alone (UserError)."""
    out = Path(out)
    if out.exists() and not (out / MARKER).is_file():
        if not out.is_dir() or any(out.iterdir()):
            raise UserError(
                "exists and is not an hjr export; choose another folder", "out", out
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    size = int(conf.get("input_size", 128))
    square = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
    any_size = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")

    def plain(images):
        outputs = net(tf.cast(images, tf.float32), training=False)
        return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}

    archive = keras.export.ExportArchive()
    archive.track(net)
    endpoints = {
        "serving_default": lambda images: {
            "keypoints": predict_keypoints(net, images, tta)
        },
        "plain": plain,
        "tta": lambda images: {"keypoints": predict_keypoints(net, images, True)},
    }
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=[square])
    archive.add_endpoint(
        "any_size",
        lambda images: {"keypoints": _resized_keypoints(net, images, size, tta)},
        input_signature=[any_size],
    )
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    absl = logging.getLogger("absl")
    level = absl.level
    try:
        archive.write_out(str(tmp), verbose=False)
        absl.setLevel(level)  # saving resets it, and TFDS's notices would come back
        info = {
            "head": conf["head"],
            "backbone": conf["backbone"],
            "input_size": size,
            "tta": bool(tta),
            "signatures": ["serving_default", "plain", "tta", "any_size"],
            "joint_names": list(JOINT_NAMES),
            "config": conf,
        }
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _replace_folder(new: Path, out: Path) -> None:
    """Put folder `new` at `out`; an existing `out` is moved aside first and removed
    only once `new` is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export(model, out, tta: bool = False) -> Path:
    """Export a run folder's best network (see export_network)."""
    from .config import load_config
    from .train import load_network

    if is_saved_model(model):
        raise UserError("already a SavedModel; give a run folder", "model", model)
    net = load_network(model)
    return export_network(net, out, load_config(model), tta)
