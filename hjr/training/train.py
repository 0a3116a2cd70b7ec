"""`hjr train`: fit a model on a source, with checkpoints, resume and TensorBoard.

run(run_dir, preset, overrides[, resume]) -> run_dir starts or resumes a run (its
configuration from hjr.runs.run_config); train(conf, run_dir) trains a resolved
configuration. What the run folder holds is hjr.runs'.
"""

import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import ops

from data_pipeline import boxes, loader
from data_pipeline.errors import UserError
from data_pipeline.progress import on_terminal
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from hjr import checkpoints, runs
from hjr.core.model import build_model
from hjr.quiet import has_tensorflow
from hjr.training.callbacks import (
    BatchNormRefresh,
    ProgressLines,
    RunRecorder,
    StopAtStep,
    read_history,
)
from hjr.training.distribute import LocalDevices, devices, is_chief, make_strategy
from hjr.training.step import build_trainer, schedule

PREVIEW_IMAGES = 4
BN_REFRESH_BATCH = 256  # crops per forward pass of the BatchNorm re-estimation
INPUTS = {"image": "images", "keypoints": "keypoints", "draws": "draws"}
LOADER_THREADS = 4  # threads making training batches ahead (not on TensorFlow)


def trainer_inputs(batch: dict) -> dict:
    """A loader's batch as the trainer's inputs (hjr.core.model.HandTrainer)."""
    return {new: batch[old] for old, new in INPUTS.items() if old in batch}


class _Validation(keras.utils.PyDataset):
    """The validation split once, in batches of trainer inputs (fit re-reads it at
    every validation)."""

    def __init__(self, split, batch_size):
        super().__init__()
        self.split, self.batch_size = split, batch_size

    @property
    def num_batches(self):
        return loader.num_batches(self.split, self.batch_size)

    def __getitem__(self, index):
        return (trainer_inputs(loader.eval_batch(self.split, index, self.batch_size)),)


def _inputs(conf, train, validation, start, stop):
    """(training batches start..stop, validation batches) of prepared splits for
    fit: tf.data on TensorFlow (sharded by tf.distribute), else the loader's
    threads; the same batches either way (their boxes moved by the run's
    box_jitter)."""
    batch_size, jitter = conf["batch_size"], conf["box_jitter"]
    if keras.backend.backend() != "tensorflow":
        batches = loader.train_batches(
            train,
            conf["seed"],
            batch_size,
            start=start,
            stop=stop,
            workers=LOADER_THREADS,
            jitter=jitter,
        )
        inputs = ((trainer_inputs(batch),) for batch in batches)
        return inputs, _Validation(validation, batch_size)
    import tensorflow as tf

    from data_pipeline.pipeline import split_dataset

    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy.DATA
    options.experimental_distribute.auto_shard_policy = policy
    options.deterministic = True
    train = split_dataset(
        train,
        batch_size,
        training=True,
        seed=conf["seed"],
        options=options,
        start=start,
        jitter=jitter,
    )
    validation = split_dataset(validation, batch_size, options=options)
    return train.map(trainer_inputs), validation.map(trainer_inputs)


def run(
    run_dir,
    preset: str = None,
    overrides: dict = None,
    resume: bool = False,
    data_dir=None,
    dry_run: bool = False,
    overwrite: bool = False,
) -> Path:
    """Start a run in run_dir (preset and overrides as hjr.config.configure takes
    them) or, with resume, continue the run there (overrides: only what a resumed
    run may change). data_dir: where prepared sources live on this machine. A
    folder that holds a run takes no new one (UserError) unless `overwrite`: then
    the old run is deleted first."""
    conf = runs.run_config(run_dir, preset, overrides, resume)
    return train(conf, run_dir, resume, dry_run, data_dir, overwrite)


def run_or_continue(run_dir, preset, overrides, data_dir=None) -> Path:
    """A table's run (hjr reproduce, --robustness): continued from its latest
    checkpoint, else started anew in its folder (where a run stopped before its
    first checkpoint left its configuration)."""
    resume = runs.checkpoint(run_dir, "latest") is not None
    keras.backend.clear_session()  # the previous runs' models and graphs
    return run(
        run_dir, preset, overrides, resume, data_dir=data_dir, overwrite=not resume
    )


def train(
    conf: dict,
    run_dir,
    resume: bool = False,
    dry_run: bool = False,
    data_dir=None,
    overwrite: bool = False,
) -> Path:
    """Train (or, with resume, continue) the run described by conf in run_dir; a
    new run where one is only with `overwrite` (run)."""
    run_dir = Path(run_dir)
    if not (resume or dry_run):
        runs.check_new(run_dir, overwrite)
    strategy = make_strategy(conf["strategy"])
    replicas = strategy.num_replicas_in_sync
    if conf["batch_size"] % replicas:
        raise UserError(
            f"not divisible by the {replicas} replicas of the "
            f"{conf['strategy']} strategy",
            "batch_size",
            conf["batch_size"],
        )
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(conf["precision"])
    try:
        if dry_run:
            with strategy.scope():
                net = build_model(dict(conf, weights="none"))
            net.summary(expand_nested=True, line_length=110)
            print(
                f"hjr: dry run of {net.name} ({conf['backbone']}); weights "
                f"{conf['weights']!r} are loaded only when training"
            )
            return run_dir
        if isinstance(strategy, LocalDevices):  # keras.distribution, for fit too
            with strategy.scope():
                return _fit(conf, run_dir, resume, strategy, data_dir, overwrite)
        if is_chief(strategy):
            return _fit(conf, run_dir, resume, strategy, data_dir, overwrite)
        # Other workers of a multi-worker run train alongside the chief and write
        # into a folder of their own, dropped at the end: the chief's run folder
        # is the one result.
        with tempfile.TemporaryDirectory(prefix="hjr-worker-") as scratch:
            _fit(conf, Path(scratch), resume, strategy, data_dir)
        return run_dir
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _fit(conf, run_dir, resume, strategy, data_dir, overwrite=False):
    keras.utils.set_random_seed(conf["seed"])
    source = parse_source(conf["data"])
    every, total = schedule(conf)
    # Prepared (on first use) before the model is built.
    train = training_split(conf, source, data_dir)
    validation = open_split(source, "validation", conf["crop"], data_dir)
    if overwrite and not resume and runs.holds_run(run_dir):
        print(f"hjr: deleting the run in {run_dir} (--overwrite)")
        runs.clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # A resumed run loads its last checkpoint; one that stopped before its first
    # starts as a new run does, from its initial weights (ImageNet's).
    latest = runs.checkpoint(run_dir, "latest") if resume else None
    build_conf = conf if latest is None else dict(conf, weights="none")
    net, trainer = build_trainer(build_conf, strategy)
    if latest is not None:
        with strategy.scope():
            checkpoints.restore(latest, net, trainer.optimizer)
    runs.save_config(conf, run_dir)
    runs.save_environment(
        run_dir, keras.backend.backend(), keras.__version__, devices(strategy)
    )
    if runs.read_baseline(run_dir) is None:
        mean = runs.mean_keypoints(train)
        value = runs.mean_predictor_mse(validation.keypoints, mean)
        runs.save_baseline(run_dir, value)
        print(
            "hjr: predicting the mean training keypoints scores val kaggle_mse "
            f"{value:.1f}"
        )
    start = int(ops.convert_to_numpy(trainer.optimizer.iterations))
    if start >= total:
        print(f"hjr: {run_dir} already trained {start} of {total} steps")
        return run_dir
    shown = validation.rows(np.arange(min(PREVIEW_IMAGES, len(validation))))
    preview = (shown["image"], shown["keypoints"])
    recorder = RunRecorder(
        run_dir, preview=preview, history=read_history(run_dir) if resume else ()
    )
    callbacks = [StopAtStep(total), recorder]
    terminal = on_terminal()
    if not terminal:  # one plain line per validation, not Keras's redrawn bar
        callbacks.append(ProgressLines(total, conf["batch_size"]))
    if has_tensorflow():  # Keras' TensorBoard callback writes with tf.summary
        logs = str(run_dir / runs.LOGS)
        callbacks.append(
            keras.callbacks.TensorBoard(logs, update_freq=every // 10 or 1)
        )
    if conf["bn_refresh"]:
        callbacks.append(BatchNormRefresh(bn_refresh_batches(conf, data_dir)))
    print(
        f"hjr: training {net.name} ({conf['backbone']}) on {source}, steps "
        f"{start}..{total}, batch {conf['batch_size']} on "
        f"{strategy.num_replicas_in_sync} replica(s), Keras {keras.backend.backend()} "
        f"backend, XLA {'on' if trainer.jit_compile else 'off'}, {conf['precision']}"
    )
    train_batches, validation_batches = _inputs(conf, train, validation, start, total)
    trainer.fit(
        train_batches,
        validation_data=validation_batches,
        steps_per_epoch=every,
        epochs=-(-total // every),
        initial_epoch=start // every,
        callbacks=callbacks,
        shuffle=False,  # the dataset is shuffled (seeded) already
        verbose=1 if terminal else 0,
    )
    print(_end_line(run_dir, start, recorder))
    return run_dir


def _end_line(run_dir, start, recorder) -> str:
    best = runs.read_best(run_dir)
    done = recorder.rows[-1]["step"] if recorder.rows else start
    line = f"hjr: trained steps {start}..{done} into {run_dir}"
    if best:
        line += (
            f"; best val_kaggle_mse {best['val_kaggle_mse']:.4g} at step "
            f"{best['step']} (checkpoints/best)"
        )
    return line


def training_split(conf, source, data_dir=None):
    """The run's training split; where its box_jitter moves boxes, with its crops'
    surroundings (prepared first where they are not), which the loader's calls
    given that jitter cut from."""
    context = boxes.moves(*conf["box_jitter"])
    return open_split(source, "train", conf["crop"], data_dir, context=context)


def bn_refresh_batches(conf, data_dir=None) -> list:
    """The batches a run re-estimates BatchNorm from (BatchNormRefresh) before each
    validation: its first bn_refresh training crops, as the trainer takes them
    (augmented in its step), the same at every validation: as few batches of at
    most BN_REFRESH_BATCH as hold them, of equal size but the last."""
    images = conf["bn_refresh"]
    count = -(-images // BN_REFRESH_BATCH)
    size = -(-images // count)
    train = training_split(conf, parse_source(conf["data"]), data_dir)
    batches = []
    for step in range(count):
        keep = min(size, images - step * size)
        made = loader.train_batch(train, conf["seed"], step, size, conf["box_jitter"])
        batch = trainer_inputs(made)
        batches.append({k: ops.convert_to_tensor(v[:keep]) for k, v in batch.items()})
    return batches
