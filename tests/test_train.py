"""Models and training with the tiny backbone on small synthetic data."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SYNTHETIC

from hjr import checkpoints
from hjr.cli import main
from hjr.config import augmentation, complete, configure
from hjr.core.heads import HEADS
from hjr.core.model import HandTrainer, build_model
from hjr.runs import load_network, save_config
from hjr.training.callbacks import refresh_batch_norm
from hjr.training.train import bn_refresh_batches, run, train

SMALL = {"data": SMALL_SYNTHETIC, "steps": 4, "eval_every": 2, "batch_size": 8}


def tiny_conf(head, **overrides):
    return configure("quick", {"head": head, **SMALL, **overrides})


def fixed_batch(batch=8, seed=0):
    from data_pipeline.crop import crop_hand
    from data_pipeline.synthetic import render_hand

    crops = [crop_hand(*render_hand(seed, i)) for i in range(batch)]
    return np.stack([c[0] for c in crops]), np.stack([c[1] for c in crops])


@pytest.mark.parametrize("head", HEADS)
def test_output_shapes(head):
    conf = complete({"head": head, "backbone": "tiny", "weights": "none"})
    net = build_model(conf)
    images, _ = fixed_batch(2)
    out = net(images.astype(np.float32))
    assert out["keypoints"].shape == (2, 21, 2)
    if head != "fc":
        side = 128 // conf["map_stride"]
        assert out["maps"].shape == (2, side, side, 21)
    if head == "offsets":
        assert out["offsets"].shape == (2, side, side, 21, 2)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.slow
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(head):
    keras.utils.set_random_seed(0)
    conf = {"head": head, "backbone": "tiny", "weights": "none"}
    trainer = HandTrainer(build_model(conf), conf)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    images, keypoints = fixed_batch()
    losses = [
        trainer.train_on_batch(
            {"images": images, "keypoints": keypoints}, return_dict=True
        )["loss"]
        for _ in range(12)
    ]
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.slow
def test_every_head_trains_in_mixed_bfloat16_with_float32_outputs(head):
    conf = {"head": head, "backbone": "tiny", "weights": "none"}
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trainer = HandTrainer(build_model(conf), conf)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
        images, keypoints = fixed_batch(2)
        batch = {"images": images, "keypoints": keypoints}
        loss = trainer.train_on_batch(batch, return_dict=True)["loss"]
        outputs = trainer.net(images.astype(np.float32))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(loss)
    dtypes = {
        name: keras.backend.standardize_dtype(v.dtype) for name, v in outputs.items()
    }
    assert set(dtypes.values()) == {"float32"}, dtypes


@pytest.mark.parametrize("head", HEADS)
def test_config_round_trip_rebuilds_the_same_model(head, tmp_path):
    conf = configure("quick", {"head": head})
    keras.utils.set_random_seed(3)
    net = build_model(conf)
    save_config(conf, tmp_path)
    checkpoints.save(tmp_path / "checkpoints" / "best", 0, net)
    images, _ = fixed_batch(2)
    rebuilt = load_network(tmp_path)
    np.testing.assert_allclose(
        rebuilt(images.astype(np.float32))["keypoints"],
        net(images.astype(np.float32))["keypoints"],
        atol=1e-5,
    )


@pytest.mark.slow
def test_run_folder_same_seed_same_losses_and_resume(tmp_path, data_dir):
    # A constant learning rate: with a decay or a warm-up that scales with the
    # steps, a longer run has another schedule.
    constant = {"lr_schedule": "constant", "warmup_steps": 0}
    full = train(
        tiny_conf("fc", steps=6, **constant), tmp_path / "full", data_dir=data_dir
    )
    again = run(
        tmp_path / "again",
        "quick",
        {"head": "fc", **SMALL, "steps": 6, **constant},
        False,
        data_dir,
    )
    history = pd.read_csv(full / "history.csv")
    assert history["step"].tolist() == [2, 4, 6]
    pd.testing.assert_frame_equal(history, pd.read_csv(again / "history.csv"))
    for name in ("config.json", "best.json", "curves.png"):
        assert (full / name).exists(), name
    assert list((full / "logs").rglob("events.out.tfevents*"))

    part = tiny_conf("fc", steps=4, **constant)
    part = train(part, tmp_path / "part", data_dir=data_dir)
    resume = ["train", "--resume", str(part), "--steps", "6"]
    assert main([*resume, "--data-dir", str(data_dir)]) == 0
    resumed = pd.read_csv(part / "history.csv")
    assert resumed["step"].tolist() == [2, 4, 6]
    np.testing.assert_allclose(resumed["loss"], history["loss"], rtol=1e-4)
    assert json.loads((part / "config.json").read_text())["steps"] == 6


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.slow
def test_whole_step_compiles_under_xla(head, tmp_path, data_dir):
    conf = tiny_conf(head, steps=2, jit="on", max_angle=20.0)
    folder = train(conf, tmp_path / head, data_dir=data_dir)
    history = pd.read_csv(folder / "history.csv")
    assert history["step"].tolist() == [2]
    assert np.isfinite(history["loss"]).all()


@pytest.mark.slow
def test_steps_are_exact_with_a_last_validation_at_the_end(tmp_path, data_dir):
    """--steps 5 with validations every 2 trains 5 steps, not 6: validations and
    checkpoints at 2, 4 and 5; resumed to 7, at 7."""
    run_dir = train(tiny_conf("fc", steps=5), tmp_path / "run", data_dir=data_dir)
    assert pd.read_csv(run_dir / "history.csv")["step"].tolist() == [2, 4, 5]
    assert (
        checkpoints.latest(run_dir / "checkpoints" / "latest").name == "step-00000005"
    )
    resume = ["train", "--resume", str(run_dir), "--steps", "7"]
    assert main([*resume, "--data-dir", str(data_dir)]) == 0
    assert pd.read_csv(run_dir / "history.csv")["step"].tolist() == [2, 4, 5, 7]
    assert (
        checkpoints.latest(run_dir / "checkpoints" / "latest").name == "step-00000007"
    )


def test_dry_run_prints_the_model(capsys):
    assert main(["train", "--head", "scoremap", "--preset", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "hjr_scoremap" in out and "map_conv" in out and "block2_out" in out


def test_refresh_batch_norm_averages_the_batch_statistics():
    norm = keras.layers.BatchNormalization(momentum=0.9)
    model = keras.Sequential([keras.Input((3,)), norm])
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, k + 1, (6, 3)).astype("float32") for k in range(3)]
    refresh_batch_norm(model, batches)
    mean = np.mean([b.mean(0) for b in batches], 0)
    variance = np.mean([b.var(0) for b in batches], 0)
    got = [
        keras.ops.convert_to_numpy(v) for v in (norm.moving_mean, norm.moving_variance)
    ]
    np.testing.assert_allclose(got[0], mean, rtol=1e-5)
    np.testing.assert_allclose(got[1], variance, rtol=1e-4)
    assert norm.momentum == 0.9  # restored


@pytest.mark.parametrize("images", [0, 20])
@pytest.mark.slow
def test_bn_refresh_validates_and_saves_the_re_estimated_statistics(
    images, tmp_path, data_dir
):
    """With --bn-refresh the checkpoint holds BatchNorm statistics re-estimated
    from the run's refresh batches (so doing it again changes nothing); without,
    the moving averages of 2 steps, far from them."""
    run_dir = tmp_path / "run"
    argv = ["train", "--preset", "quick", "--head", "fc", "--data", SMALL_SYNTHETIC]
    argv += ["--data-dir", data_dir, "--steps", "2", "--eval-every", "2"]
    argv += ["--batch-size", "8", "--bn-refresh", str(images), "--out", run_dir]
    assert main([str(a) for a in argv]) == 0
    conf = json.loads((run_dir / "config.json").read_text())
    assert conf["bn_refresh"] == images
    net = load_network(run_dir, "latest")
    norms = [v for v in net.non_trainable_variables if "moving" in v.path]
    assert len(norms) > 10  # the BatchNorm layers' moving means and variances
    saved = [keras.ops.convert_to_numpy(v) for v in norms]
    trainer = HandTrainer(net, conf, augmentation(conf))
    for count, sizes in ((600, [200, 200, 200]), (515, [172, 172, 171])):
        batches = bn_refresh_batches(dict(conf, bn_refresh=count), data_dir)
        assert [len(b["images"]) for b in batches] == sizes  # <= 256, even
    batches = bn_refresh_batches(dict(conf, bn_refresh=20), data_dir)
    assert [len(b["images"]) for b in batches] == [20]
    refresh_batch_norm(trainer, batches)
    change = max(
        np.abs(keras.ops.convert_to_numpy(v) - s).max() for v, s in zip(norms, saved)
    )
    assert (change < 1e-4) == bool(images), change


@pytest.mark.slow
def test_a_stop_whose_interrupt_python_dropped_still_ends_the_run(tmp_path, data_dir):
    """SIGTERM's KeyboardInterrupt raised inside a garbage-collector callback (JAX has
    one) is dropped by Python; the stop it asked for (STOP_ASKED) ends the run at its
    next step, as an interrupted run, its last checkpoint loadable."""
    import threading
    import time

    from data_pipeline import progress
    from hjr import runs

    run_dir = tmp_path / "run"

    def ask_after_the_first_checkpoint():
        deadline = time.monotonic() + 300
        while runs.checkpoint(run_dir) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        progress.STOP_ASKED.set()  # what the handler sets, its exception lost

    threading.Thread(target=ask_after_the_first_checkpoint, daemon=True).start()
    argv = ["train", "--preset", "quick", "--head", "fc", "--backbone", "tiny"]
    argv += ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    argv += ["--steps", "2000", "--eval-every", "2", "--batch-size", "8"]
    assert main([*argv, "--out", str(run_dir)]) == 130
    assert not progress.STOP_ASKED.is_set()  # the next command starts afresh
    steps = pd.read_csv(run_dir / "history.csv")["step"].tolist()
    assert steps and steps[-1] < 100, steps
    net = load_network(run_dir)
    assert net.count_params() > 0
