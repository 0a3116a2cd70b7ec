"""Where the training step runs: the devices, the distribution and XLA, per backend.

`make_strategy(name)` returns an object with `scope()` and `num_replicas_in_sync`:
- TensorFlow: a tf.distribute strategy (auto: a TPU when attached, mirrored over
  several GPUs, else one device; multi-worker from $TF_CONFIG);
- JAX: data parallel over all local devices (keras.distribution.DataParallel)
  where there are several (auto) or always (mirrored), else one device;
- PyTorch: one device.
`trainer_class(strategy)` is the HandTrainer to build under it: on TensorFlow a
subclass with what tf.distribute needs (hjr.core.model stays backend-agnostic).
"""

import contextlib

import keras

from data_pipeline.errors import UserError
from hjr.config import STRATEGIES
from hjr.core.model import HandTrainer


def backend() -> str:
    return keras.backend.backend()


def local_devices() -> list:
    """This process's devices, as keras.distribution names them (which the
    PyTorch backend does not support: its CUDA devices, else the CPU)."""
    if backend() != "torch":
        return keras.distribution.list_devices()
    import torch

    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] if count else ["cpu:0"]


class LocalDevices:
    """The strategy of the JAX and PyTorch backends: one device, or (JAX) data
    parallel over `devices` with keras.distribution."""

    def __init__(self, devices, distribution=None):
        self.devices = list(devices)
        self.distribution = distribution
        self.num_replicas_in_sync = len(self.devices) if distribution else 1

    def scope(self):
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()


def _local_strategy(name):
    if name in ("tpu", "multi-worker"):
        needs = f"needs the TensorFlow backend, not {backend()}"
        raise UserError(needs, "strategy", name)
    devices = local_devices()
    parallel = name == "mirrored" or (name == "auto" and len(devices) > 1)
    if not parallel:
        return LocalDevices(devices[:1])
    if backend() != "jax":
        raise UserError("needs the JAX or TensorFlow backend", "strategy", name)
    return LocalDevices(devices, keras.distribution.DataParallel(devices=devices))


def make_strategy(name: str = "auto"):
    if name not in STRATEGIES:
        raise UserError(f"expected one of {', '.join(STRATEGIES)}", "strategy", name)
    if backend() != "tensorflow":
        return _local_strategy(name)
    from hjr.training import tf_distribute

    return tf_distribute.make_strategy(name)


def use_jit(flag: str, strategy) -> bool:
    """--jit on/off, or auto: on JAX always; elsewhere on when the strategy
    computes on GPUs or TPUs (XLA slows TensorFlow's training down on CPUs and
    compiles for minutes).

    Keras' own jit_compile="auto" turns XLA off whenever a tf.distribute strategy
    is active, so hjr decides and passes a plain bool.
    """
    if flag in ("on", "off"):
        return flag == "on"
    if backend() == "jax":  # JAX without jit runs op by op: far slower anywhere
        return True
    names = devices(strategy)
    return any(kind in d.upper() for d in names for kind in ("GPU", "TPU", "CUDA"))


def devices(strategy) -> list:
    """The names of the devices a strategy computes on."""
    if isinstance(strategy, LocalDevices):
        return [str(d) for d in strategy.devices]
    from hjr.training import tf_distribute

    return [str(d) for d in tf_distribute.devices(strategy)]


def trainer_class(strategy):
    if isinstance(strategy, LocalDevices):
        return HandTrainer
    from hjr.training import tf_distribute

    return tf_distribute.TFHandTrainer


def is_chief(strategy) -> bool:
    """Whether this process writes the run folder (always, but in multi-worker runs
    where only the chief, or worker 0 without a chief, does)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
