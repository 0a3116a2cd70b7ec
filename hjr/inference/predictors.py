"""Predictors: keypoints of uint8 crops from a run folder's best network (Keras,
any backend), an exported SavedModel, or an exported ONNX or LiteRT file in its
own runtime; `load_predictor` takes any of them."""

import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from data_pipeline.errors import UserError
from hjr import runs
from hjr.inference.runtimes import SUFFIXES, info_path, is_saved_model, open_exported
from hjr.inference.tta import predict_joints, turned, turned_back_mean


class Predictor:
    """Keypoints, their scores (and, for the map heads, maps) of uint8 crops
    [B, 128, 128, 3]."""

    def keypoints(self, images, tta: bool) -> np.ndarray:
        return self.joints(images, tta)[0]

    def joints(self, images, tta: bool) -> tuple:
        """(keypoints float32 [B, 21, 2], scores float32 [B, 21] in (0, 1]:
        hjr.core.codec.joint_scores; 1 where the model gives none)."""
        raise NotImplementedError

    def maps(self, images):
        """The predicted maps [B, S, S, 21], or None for the fc head."""
        raise NotImplementedError


class TTAKeypoints(keras.Model):
    """predict_joints as a Keras model: predict_on_batch compiles it on any
    backend."""

    def __init__(self, net, tta):
        super().__init__()
        self.net, self.tta = net, tta

    def call(self, images):
        return predict_joints(self.net, images, self.tta)


class NetworkPredictor(Predictor):
    """A Keras network of hjr.core.model.build_model (e.g. a run's best checkpoint)."""

    def __init__(self, net):
        self.net = net
        self._models = {tta: TTAKeypoints(net, tta) for tta in (False, True)}

    def joints(self, images, tta):
        batch = np.asarray(images)
        out = self._models[bool(tta)].predict_on_batch(batch)
        return tuple(ops.convert_to_numpy(out[k]) for k in ("keypoints", "scores"))

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

    def joints(self, images, tta):
        signature = self._tta if tta else self._plain
        outputs = signature(images=self._uint8(images))
        keypoints = outputs["keypoints"].numpy()
        if "scores" in outputs:
            return keypoints, outputs["scores"].numpy()
        return keypoints, np.ones(keypoints.shape[:2], np.float32)  # older exports

    def maps(self, images):
        outputs = self._plain(images=self._uint8(images))
        return outputs["maps"].numpy() if "maps" in outputs else None

    @staticmethod
    def _uint8(images):
        import tensorflow as tf

        return tf.cast(images, tf.uint8)


class ExportedPredictor(Predictor):
    """An exported .onnx or .tflite file of `hjr export`, in its own runtime
    (hjr.inference.runtimes.ExportedModel). Such a file has its TTA or not, as
    exported (its JSON says which): one without it gets the same TTA here, its
    four rotations run through the file and the keypoints turned back and
    averaged; one with it cannot predict without it."""

    def __init__(self, path):
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

    def joints(self, images, tta):
        images = np.asarray(images, np.uint8)
        if bool(tta) == self.tta:
            return self._model.joints(images)
        if self.tta:
            raise UserError(
                f"{self.path}: exported with TTA, so it predicts with it only; "
                "leave out --no-tta, or export again without --tta"
            )
        keypoints, scores = self._model.joints(ops.convert_to_numpy(turned(images)))
        mean = turned_back_mean(keypoints, float(images.shape[1]))
        scores = scores.reshape(4, len(images), -1).mean(0)
        return ops.convert_to_numpy(mean), scores

    def maps(self, images):
        return None  # an exported file gives keypoints only


def load_predictor(model) -> Predictor:
    """A run folder (its best checkpoint), an exported SavedModel folder, or an
    exported .onnx or .tflite file."""
    if is_saved_model(model):
        return SavedModelPredictor(model)
    if Path(model).suffix in SUFFIXES.values():
        return ExportedPredictor(model)
    return NetworkPredictor(runs.load_network(model))
