import pytest

"""run_scripts/sweep_gpu.py: the synthetic source as `hjr prepare` makes it, without
TensorFlow's pipeline, and hjr's training step fed from it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import SMALL_SYNTHETIC

from data_pipeline.pipeline import make_dataset
from data_pipeline.sources import parse_source

SCRIPT = Path(__file__).resolve().parents[1] / "run_scripts" / "sweep_gpu.py"


def sweep(*args):
    command = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_rendered_crops_are_the_prepared_sources_and_a_run_trains_on_them(
    tmp_path, data_dir
):
    data = tmp_path / "hands.npz"
    done = sweep("render", data, "--train", 40, "--validation", 8)
    assert done.returncode == 0, done.stderr
    assert "the mean predictor scores validation kaggle_mse" in done.stdout
    arrays = np.load(data)
    source = parse_source(SMALL_SYNTHETIC)  # 40 training, 8 validation crops
    for split in ("train", "validation"):
        batches = list(make_dataset(source, split, 64, data_dir=data_dir))
        assert len(batches) == 1
        prepared = {key: batches[0][key].numpy() for key in batches[0]}
        order = np.argsort(prepared["id"])
        np.testing.assert_array_equal(arrays[f"{split}_ids"], prepared["id"][order])
        for key in ("image", "keypoints", "visible"):
            np.testing.assert_array_equal(
                arrays[f"{split}_{key}" + ("s" if key == "image" else "")],
                prepared[key][order],
            )

    result = tmp_path / "fc.json"
    settings = ["backbone=tiny", "steps=4", "eval_every=2"]
    done = sweep("train", data, result, "--head", "fc", "--set", *settings)
    assert done.returncode == 0, done.stderr
    scores = json.loads(result.read_text())
    assert scores["conf"]["flip"] is True  # the quick preset's fc head: mirrored
    assert [entry["step"] for entry in scores["validation"]] == [2, 4]
    assert np.isfinite(scores["validation"][-1]["train_loss"])
    for key in ("kaggle_mse", "mean_joint_distance", "kaggle_mse_visible"):
        assert 0 < scores["tta"][key] < 128**2

    done = sweep("train", data, result, "--set", "steps=0")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "sweep_gpu: error: steps 0: expected a whole number of at least 1"
    ]
