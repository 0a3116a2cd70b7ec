import gc
import os
import subprocess
import sys

import pytest

SMALL_SYNTHETIC = "synthetic:train=40,validation=8,test=8"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    """Free the session's garbage (TensorFlow's objects) before a pytest-xdist worker
    reports that it is done: the controller then stops the worker, interrupting it
    after 5 s, which pytest's own last collection could otherwise outlast (it printed
    a KeyboardInterrupt in a weakref callback after all tests had passed)."""
    gc.collect()


@pytest.fixture
def data_dir(tmp_path):
    """A fresh folder for prepared sources, so each test prepares what it reads."""
    return tmp_path / "prepared"


def train_small_run(run_dir, data_dir, head="classification", steps=2):
    """A tiny-backbone run of a few steps on SMALL_SYNTHETIC, in a long warm-up (a
    small learning rate: the network stays near its start); returns its folder."""
    from hjr.training.train import run

    overrides = dict(head=head, data=SMALL_SYNTHETIC, steps=steps, eval_every=steps)
    overrides["warmup_steps"] = 100
    return run(run_dir, "quick", dict(overrides, batch_size=8), data_dir=data_dir)


def run_python(code, *args, timeout=600, **env):
    """Run Python code with command-line arguments `args` in a fresh interpreter,
    in the environment of a user's shell plus `env` (importing TensorFlow in this
    process set TF_CPP_MIN_LOG_LEVEL, which a user's shell has not); the
    CompletedProcess, output as text."""
    shell = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**shell, **env},
    )
