"""What a training run does at each validation: BatchNorm's moving statistics
re-estimated first where the run asks (BatchNormRefresh), where it stops
(StopAtStep), and what it leaves
behind: checkpoints (latest and best, hjr.runs), history.csv, the curves
PNG and, where TensorFlow is installed, a few validation images with predicted
joints in TensorBoard."""

import math
import time

import keras
import numpy as np
from keras import ops

from data_pipeline.files import atomic_path, write_png
from data_pipeline.progress import duration, stop_if_asked
from hjr import runs
from hjr.draw import draw_keypoints, figure_image, new_figure
from hjr.quiet import has_tensorflow

CURVES = ("loss", "kaggle_mse", "mean_joint_distance")


class StopAtStep(keras.callbacks.Callback):
    """Ends fit() after optimizer step `total`, in the middle of an epoch where
    `total` is not a multiple of the validation interval: fit() then validates
    and ends the epoch there, so the run's last validation and checkpoint are at
    exactly `total` steps."""

    def __init__(self, total):
        super().__init__()
        self.total = int(total)
        self.done = self.epoch_start = 0

    def on_train_begin(self, logs=None):
        # Read once: reading the step counter after every call would wait for the
        # accelerator each time. `batch` below is the epoch's last step done.
        self.done = int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = self.done

    def on_train_batch_end(self, batch, logs=None):
        stop_if_asked()  # a SIGTERM whose KeyboardInterrupt Python dropped
        self.done = self.epoch_start + batch + 1
        if self.done >= self.total:
            self.model.stop_training = True


class ProgressLines(keras.callbacks.Callback):
    """Off a terminal, in place of Keras's progress bar: one plain line per
    validation with the step, the training loss, the validation metrics, the
    training speed (images/s, validation left out), the time since the start and
    the time left at the pace so far."""

    def __init__(self, total, batch_size, print_line=print):
        super().__init__()
        self.total, self.batch_size, self.print = int(total), batch_size, print_line
        self.started = self.first = self.trained = self.epoch_start = 0.0
        self.steps_start = 0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.first = int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()
        self.trained = 0.0
        self.steps_start = int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_test_begin(self, logs=None):
        if not self.trained and self.epoch_start:  # the epoch's training ends
            self.trained = time.monotonic() - self.epoch_start

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.monotonic()
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        seconds = self.trained or now - self.epoch_start
        speed = (step - self.steps_start) * self.batch_size / max(seconds, 1e-9)
        elapsed = now - self.started
        left = elapsed / max(step - self.first, 1) * (self.total - step)
        values = [f"loss {logs['loss']:.4g}"] if "loss" in logs else []
        values += [
            f"{k} {float(v):.4g}" for k, v in logs.items() if k.startswith("val_")
        ]
        self.print(
            f"hjr: step {step}/{self.total}, {', '.join(values)}, {speed:.1f} "
            f"images/s, elapsed {duration(elapsed)}, left {duration(left)}"
        )


class BatchNormRefresh(keras.callbacks.Callback):
    """Before each validation of fit(): every BatchNorm layer's moving mean and
    variance set to the plain average of its batch statistics over `batches`
    (dicts of training inputs, augmented by the trainer as in training), the
    weights untouched. Short or large-batch runs validate on stale statistics
    otherwise: the moving averages lag the weights by about 1 / (1 - momentum)
    steps. The checkpoint written after the validation keeps these statistics,
    and training goes on from them."""

    def __init__(self, batches):
        super().__init__()
        self.batches = list(batches)
        self.fitting = False

    def on_train_begin(self, logs=None):
        self.fitting = True

    def on_train_end(self, logs=None):
        self.fitting = False

    def on_test_begin(self, logs=None):
        if self.fitting:  # fit()'s validation, not a separate evaluate()
            refresh_batch_norm(self.model, self.batches)


def refresh_batch_norm(model, batches):
    """Re-estimate the moving statistics of model's trainable BatchNorm layers as
    the average of their batch statistics over `batches`, run in training mode.
    Keras updates them as moving = momentum * moving + (1 - momentum) * batch; a
    momentum of k / (k + 1) at the k-th batch (from 0) makes that the average."""
    norms = [
        layer
        for layer in _all_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    momenta = [layer.momentum for layer in norms]
    try:
        for k, batch in enumerate(batches if norms else ()):
            for layer in norms:
                layer.momentum = k / (k + 1)
            model(batch, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def _all_layers(model):
    """Every layer inside `model`, nested models' layers included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


class RunRecorder(keras.callbacks.Callback):
    """At the end of each fit() epoch (one validation interval)."""

    def __init__(self, run_dir, preview=None, history=()):
        super().__init__()
        self.run_dir = run_dir
        self.preview = preview  # (images, keypoints) of a few validation samples
        self.rows = list(history)
        self.best_value = runs.best_value(run_dir)
        self.writer = None
        if preview is not None and has_tensorflow():
            import tensorflow as tf

            self.writer = tf.summary.create_file_writer(
                str(run_dir / runs.LOGS / "images")
            )

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        net = self.model.net
        runs.save_checkpoint(self.run_dir, "latest", step, net, self.model.optimizer)
        value = logs.get("val_kaggle_mse", math.inf)
        if value < self.best_value:
            self.best_value = value
            runs.save_checkpoint(self.run_dir, "best", step, net)
            runs.save_best(self.run_dir, step, _floats(logs))
        self.rows.append({"step": step, **_floats(logs)})
        write_history(self.run_dir, self.rows, runs.read_baseline(self.run_dir))
        if self.writer is not None:
            self._log_images(step)

    def _log_images(self, step):
        import tensorflow as tf

        images, truth = self.preview
        predicted = self.model.net(images, training=False)["keypoints"]
        drawn = [
            draw_keypoints(image, p, scale=2, truth=t)
            for image, p, t in zip(
                images.astype(np.uint8), ops.convert_to_numpy(predicted), truth
            )
        ]
        with self.writer.as_default():
            tf.summary.image(
                "validation/predictions",
                np.stack(drawn),
                step=step,
                max_outputs=len(drawn),
            )
        self.writer.flush()


def _floats(logs):
    return {k: float(v) for k, v in logs.items()}


def write_history(run_dir, rows, baseline=None):
    """history.csv (one row per validation) and curves.png, both atomic."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    with atomic_path(run_dir / runs.HISTORY) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    write_png(run_dir / runs.CURVES, plot_curves(frame, baseline))


def read_history(run_dir):
    import pandas as pd

    path = run_dir / runs.HISTORY
    return pd.read_csv(path).to_dict("records") if path.exists() else []


def plot_curves(frame, baseline=None):
    """An RGB image of the training curves: loss and validation metrics by step,
    with the mean-keypoint predictor's validation kaggle_mse as a reference."""
    fig, axes = new_figure(1, len(CURVES), figsize=(4 * len(CURVES), 3.2), dpi=100)
    for ax, name in zip(axes, CURVES):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + name in frame:
                ax.plot(
                    frame["step"],
                    frame[prefix + name],
                    style,
                    marker="o",
                    markersize=3,
                    label=("train " if not prefix else "val ") + name,
                )
        if name == "kaggle_mse" and baseline is not None:
            ax.axhline(baseline, color="grey", linestyle=":", label="predict the mean")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_image(fig)
