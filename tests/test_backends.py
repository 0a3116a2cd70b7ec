"""The compute core on every backend: the codec, metrics and each head's target and
loss give the same numbers on TensorFlow and JAX (JAX without TensorFlow); the
training step is timed without TensorFlow; a run trained on JAX predicts the same
on TensorFlow; data parallel over two JAX devices trains like one. Keras fixes its
backend per process: one subprocess each."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SYNTHETIC, run_python

from hjr.core.heads import HEADS

pytestmark = pytest.mark.slow  # trains, exports or starts fresh interpreters

CODE = """
import json, sys
import numpy as np
import keras
from keras import ops
from hjr.core import codec, metrics
from hjr.config import configure
from hjr.core.heads import HEADS


rng = np.random.default_rng(0)
keypoints = rng.uniform(40, 88, (2, 21, 2)).astype("float32")
guess = keypoints + rng.normal(0, 3, keypoints.shape).astype("float32")
out = {"backend": keras.backend.backend()}
for name, maps in [
    ("gaussian", codec.gaussian_maps(keypoints, 128, 100.0)),
    ("disks", codec.disk_maps(keypoints, 128, 16.0)),
]:
    out[name] = ops.convert_to_numpy(codec.expectation(maps)).tolist()
for name, fn in metrics.METRICS.items():
    out[name] = ops.convert_to_numpy(fn(keypoints, guess)).tolist()
offsets = codec.offset_maps(keypoints / 4, 32)
out["offsets"] = ops.convert_to_numpy(offsets[:, ::5, ::5]).tolist()
out["vote"] = ops.convert_to_numpy(
    codec.vote(codec.disk_maps(keypoints / 4, 32, 3.0), offsets * 4, 4.0)
).tolist()
for name, head in HEADS.items():
    conf = configure("quick", {"head": name})
    labels = {"keypoints": keypoints}
    outputs = {"keypoints": guess}
    if head.target is not None:
        labels.update(head.target(keypoints, 32, conf))
        outputs.update(head.target(guess, 32, conf))
        outputs["maps"] = ops.clip(outputs["maps"], 0.01, 0.99)
    loss = head.loss(labels, outputs, conf)
    out["loss_" + name] = float(ops.convert_to_numpy(loss))
out["tensorflow_imported"] = any(m.split(".")[0] == "tensorflow" for m in sys.modules)
print(json.dumps(out))
"""


def _results(backend):
    proc = run_python(CODE, KERAS_BACKEND=backend)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tensorflow_results():
    return _results("tensorflow")


def test_the_core_gives_the_same_numbers_on_jax_without_tensorflow(
    tensorflow_results,
):
    jax = _results("jax")
    assert jax["backend"] == "jax" and tensorflow_results["backend"] == "tensorflow"
    assert jax["tensorflow_imported"] is False
    keypoints = np.random.default_rng(0).uniform(40, 88, (2, 21, 2))
    for key, value in tensorflow_results.items():
        if key in ("backend", "tensorflow_imported"):
            continue
        np.testing.assert_allclose(jax[key], value, rtol=1e-4, atol=1e-3, err_msg=key)
    np.testing.assert_allclose(jax["gaussian"], keypoints, atol=0.01)
    np.testing.assert_allclose(jax["vote"], keypoints, atol=1e-3)
    assert {f"loss_{name}" for name in HEADS} <= set(jax)
    assert all(jax[f"loss_{name}"] > 0 for name in HEADS)


def _hjr(argv, backend, blocked=(), env=None):
    """hjr.cli.main(argv) in a fresh process on a Keras backend; modules in
    `blocked` cannot be imported there (as if not installed)."""
    code = (
        "import sys\n"
        "class Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {list(blocked)!r}:\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, Blocked())\n"
        "from hjr.cli import main\n"
        f"sys.exit(main({[str(a) for a in argv]!r}))\n"
    )
    return run_python(code, KERAS_BACKEND=backend, **(env or {}))


def test_train_step_bench_runs_without_tensorflow(tmp_path):
    out = tmp_path / "step.json"
    blocked = ("tensorflow", "tensorflow_datasets", "cv2", "pandas")
    argv = ["bench", "--train-step", "--backbone", "tiny", "--batch-size", "4"]
    argv += ["--timed-steps", "2", "--repeats", "2", "--json", out]
    proc = _hjr(argv, "jax", blocked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == "jax" and result["devices"]
    assert set(result["train_step"]) == set(HEADS)
    for head, entry in result["train_step"].items():
        assert entry["ms_per_step"] > 0 and entry["images_per_s"] > 0, head
        assert len(entry["ms_per_step_runs"]) == 2, head
        assert min(entry["ms_per_step_runs"]) <= entry["ms_per_step"], head
        assert np.isfinite(entry["final_loss"]) and entry["jit"] is True, head


def test_without_tensorflow_prepare_train_predict_evaluate_then_tensorflow_agrees(
    tmp_path, data_dir
):
    """Where TensorFlow and TensorFlow Datasets cannot be imported, on JAX: the
    whole flow of a user; then TensorFlow predicts the same from that run."""
    run = tmp_path / "run"
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", data_dir]
    without = ("tensorflow", "tensorflow_datasets")
    proc = _hjr(["prepare", *common], "jax", without)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train 40, validation 8, test 8" in proc.stdout
    argv = ["train", "--preset", "quick", "--head", "scoremap", "--steps", "4"]
    argv += ["--eval-every", "2", "--batch-size", "8", "--out", run, *common]
    proc = _hjr(argv, "jax", without)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Keras jax backend" in proc.stdout
    assert json.loads((run / "environment.json").read_text())["backend"] == "jax"
    assert pd.read_csv(run / "history.csv")["step"].tolist() == [2, 4]
    metrics = tmp_path / "metrics.json"
    argv = ["evaluate", "--model", run, *common, "--json", metrics]
    proc = _hjr(argv, "jax", without)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.isfinite(json.loads(metrics.read_text())["kaggle_mse"])
    csvs = {}
    for backend, blocked in (("jax", without), ("tensorflow", ())):
        csvs[backend] = tmp_path / f"{backend}.csv"
        argv = ["predict", "--model", run, *common, "--out", csvs[backend]]
        proc = _hjr(argv, backend, blocked)
        assert proc.returncode == 0, (backend, proc.stderr[-3000:])
    jax, tf = (pd.read_csv(csvs[b]) for b in ("jax", "tensorflow"))
    assert jax.shape == tf.shape == (8, 43)
    np.testing.assert_allclose(jax.to_numpy(), tf.to_numpy(), atol=0.05)


def test_data_parallel_on_two_jax_devices_trains_like_one(tmp_path, data_dir):
    """keras.distribution over two virtual CPU devices, augmentation on (mirroring
    included) and BatchNorm re-estimated at each validation: the same losses as one
    device (the draws travel with their samples)."""
    common = ["train", "--preset", "quick", "--head", "fc", "--steps", "4"]
    common += ["--eval-every", "2", "--batch-size", "8", "--max-angle", "20"]
    common += ["--bn-refresh", "24", "--flip"]
    common += ["--optimizer", "adam", "--lr", "3e-3", "--warmup-steps", "0"]
    common += ["--data", SMALL_SYNTHETIC, "--data-dir", data_dir]
    histories = {}
    for strategy in ("one-device", "mirrored"):
        run = tmp_path / strategy
        argv = [*common, "--strategy", strategy, "--out", run]
        env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        proc = _hjr(argv, "jax", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        replicas = 1 if strategy == "one-device" else 2
        assert f"on {replicas} replica(s)" in proc.stdout, proc.stdout[-2000:]
        histories[strategy] = pd.read_csv(run / "history.csv")
        assert json.loads((run / "config.json").read_text())["flip"] is True
    one, two = histories["one-device"], histories["mirrored"]
    assert one["step"].tolist() == two["step"].tolist() == [2, 4]
    for column in one.columns:
        np.testing.assert_allclose(two[column], one[column], rtol=1e-3, err_msg=column)
