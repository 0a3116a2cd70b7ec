"""Models: an encoder, a head, and the Keras model that trains them with fit().

`build_model(conf)` returns the network `hjr_<head>`: input `images` float32
[B, 128, 128, 3] RGB 0..255 (preprocessing inside), outputs a dict with `keypoints`
[B, 21, 2] (and `maps` for the map heads). `HandTrainer` wraps it for compile/fit:
augmentation of the batch, the head's loss with labels encoded on the device, and
the keypoint metrics, all inside the one (optionally XLA-compiled) step. Both leave
unlabelled joints (NaN keypoints, data_pipeline.keypoints) out.

Everything here is `keras.ops`: the same code trains on TensorFlow, JAX and
PyTorch. The step is Keras' own; the trainer's `call` augments the batch (in
training only) and passes the labels it moved along with the predictions, so
`compute_loss` and `compute_metrics` (not a backend-specific `train_step`) see
them.
"""

import keras
from keras import ops

from data_pipeline.keypoints import CROP_SIZE
from hjr.config import complete
from hjr.core.augment import augment_batch
from hjr.core.backbones import build_encoder
from hjr.core.heads import HEADS
from hjr.core.metrics import fill_unlabelled, keras_metrics, labelled


def build_model(conf: dict) -> keras.Model:
    """The network described by conf (hjr.config; missing keys take the defaults)."""
    conf = complete(conf)
    images = keras.Input((CROP_SIZE, CROP_SIZE, 3), name="images")
    encoder = build_encoder(conf["backbone"], conf["weights"], CROP_SIZE)
    outputs = HEADS[conf["head"]].outputs(encoder(images), conf)
    return keras.Model(images, outputs, name=f"hjr_{conf['head']}")


def head_loss(conf, keypoints, outputs):
    """The head's training loss (a scalar) for labels keypoints [B, 21, 2], over
    their labelled joints. Unlabelled joints (NaN) are set to 0 before the targets
    are made from them (so that no NaN reaches a value or a gradient), and the
    losses leave them out by labels["labelled"] (float32 [B, 21], 1: labelled)."""
    head = HEADS[conf["head"]]
    mask = labelled(keypoints)
    keypoints = fill_unlabelled(keypoints, mask)
    labels = {"keypoints": keypoints, "labelled": mask}
    if head.target is not None:
        labels.update(head.target(keypoints, outputs["maps"].shape[1], conf))
    return head.loss(labels, outputs, conf)


class HandTrainer(keras.Model):
    """Trains a network built by build_model with compile()/fit().

    Inputs are dicts: "images" uint8/float [B, S, S, 3], "keypoints" float
    [B, 21, 2] and, for augmented training batches, "draws" float [B, 4] in [0, 1)
    (hjr.core.augment; made by the input pipeline from the run's seed and the step, so
    the same seed gives the same augmentation on any backend, also after a
    resume). `augment`: the hjr.core.augment settings, or None for none.
    """

    def __init__(self, net, conf, augment=None, **kwargs):
        super().__init__(name=f"{net.name}_trainer", **kwargs)
        self.net = net
        self.conf = complete(conf)
        self.augment = augment
        self.keypoint_metrics = keras_metrics()

    def call(self, inputs, training=False):
        images = ops.cast(inputs["images"], "float32")
        keypoints = ops.cast(inputs["keypoints"], "float32")
        if training and self.augment is not None and "draws" in inputs:
            images, keypoints = augment_batch(
                images, keypoints, inputs["draws"], self.augment
            )
        outputs = dict(self.net(images, training=training))
        outputs["labels"] = keypoints  # as augmented: what the loss compares with
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return head_loss(self.conf, y_pred["labels"], y_pred)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric in self.keypoint_metrics:
            metric.update_state(y_pred["labels"], y_pred["keypoints"])
        return self.get_metrics_result()
