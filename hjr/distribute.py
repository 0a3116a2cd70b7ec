"""Choosing the tf.distribute strategy and whether steps are XLA-compiled."""

import os

import tensorflow as tf

from data_pipeline.errors import UserError

from .config import STRATEGIES


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


def _tpu_present() -> bool:
    return bool(os.environ.get("TPU_NAME")) or os.path.exists("/dev/accel0")


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """auto: a TPU if one is attached, several GPUs mirrored, else one device
    (the GPU, or the CPU)."""
    if name not in STRATEGIES:
        raise UserError(f"expected one of {', '.join(STRATEGIES)}", "strategy", name)
    if name == "multi-worker":
        # Before anything that initialises TF's runtime (listing devices does):
        # collective ops can only be configured at program startup.
        return _multi_worker_strategy()
    if name == "tpu" or (name == "auto" and _tpu_present()):
        return _tpu_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # Without GPUs, mirror over the logical CPUs (tests, or CPU-only clusters).
        return tf.distribute.MirroredStrategy(None if gpus else cpus)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def use_jit(flag: str, strategy: tf.distribute.Strategy) -> bool:
    """--jit on/off, or auto: on when the strategy computes on GPUs or TPUs.

    Keras' own jit_compile="auto" turns XLA off whenever a strategy is active, so
    hjr decides and passes a plain bool.
    """
    if flag in ("on", "off"):
        return flag == "on"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    devices = strategy.extended.worker_devices
    return any("GPU" in d.upper() for d in devices)
