"""The backend-agnostic parts of the compute core (codec, metrics, every head's
target and loss) give the same numbers on TensorFlow and on JAX, and on JAX they
run without TensorFlow. Keras fixes its backend per process: one subprocess each."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hjr.heads import HEADS

CODE = """
import json, sys
import numpy as np
import keras
from keras import ops
from hjr import codec, metrics
from hjr.config import configure
from hjr.heads import HEADS

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
for name, head in HEADS.items():
    conf = configure("quick", {"head": name})
    labels = keypoints
    outputs = {"keypoints": guess}
    if head.target is not None:
        labels = head.target(keypoints, 128, conf)
        predicted = head.target(guess, 128, conf)
        outputs["maps"] = ops.clip(predicted, 0.01, 0.99)
    out["loss_" + name] = float(ops.convert_to_numpy(head.loss(labels, outputs)))
out["tensorflow_imported"] = any(m.split(".")[0] == "tensorflow" for m in sys.modules)
print(json.dumps(out))
"""


def _results(backend):
    proc = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": backend},
    )
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
    assert {f"loss_{name}" for name in HEADS} <= set(jax)
    assert all(jax[f"loss_{name}"] > 0 for name in HEADS)
