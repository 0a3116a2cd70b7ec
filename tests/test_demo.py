"""`hjr demo` end to end (few steps), and the Kaggle kernel script on generated
competition files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC
from datagen import random_frames

from data_pipeline.kaggle_csv import COLUMNS, read_keypoints_csv
from data_pipeline.kaggle_h5 import write_kaggle_files
from hjr.cli import main

pytestmark = pytest.mark.slow  # trains, exports or starts fresh interpreters


ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_everything_and_reuses_its_run(tmp_path, data_dir, capsys):
    out = tmp_path / "demo"
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir), "--out", str(out)]
    assert main(["demo", "--steps", "4", *common]) == 0
    printed = capsys.readouterr().out
    assert "always predicting the mean keypoints" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("kaggle_mse", "mean_predictor_kaggle_mse", "epe", "pck@0.2"):
        assert np.isfinite(metrics[key]), key
    assert 0 < metrics["share_hidden"] < 1 and metrics["epe_hidden"] > 0
    assert metrics["count"] == 8
    assert (out / "submission.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    ids, _ = read_keypoints_csv(out / "submission.csv")
    assert ids.tolist() == list(range(8))
    assert len(list((out / "predictions").glob("*_prediction.png"))) == 8
    for picture in (
        "curves.png",
        "metrics.pck.png",
        "metrics.joints.png",
        "metrics.worst.png",
    ):
        assert (out / picture).stat().st_size > 1000
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert json.loads((out / "saved_model" / "hjr.json").read_text())["tta"] is True

    # Again in the same folder: the finished run is reused, not trained anew.
    assert main(["demo", "--steps", "4", *common]) == 0
    assert "already trained 4 of 4 steps" in capsys.readouterr().out
    # Other settings would mix two runs in one folder: refused, nothing touched.
    before = (out / "submission.csv").stat().st_mtime_ns
    assert main(["demo", "--steps", "4", "--head", "scoremap", *common]) == 2
    err = capsys.readouterr().err
    assert "--head scoremap: the run in" in err and "has head 'offsets'" in err
    assert (out / "submission.csv").stat().st_mtime_ns == before


def _stopped_demo(monkeypatch, **kwargs):
    """The configuration `hjr.apps.demo.demo(**kwargs)` would train (stopped before)."""
    from hjr.apps import demo

    def stop(conf, *args, **kwargs):
        raise RuntimeError(conf)

    monkeypatch.setattr(demo, "train", stop)
    with pytest.raises(RuntimeError) as stopped:
        demo.demo(**kwargs)
    return stopped.value.args[0]


SCHEDULE_KEYS = ("steps", "eval_every", "warmup_steps", "lr")
OPTIMIZER_KEYS = ("optimizer", "beta_2", "weight_decay")


@pytest.mark.parametrize(
    "head, schedule, optimizer",
    [
        ("fc", (14400, 2400, 4320, 6e-3), ("nadam", 0.95, 0.02)),
        ("offsets", (5200, 1300, 1560, 1.2e-2), ("nadam", 0.95, 0.02)),
    ],
)
def test_demo_trains_the_quick_preset(tmp_path, monkeypatch, head, schedule, optimizer):
    """The demo trains `hjr train --preset quick`: for fc 14,400 steps on `small`,
    for a map head 5,200 on `tiny_unet`, both with a one-cycle learning rate (30%
    warm-up), Nadam, beta_2 0.95 and weight decay."""
    from hjr.config import configure

    conf = _stopped_demo(monkeypatch, out=tmp_path / "demo", head=head)
    assert conf["backbone"] == ("small" if head == "fc" else "tiny_unet")
    assert tuple(conf[k] for k in SCHEDULE_KEYS) == schedule
    assert tuple(conf[k] for k in OPTIMIZER_KEYS) == optimizer
    quick = configure("quick", {"head": head, "data": "synthetic", "crop": "biased"})
    assert conf == quick


def test_demo_steps_keep_the_warm_up_share_and_a_resumed_run_keeps_its_own(
    tmp_path, monkeypatch
):
    from hjr.config import configure
    from hjr.runs import save_config

    conf = _stopped_demo(monkeypatch, out=tmp_path / "a", steps=10400)
    assert [conf[k] for k in ("steps", "warmup_steps", "lr")] == [10400, 3120, 1.2e-2]
    assert tuple(conf[k] for k in OPTIMIZER_KEYS) == ("nadam", 0.95, 0.02)
    # A demo folder trained with other settings is finished as it began, its
    # length included.
    run = tmp_path / "b" / "run"
    run.mkdir(parents=True)
    old = configure(
        "quick",
        {"head": "offsets", "steps": 3200, "eval_every": 800, "optimizer": "adam"},
    )
    save_config(old, run)
    conf = _stopped_demo(monkeypatch, out=tmp_path / "b")
    assert tuple(conf[k] for k in SCHEDULE_KEYS) == (3200, 800, 960, 1.2e-2)
    assert tuple(conf[k] for k in OPTIMIZER_KEYS) == ("adam", 0.95, 0.02)


def test_kaggle_kernel_script_on_generated_files(tmp_path):
    images, keypoints = random_frames(24, 96, 96, seed=3)
    tests, _ = random_frames(5, 128, 128, seed=4)
    inputs = tmp_path / "input"
    write_kaggle_files(inputs / "competition" / "train_part", images, keypoints)
    write_kaggle_files(inputs / "other" / "test_part", images[:1], keypoints[:1], tests)
    (inputs / "other" / "test_part" / "training.h5").unlink()  # only testing.h5 here
    output = tmp_path / "working"
    command = [
        sys.executable,
        str(ROOT / "run_scripts" / "kaggle_kernel.py"),
        "--input", str(inputs),
        "--output", str(output),
        "--preset", "quick",
        "--steps", "2",
        "--batch-size", "8",
        "--validation", "8",
        "--data-dir", str(tmp_path / "prepared"),
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    ids, predictions = read_keypoints_csv(output / "submission.csv")
    assert ids.tolist() == [0, 1, 2, 3, 4] and predictions.shape == (5, 21, 2)
    assert (output / "run" / "checkpoints" / "best").is_dir()

    missing = subprocess.run(
        [*command[:2], "--input", str(tmp_path / "empty"), "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "no training.h5 or testing.h5" in missing.stderr


def test_kernel_metadata_names_the_script():
    meta = json.loads((ROOT / "run_scripts" / "kernel-metadata.json").read_text())
    assert (ROOT / "run_scripts" / meta["code_file"]).is_file()
    assert meta["language"] == "python" and meta["kernel_type"] == "script"
    assert meta["enable_gpu"] is True
