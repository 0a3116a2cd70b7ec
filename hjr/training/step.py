"""The training step on any backend: the optimizer and its learning rate, and the
network with its HandTrainer compiled under a strategy (hjr.training.distribute).

Imports no TensorFlow: `hjr bench --train-step` builds the step from here where
only Keras and JAX (or PyTorch) are installed.
"""

import math

import keras
from keras import ops

from hjr.config import WITH_BETA_2, augmentation
from hjr.core.model import build_model
from hjr.training.distribute import trainer_class, use_jit

OPTIMIZERS = {
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
    "nadam": keras.optimizers.Nadam,
}


def schedule(conf):
    """(validation interval, total steps): a validation every `eval_every` steps and
    one after the last step, where `steps` is not a multiple of the interval."""
    every = max(1, min(int(conf["eval_every"]), int(conf["steps"])))
    return every, int(conf["steps"])


@keras.saving.register_keras_serializable(package="hjr")
class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` after a linear warm-up of `warmup_steps`, constant or cosine-decayed to
    zero at `total_steps`."""

    def __init__(self, lr, warmup_steps, total_steps, decay="constant"):
        self.lr, self.warmup_steps = float(lr), int(warmup_steps)
        self.total_steps, self.decay = int(total_steps), decay

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = self.lr * ops.minimum(1.0, (step + 1.0) / max(1, self.warmup_steps))
        if self.decay == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            rate = rate * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return rate

    def get_config(self):
        return {
            "lr": self.lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
        }


def _learning_rate(conf):
    if conf["warmup_steps"] == 0 and conf["lr_schedule"] == "constant":
        return conf["lr"]
    _, total = schedule(conf)
    return LearningRate(conf["lr"], conf["warmup_steps"], total, conf["lr_schedule"])


def _optimizer(conf):
    adam = {"beta_2": conf["beta_2"]} if conf["optimizer"] in WITH_BETA_2 else {}
    decay = conf["weight_decay"] or None
    optimizer = OPTIMIZERS[conf["optimizer"]](
        _learning_rate(conf), weight_decay=decay, **adam
    )
    if decay:  # the kernels only
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def build_trainer(conf, strategy):
    """The network and its HandTrainer, compiled, its optimizer built."""
    keras.utils.set_random_seed(conf["seed"])  # after data preparation, which draws too
    with strategy.scope():
        net = build_model(conf)
        trainer = trainer_class(strategy)(net, conf, augmentation(conf))
        trainer.compile(
            optimizer=_optimizer(conf),
            jit_compile=use_jit(conf["jit"], strategy),
            steps_per_execution=conf["steps_per_execution"],
        )
        trainer.optimizer.build(trainer.trainable_variables)
    return net, trainer
