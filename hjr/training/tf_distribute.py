"""tf.distribute, for the TensorFlow backend: the strategies and what the trainer
needs under them. The only training code that imports TensorFlow."""

import os

import tensorflow as tf

from data_pipeline.errors import UserError
from hjr.core.model import HandTrainer


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", "")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise UserError(f"no TPU found ({error})", "strategy", "tpu") from None
    return tf.distribute.TPUStrategy(resolver)


def _multi_worker_strategy():
    """The cluster comes from $TF_CONFIG (one worker without it)."""
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise UserError(
            "TensorFlow already ran in this process; choose the strategy first "
            "(collective ops are configured at startup)",
            "strategy",
            "multi-worker",
        ) from None


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: a TPU if one is attached, several GPUs mirrored, else one device
    (the GPU, or the CPU)."""
    if name == "multi-worker":
        # Before anything that initialises TF's runtime (listing devices does):
        # collective ops can only be configured at program startup.
        return _multi_worker_strategy()
    if name == "tpu" or (name == "auto" and tpu_present()):
        return _tpu_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # Without GPUs, mirror over the logical CPUs (tests, or CPU-only clusters).
        return tf.distribute.MirroredStrategy(None if gpus else cpus)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def tpu_present() -> bool:
    return bool(os.environ.get("TPU_NAME")) or os.path.exists("/dev/accel0")


def devices(strategy) -> list:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return ["TPU"]
    return list(strategy.extended.worker_devices)


def _multi_worker(strategy) -> bool:
    """Whether strategy is a MultiWorkerMirroredStrategy over several workers."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    tasks = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(addresses) for addresses in tasks.values()) > 1


class TFHandTrainer(HandTrainer):
    """HandTrainer under tf.distribute: each replica's loss is its share of the
    global batch's, and two Keras 3.15 multi-worker gaps are bridged."""

    def compute_loss(self, *args, **kwargs):
        loss = super().compute_loss(*args, **kwargs)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        results = super().compute_metrics(x, y, y_pred, sample_weight)
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
