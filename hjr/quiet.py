"""Starting TensorFlow without its start-up noise on the terminal.

On import, TensorFlow's C++ side writes lines such as `WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR`, `I0000 ... oneDNN
custom operations are on` and, once its runtime starts, `E0000 ... failed call to
cuInit` on a machine without a GPU: nothing a user can act on, and an "E... CUDA
error" reads like a failure. The first lines come before TensorFlow reads any
setting, so they are filtered out of what the import writes to stderr; the later
ones are turned off with TF_CPP_MIN_LOG_LEVEL=3 (TensorFlow's C++ errors that
matter reach Python as exceptions). Everything else written meanwhile (Python
warnings, any other line) is passed on. `HJR_VERBOSE=1` or `hjr -v` keeps it all.
"""

import contextlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings

NOISE = re.compile(
    "|".join(
        (
            r"All log messages before absl::InitializeLog\(\) is called",
            r"oneDNN custom operations are on",
            r"Could not find cuda drivers on your machine",
            r"failed call to cuInit",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"This TensorFlow binary is optimized to use available CPU instructions",
            r"To enable the following instructions: .* rebuild TensorFlow",
            r"TF-TRT Warning",
        )
    )
)


def verbose_from_env() -> bool:
    return os.environ.get("HJR_VERBOSE", "") not in ("", "0")


def has_tensorflow() -> bool:
    """Whether TensorFlow is installed here (hjr runs without it, but for
    SavedModels, its exporters and TensorBoard's summaries); imports nothing."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a blocked or broken install
        return False


def need_tensorflow(what: str) -> None:
    """UserError where TensorFlow is not installed: `what` needs it."""
    from data_pipeline.errors import UserError

    if not has_tensorflow():
        raise UserError(f"{what} needs TensorFlow: pip install tensorflow")


def start_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow, where installed, quietly unless `verbose`. Under another
    Keras backend, TensorFlow only feeds the input pipeline: it is kept off the
    GPUs, which belong to the backend."""
    if "tensorflow" in sys.modules:
        return
    if verbose:
        _import_tensorflow()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            _import_tensorflow()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(True)
            sys.stderr.write("".join(x for x in lines if not NOISE.search(x)))
    # TensorFlow Datasets logs its internals (custom configs, deprecations) as
    # absl warnings: nothing a user can act on.
    logging.getLogger("absl").setLevel(logging.ERROR)


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError:  # another Keras backend, without TensorFlow
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        tf.config.set_visible_devices([], "GPU")


@contextlib.contextmanager
def converter_output(verbose: bool = False):
    """Keep what converters (tf2onnx, the LiteRT converter, TensorFlow's graph
    passes) write to stdout and stderr, from Python or C++, off the terminal
    unless `verbose`; where the block fails, its last lines are shown after all."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    failed = False
    with tempfile.TemporaryFile() as captured, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
            if failed:
                captured.seek(0)
                lines = captured.read().decode(errors="replace").splitlines(True)
                sys.stderr.write("".join(lines[-40:]))
