"""Predictions of a trained network, with the paper's test-time augmentation.

TTA: predict on the four 90-degree rotations of each image, rotate each prediction
back into the original frame (exactly, in the keypoint convention: pixel i covers
[i, i+1)) and average.

Predictions come from a training run folder (its best checkpoint), a SavedModel
written by `hjr export`, or its ONNX or LiteRT file; `load_predictor` takes any.
"""

import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from data_pipeline.errors import UserError

from hjr.core.augment import rot90_keypoints


def predict_keypoints(net, images, tta: bool = True):
    """Keypoints float32 [B, 21, 2] of images uint8/float [B, S, S, 3].

    net: a network built by hjr.core.model.build_model (dict outputs with `keypoints`).
    With tta, the four rotations go through the network as one batch of 4B.
    """
    images = ops.cast(images, "float32")
    if not tta:
        return ops.cast(net(images, training=False)["keypoints"], "float32")
    outputs = net(turned(images), training=False)["keypoints"]
    return turned_back_mean(outputs, float(images.shape[1]))


def turned(images):
    """The four 90-degree rotations of images [B, S, S, C], as one batch of 4B
    (rotation k of image b at row k * B + b)."""
    return ops.concatenate([ops.rot90(images, k, axes=(1, 2)) for k in range(4)], 0)


def turned_back_mean(keypoints, size):
    """Keypoints [4B, 21, 2] predicted on turned(images) rotated back into the
    images' frame and averaged: float32 [B, 21, 2]."""
    total = 0.0
    for k, part in enumerate(ops.split(ops.cast(keypoints, "float32"), 4, axis=0)):
        back = ops.full(ops.shape(part)[:1], (4 - k) % 4, dtype="int32")
        total += rot90_keypoints(part, back, size)
    return total / 4.0


def is_saved_model(path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


class Predictor:
    """Keypoints (and, for the map heads, maps) of uint8 crops [B, 128, 128, 3]."""

    def keypoints(self, images, tta: bool) -> np.ndarray:
        raise NotImplementedError

    def maps(self, images):
        """The predicted maps [B, S, S, 21], or None for the fc head."""
        raise NotImplementedError


class TTAKeypoints(keras.Model):
    """predict_keypoints as a Keras model: predict_on_batch compiles it on any
    backend."""

    def __init__(self, net, tta):
        super().__init__()
        self.net, self.tta = net, tta

    def call(self, images):
        return predict_keypoints(self.net, images, self.tta)


class NetworkPredictor(Predictor):
    """A Keras network of hjr.core.model.build_model (e.g. a run's best checkpoint)."""

    def __init__(self, net):
        self.net = net
        self._models = {tta: TTAKeypoints(net, tta) for tta in (False, True)}

    def keypoints(self, images, tta):
        batch = np.asarray(images)
        return ops.convert_to_numpy(self._models[bool(tta)].predict_on_batch(batch))

    def maps(self, images):
        outputs = self.net(ops.cast(np.asarray(images), "float32"), training=False)
        return ops.convert_to_numpy(outputs["maps"]) if "maps" in outputs else None


class SavedModelPredictor(Predictor):
    """A SavedModel of `hjr export`, through its `plain` and `tta` signatures."""

    def __init__(self, path):
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError, tf.errors.OpError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"{path}: not a loadable SavedModel ({message})") from None
        missing = {"plain", "tta"} - set(loaded.signatures)
        if missing:
            raise UserError(
                f"{path}: a SavedModel without the signatures {sorted(missing)} of "
                "`hjr export`"
            )
        self._loaded = loaded  # keeps the signatures' variables alive
        self._plain = loaded.signatures["plain"]
        self._tta = loaded.signatures["tta"]

    def keypoints(self, images, tta):
        signature = self._tta if tta else self._plain
        return signature(images=self._uint8(images))["keypoints"].numpy()

    def maps(self, images):
        outputs = self._plain(images=self._uint8(images))
        return outputs["maps"].numpy() if "maps" in outputs else None

    @staticmethod
    def _uint8(images):
        import tensorflow as tf

        return tf.cast(images, tf.uint8)


class ExportedPredictor(Predictor):
    """An exported .onnx or .tflite file of `hjr export`, in its own runtime
    (hjr.inference.export.ExportedModel). Such a file has its TTA or not, as exported (its
    JSON says which): one without it gets the same TTA here, its four rotations
    run through the file and the keypoints turned back and averaged; one with it
    cannot predict without it."""

    def __init__(self, path):
        from hjr.inference.export import info_path, open_exported

        self.path = Path(path)
        try:
            self._model = open_exported(path)
        except UserError:
            raise
        except ImportError as error:
            raise UserError(
                f"{path}: running it needs {error.name or 'its runtime'} "
                '(pip install -e ".[export]")'
            ) from None
        except Exception as error:  # onnxruntime's and LiteRT's own errors
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(
                f"{path}: not a loadable {self.path.suffix[1:]} file "
                f"({first or type(error).__name__})"
            ) from None
        try:
            self.tta = bool(json.loads(info_path(path).read_text())["tta"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(
                f"{info_path(path)}: missing or unreadable; `hjr export` writes it "
                "beside the file (its TTA)"
            ) from None

    def keypoints(self, images, tta):
        images = np.asarray(images, np.uint8)
        if bool(tta) == self.tta:
            return self._model.keypoints(images)
        if self.tta:
            raise UserError(
                f"{self.path}: exported with TTA, so it predicts with it only; "
                "leave out --no-tta, or export again without --tta"
            )
        keypoints = self._model.keypoints(ops.convert_to_numpy(turned(images)))
        mean = turned_back_mean(keypoints, float(images.shape[1]))
        return ops.convert_to_numpy(mean)

    def maps(self, images):
        return None  # an exported file gives keypoints only


def load_predictor(model) -> Predictor:
    """A run folder (its best checkpoint), an exported SavedModel folder, or an
    exported .onnx or .tflite file."""
    if is_saved_model(model):
        return SavedModelPredictor(model)
    from hjr.inference.export import SUFFIXES

    if Path(model).suffix in SUFFIXES.values():
        return ExportedPredictor(model)
    from hjr.training.train import load_network

    return NetworkPredictor(load_network(model))


def predict_dataset(predictor: Predictor, dataset, tta: bool = True):
    """(ids int64 [N], keypoints float32 [N, 21, 2], labels [N, 21, 2]) over a
    dataset of batches from data_pipeline.pipeline.make_dataset, sorted by id."""
    ids, predictions, labels = [], [], []
    for batch in dataset:
        predictions.append(predictor.keypoints(batch["image"], tta))
        ids.append(batch["id"].numpy())
        labels.append(batch["keypoints"].numpy())
    ids = np.concatenate(ids)
    order = np.argsort(ids, kind="stable")
    return ids[order], np.concatenate(predictions)[order], np.concatenate(labels)[order]


def predict(
    model,
    source,
    split="test",
    tta=True,
    batch_size=64,
    out=None,
    visualize=None,
    crop="biased",
    data_dir=None,
    num_visualize=16,
):
    """Predict a split with `model` (a run folder's best network, an exported
    SavedModel, or a Predictor already loaded); write the submission CSV to `out`
    and PNGs to `visualize` when given.

    Returns (ids, predictions, labels or None) with rows sorted by id.
    """
    from data_pipeline.kaggle_csv import write_keypoints_csv
    from data_pipeline.pipeline import is_labelled, make_dataset, open_split

    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    builder, _ = open_split(source, split, crop, data_dir)
    dataset = make_dataset(source, split, batch_size, crop=crop, data_dir=data_dir)
    ids, predictions, labels = predict_dataset(predictor, dataset, tta)
    labels = labels if is_labelled(builder, split) else None
    if out is not None:
        write_keypoints_csv(out, ids, predictions)
    if visualize is not None:
        _visualize(
            predictor, dataset, visualize, ids, predictions, labels, num_visualize
        )
    return ids, predictions, labels


def _visualize(predictor, dataset, folder, ids, predictions, labels, count):
    """PNGs of images with predicted joints (rings: labels) and, for the map heads,
    the predicted maps (maximum over joints) beside them."""
    import cv2

    from data_pipeline.files import write_png

    from hjr.draw import draw_keypoints

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row = {int(i): n for n, i in enumerate(ids[:count])}  # the first rows by id
    found = {}
    for batch in dataset:
        for image, index in zip(batch["image"].numpy(), batch["id"].numpy()):
            if int(index) in row:
                found[int(index)] = image
        if len(found) == len(row):
            break
    chosen = sorted(found)
    images = np.stack([found[i] for i in chosen])
    maps = predictor.maps(images)
    for b, index in enumerate(chosen):
        n = row[index]
        truth = None if labels is None else labels[n]
        panel = draw_keypoints(images[b], predictions[n], truth=truth)
        if maps is not None:
            heat = maps[b].max(-1)
            heat = (255 * (heat - heat.min()) / max(np.ptp(heat), 1e-6)).astype(
                np.uint8
            )
            heat = cv2.resize(heat, panel.shape[:2], interpolation=cv2.INTER_NEAREST)
            heat = cv2.cvtColor(
                cv2.applyColorMap(heat, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB
            )
            panel = np.concatenate([panel, heat], axis=1)
        write_png(folder / f"{index:05d}_prediction.png", panel)
    return len(chosen)
