"""The same training code under tf.distribute.

MirroredStrategy over two logical CPU devices and MultiWorkerMirroredStrategy over
two local processes train exactly like one device does on the same global batches
(without augmentation: the comparison stays at float rounding). Logical devices and
collective ops must be set up before TensorFlow starts, so every run is a fresh
subprocess with its own timeout.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_pipeline.errors import UserError
from data_pipeline.sources import parse_source
from data_pipeline.store import prepare
from hjr import checkpoints
from hjr.training.distribute import STRATEGIES, is_chief, make_strategy, use_jit

pytestmark = pytest.mark.slow  # trains, exports or starts fresh interpreters

DATA = "synthetic:train=64,validation=16,test=8"
STEPS, EVAL_EVERY, BATCH = 4, 2, 8
BN_REFRESH = 24  # BatchNorm re-estimated at each validation, under every strategy
# Plain Adam at a constant rate: four steps that lower the validation loss (the
# quick preset's fc warms up over 30% of the steps)
ADAM = {"optimizer": "adam", "lr": 3e-3, "warmup_steps": 0, "weight_decay": 0.0}
TIMEOUT = 300  # seconds per subprocess (each pays ~5 s of TensorFlow import)
RTOL = 1e-4

# Runs hjr with N logical CPU devices, configured before TensorFlow initialises:
#   driver.py N cli ARGS...                        hjr.cli.main(ARGS)
#   driver.py N api OVERRIDES_JSON DATA_DIR RUN    hjr.training.train.run on the "quick"
#                                                  preset with OVERRIDES
DRIVER = """
import json
import sys

import tensorflow as tf

cpus, mode, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * cpus
)
found = len(tf.config.list_logical_devices("CPU"))
assert found == cpus, f"driver: {found} logical CPUs, wanted {cpus}"
if mode == "cli":
    from hjr.cli import main

    sys.exit(main(args))
from hjr.training.train import run


overrides, data_dir, run_dir = json.loads(args[0]), args[1], args[2]
run(run_dir, "quick", overrides, data_dir=data_dir)
"""


def _env(**extra):
    """The environment of a subprocess: CPU only, no inherited cluster."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TPU_NAME")}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _tail(text, lines=40):
    return "\n".join(str(text).splitlines()[-lines:])


def _run(args, cwd, **env):
    """Run a command to completion (killed after TIMEOUT); the CompletedProcess."""
    try:
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=_env(**env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:  # subprocess.run killed it
        pytest.fail(
            f"{' '.join(map(str, args))} ran over {TIMEOUT} s; stderr:\n"
            f"{_tail(error.stderr or '')}"
        )


def _check_ok(proc, what):
    assert proc.returncode == 0, (
        f"{what} exited {proc.returncode}; stdout:\n{_tail(proc.stdout, 10)}\n"
        f"stderr:\n{_tail(proc.stderr)}"
    )


def _history(run_dir):
    path = run_dir / "history.csv"
    held = sorted(p.name for p in run_dir.glob("*"))
    assert path.exists(), f"{path} missing; the run folder holds {held}"
    return pd.read_csv(path)


def _assert_same_history(got, want, what):
    assert got["step"].tolist() == want["step"].tolist(), (what, got, want)
    assert sorted(got.columns) == sorted(want.columns), (what, got.columns)
    for column in want.columns:
        np.testing.assert_allclose(
            got[column],
            want[column],
            rtol=RTOL,
            err_msg=f"{what}: column {column!r}\n{got.to_string()}\n"
            f"versus one device:\n{want.to_string()}",
        )


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Prepared data (once, so no two runs race to prepare it) and the driver."""
    root = tmp_path_factory.mktemp("distribute")
    data_dir = root / "data"
    prepare(parse_source(DATA), "biased", data_dir)
    driver = root / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    return types.SimpleNamespace(root=root, data_dir=data_dir, driver=driver)


def _train_with_driver(shared, strategy, run_dir, cpus=2):
    overrides = {
        "head": "fc",
        "data": DATA,
        "steps": STEPS,
        "eval_every": EVAL_EVERY,
        "batch_size": BATCH,
        "augment": False,
        "bn_refresh": BN_REFRESH,
        "strategy": strategy,
        **ADAM,
    }
    proc = _run(
        [
            sys.executable,
            shared.driver,
            cpus,
            "api",
            json.dumps(overrides),
            shared.data_dir,
            run_dir,
        ],
        cwd=shared.root,
        HJR_DATA_DIR=str(shared.data_dir),
    )
    _check_ok(proc, f"training with strategy {strategy}")
    return proc


@pytest.fixture(scope="module")
def one_device(shared):
    """The reference: history.csv of a one-device run (two logical CPUs present)."""
    run_dir = shared.root / "one-device"
    proc = _train_with_driver(shared, "one-device", run_dir)
    assert "on 1 replica(s)" in proc.stdout, _tail(proc.stdout, 10)
    history = _history(run_dir)
    assert history["step"].tolist() == [2, 4], history
    # the training loss of steps 3-4 is on other samples than that of steps 1-2;
    # the validation loss is on the same ones both times
    losses = history["val_loss"].tolist()
    assert np.isfinite(history.to_numpy()).all() and losses[1] < losses[0], history
    return history


def test_mirrored_over_two_logical_cpus_matches_one_device(shared, one_device):
    run_dir = shared.root / "mirrored"
    proc = _train_with_driver(shared, "mirrored", run_dir)
    started = "batch 8 on 2 replica(s), Keras tensorflow backend, XLA off"
    assert started in proc.stdout, _tail(proc.stdout, 10)
    _assert_same_history(_history(run_dir), one_device, "mirrored over 2 CPUs")


def _free_ports(count):
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_process_multi_worker_run_on_localhost(shared, one_device):
    run_dir = shared.root / "multi-worker"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    command = [
        sys.executable,
        "-m",
        "hjr",
        "train",
        "--preset",
        "quick",
        "--head",
        "fc",
        "--strategy",
        "multi-worker",
        "--steps",
        STEPS,
        "--eval-every",
        EVAL_EVERY,
        "--batch-size",
        BATCH,
        "--no-augment",
        "--bn-refresh",
        BN_REFRESH,
        *[f"--{k.replace('_', '-')}={v}" for k, v in ADAM.items()],
        "--data",
        DATA,
        "--data-dir",
        shared.data_dir,
        "--out",
        run_dir,
    ]
    procs, logs = [], []
    try:
        for index in range(2):
            # Each worker's temporary files (worker 1's scratch run folder) go here.
            tmp = shared.root / f"tmp{index}"
            tmp.mkdir()
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            out = open(shared.root / f"worker{index}.log", "w+")
            logs.append(out)
            procs.append(
                subprocess.Popen(
                    [str(a) for a in command],
                    cwd=shared.root,
                    env=_env(TF_CONFIG=json.dumps(tf_config), TMPDIR=str(tmp)),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        # Until both end, one fails (the other would wait for it), or the time is up.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if None not in codes or any(code not in (None, 0) for code in codes):
                break
            time.sleep(0.5)
        for proc in procs:  # a moment for the other one to end too
            try:
                proc.wait(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        outputs = []
        for out in logs:
            out.seek(0)
            outputs.append(out.read())
            out.close()
    codes = [proc.returncode for proc in procs]
    report = "".join(
        f"\n--- worker {i}:\n{_tail(o, 25)}" for i, o in enumerate(outputs)
    )
    assert codes == [0, 0], f"workers exited {codes} (-9: killed by the test){report}"
    for output in outputs:
        assert "on 2 replica(s)" in output, _tail(output, 10)

    history = _history(run_dir)
    assert history["step"].tolist() == [2, 4], history
    latest = checkpoints.latest(run_dir / "checkpoints" / "latest")
    assert latest is not None and latest.name == "step-00000004", latest
    assert checkpoints.latest(run_dir / "checkpoints" / "best")
    assert json.loads((run_dir / "config.json").read_text())["strategy"] == (
        "multi-worker"
    )
    # Worker 1 is not the chief: it wrote its share to a scratch folder, since removed.
    left = [p.name for p in (shared.root / "tmp1").iterdir() if "hjr-worker" in p.name]
    assert not left, f"worker 1 left its scratch run folder behind: {left}"
    # Two workers of 4 samples each compute what one device does with 8.
    _assert_same_history(history, one_device, "multi-worker over 2 processes")


def test_an_unsplittable_batch_is_a_clear_error(shared):
    proc = _run(
        [
            sys.executable,
            shared.driver,
            2,
            "cli",
            "train",
            "--preset",
            "quick",
            "--head",
            "fc",
            "--strategy",
            "mirrored",
            "--batch-size",
            7,
            "--steps",
            2,
            "--data",
            DATA,
            "--out",
            shared.root / "unsplittable",
        ],
        cwd=shared.root,
        HJR_DATA_DIR=str(shared.data_dir),
    )
    message = (
        "hjr: error: --batch-size 7: not divisible by the 2 replicas of the "
        "mirrored strategy"
    )
    assert (
        proc.returncode == 2 and message in proc.stderr
    ), f"exit {proc.returncode}; stderr:\n{_tail(proc.stderr)}"
    assert "Traceback" not in proc.stderr, _tail(proc.stderr)
    assert not (shared.root / "unsplittable").exists()


def test_multi_worker_after_tensorflow_started_is_a_clear_error(shared):
    # The driver lists devices first, which starts TensorFlow's runtime.
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    proc = _run(
        [sys.executable, shared.driver, 1, "cli", "train", "--preset", "quick"]
        + ["--head", "fc", "--strategy", "multi-worker", "--data", DATA]
        + ["--out", shared.root / "too-late"],
        cwd=shared.root,
        HJR_DATA_DIR=str(shared.data_dir),
        TF_CONFIG=json.dumps(tf_config),
    )
    message = "hjr: error: --strategy multi-worker: TensorFlow already ran"
    assert (
        proc.returncode == 2 and message in proc.stderr
    ), f"exit {proc.returncode}; stderr:\n{_tail(proc.stderr)}"


def test_use_jit_auto_is_off_on_cpu_and_flags_are_obeyed():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert use_jit("auto", strategy) is False
    assert use_jit("on", strategy) is True
    assert use_jit("off", strategy) is False


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(UserError, match="strategy 'mirror': expected one of") as info:
        make_strategy("mirror")
    for name in STRATEGIES:
        assert name in str(info.value)


def test_one_device_strategy():
    strategy = make_strategy("one-device")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1


def _with_resolver(cluster, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_only_the_chief_writes_the_run_folder():
    assert is_chief(tf.distribute.OneDeviceStrategy("/cpu:0"))
    workers = {"worker": ["localhost:1", "localhost:2"]}
    assert is_chief(_with_resolver(workers, "worker", 0))
    assert not is_chief(_with_resolver(workers, "worker", 1))
    with_chief = {"chief": ["localhost:3"], **workers}
    assert is_chief(_with_resolver(with_chief, "chief", 0))
    assert not is_chief(_with_resolver(with_chief, "worker", 0))
