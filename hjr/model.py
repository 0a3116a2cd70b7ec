"""Models: an encoder, a head, and the Keras model that trains them with fit().

`build_model(conf)` returns the network `hjr_<head>`: input `images` float32
[B, S, S, 3] RGB 0..255 (preprocessing inside), outputs a dict with `keypoints`
[B, 21, 2] (and `maps` for the map heads). `HandTrainer` wraps it for compile/fit:
augmentation on the batch, the head's loss with labels encoded on the device, and
the keypoint metrics, all inside the one (optionally XLA-compiled) step.
"""

import keras
import tensorflow as tf

from data_pipeline.augment import augment_batch

from .backbones import build_encoder
from .config import complete
from .heads import HEADS
from .metrics import keras_metrics


def build_model(conf: dict) -> keras.Model:
    """The network described by conf (hjr.config; missing keys take the defaults)."""
    conf = complete(conf)
    size = conf["input_size"]
    images = keras.Input((size, size, 3), name="images")
    encoder = build_encoder(conf["backbone"], conf["weights"], size)
    outputs = HEADS[conf["head"]].outputs(encoder(images), conf)
    return keras.Model(images, outputs, name=f"hjr_{conf['head']}")


def head_loss(conf, keypoints, outputs):
    """The head's training loss (a scalar) for labels keypoints [B, 21, 2]."""
    head = HEADS[conf["head"]]
    labels = keypoints
    if head.target is not None:
        labels = head.target(keypoints, outputs["maps"].shape[1], conf)
    return head.loss(labels, outputs)


class HandTrainer(keras.Model):
    """Trains a network built by build_model with compile()/fit().

    Batches are (images uint8/float [B, S, S, 3], keypoints [B, 21, 2]). With
    `augment` (a data_pipeline.augment conf, or None for none), each training
    step augments its batch with the seed (seed, step[, replica]): the same seed
    gives the same draws, also after a resume.
    """

    def __init__(self, net, conf, augment=None, seed=0, **kwargs):
        super().__init__(name=f"{net.name}_trainer", **kwargs)
        self.net = net
        self.conf = complete(conf)
        self.augment = augment
        self.seed = int(seed)
        self.keypoint_metrics = keras_metrics()

    def call(self, images, training=False):
        return self.net(images, training=training)

    def train_step(self, data):
        images, keypoints, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = tf.cast(images, tf.float32)
        keypoints = tf.cast(keypoints, tf.float32)
        if self.augment is not None:
            step = tf.cast(self.optimizer.iterations, tf.int64)
            seed = tf.stack([tf.constant(self.seed, tf.int64), step])
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1:
                seed = tf.random.experimental.stateless_fold_in(
                    seed, replica.replica_id_in_sync_group, alg="philox"
                )
            images, keypoints = augment_batch(images, keypoints, seed, self.augment)
        return super().train_step((images, keypoints))

    def test_step(self, data):
        images, keypoints, _ = keras.utils.unpack_x_y_sample_weight(data)
        return super().test_step(
            (tf.cast(images, tf.float32), tf.cast(keypoints, tf.float32))
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = head_loss(self.conf, y, y_pred)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric in self.keypoint_metrics:
            metric.update_state(y, y_pred["keypoints"])
        results = self.get_metrics_result()
        if _multi_worker(self.distribute_strategy):
            # Keras reduces each step's outputs over the workers with
            # strategy.reduce(MEAN, axis=0), which fails on scalars
            # (tensorflow/tensorflow#72388): give it vectors of one value.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras gets the first batch's shapes by reducing it over the replicas,
        # which MultiWorkerMirroredStrategy cannot do for a tuple of PerReplica
        # values (Keras 3.15, TensorFlow backend): give it this worker's batch.
        if iterator is not None and _multi_worker(self.distribute_strategy):
            for _, _, batches in iterator:
                batch = next(batches)
                break
            local = self.distribute_strategy.experimental_local_results
            data_batch = tf.nest.map_structure(lambda value: local(value)[0], batch)
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def _multi_worker(strategy) -> bool:
    """Whether strategy is a MultiWorkerMirroredStrategy over several workers."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )
