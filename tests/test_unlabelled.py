"""Unlabelled joints (NaN keypoints): losses, gradients, metrics, augmentation,
scores, the mean predictor and drawings leave them out, and give what they gave
before on fully labelled data."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_python
from keras import ops

from data_pipeline.files import read_png
from data_pipeline.keypoints import labelled_joints
from hjr.config import augmentation, complete, configure
from hjr.core.augment import NUM_DRAWS, augment_batch
from hjr.core.heads import HEADS
from hjr.core.metrics import METRICS, kaggle_mse, mean_joint_distance
from hjr.core.model import HandTrainer, build_model, head_loss
from hjr.draw import draw_keypoints
from hjr.inference.evaluate import scores, worst_rows, write_report
from hjr.runs import mean_keypoints, mean_predictor_mse
from hjr.training.callbacks import RunRecorder

# Every head, and the map heads with the integral term too.
CONFIGS = [(head, 0.0) for head in HEADS] + [
    (head, 0.5) for head in HEADS if head != "fc"
]
CONFIG_IDS = [f"{head}-{weight:g}" for head, weight in CONFIGS]


def head_conf(head, integral):
    extra = {} if head == "fc" else {"integral": integral}
    return configure("quick", {"head": head, **extra})


def hand_keypoints(batch=3, seed=0):
    return np.random.default_rng(seed).uniform(20, 108, (batch, 21, 2)).astype("f4")


def numpy_outputs(outputs):
    return {k: ops.convert_to_numpy(v) for k, v in outputs.items()}


def guessed_outputs(head, conf, keypoints, seed=1):
    """Outputs of a head near keypoints [B, J, 2] (any number of joints J, NaN
    allowed): keypoints off by a few pixels, maps and offsets made from them and
    blurred, probabilities kept inside (0, 1)."""
    rng = np.random.default_rng(seed)
    guess = np.nan_to_num(keypoints, nan=64.0) + rng.normal(0, 3, keypoints.shape)
    outputs = {"keypoints": guess.astype("f4")}
    if HEADS[head].target is not None:
        side = 128 // conf["map_stride"]
        outputs.update(numpy_outputs(HEADS[head].target(guess, side, conf)))
        noise = rng.uniform(0, 0.3, outputs["maps"].shape)
        outputs["maps"] = np.clip(outputs["maps"] + noise, 0.01, 0.99).astype("f4")
        if "offsets" in outputs:
            shift = rng.normal(0, 2, outputs["offsets"].shape)
            outputs["offsets"] = (outputs["offsets"] + shift).astype("f4")
    return outputs


def loss_of(conf, keypoints, outputs):
    return float(ops.convert_to_numpy(head_loss(conf, keypoints, outputs)))


def todays_loss(head, conf, keypoints, outputs):
    """The loss as defined before unlabelled joints, in NumPy: plain means over
    every joint, image and pixel."""
    guess = outputs["keypoints"].astype(np.float64)
    squared = ((guess - keypoints) ** 2).sum(-1)
    if head == "fc":
        return squared.mean()
    side = outputs["maps"].shape[1]
    targets = numpy_outputs(HEADS[head].target(keypoints, side, conf))
    maps, truth = outputs["maps"].astype(np.float64), targets["maps"]
    if head == "scoremap":
        loss = np.mean((maps - truth) ** 2)
    else:
        loss = -np.mean(truth * np.log(maps) + (1 - truth) * np.log(1 - maps))
    if head == "offsets":
        error = np.abs(outputs["offsets"] - targets["offsets"]).sum(-1)
        loss += (error * truth).sum() / max(truth.sum(), 1.0) / conf["radius"]
    return loss + conf["integral"] * np.sqrt(squared + 1e-12).mean()


def spoiled(outputs, where):
    """outputs with the prediction of the joints at where = (image, joint) (each
    an index or a slice) far off: keypoints moved 30 px, the joints' maps 0.5
    everywhere, their offsets 7 px off."""
    image, joint = where
    changed = {k: v.copy() for k, v in outputs.items()}
    changed["keypoints"][image, joint] += 30.0
    if "maps" in changed:
        changed["maps"][image, :, :, joint] = 0.5
    if "offsets" in changed:
        changed["offsets"][image, :, :, joint] += 7.0
    return changed


def without_joint(arrays, joint):
    """Keypoints or outputs with joint `joint` (and its channels) removed."""
    if isinstance(arrays, dict):
        axes = {"keypoints": 1, "maps": 3, "offsets": 3}
        return {k: np.delete(v, joint, axes[k]) for k, v in arrays.items()}
    return np.delete(arrays, joint, 1)


def test_labelled_joints_needs_both_coordinates_finite():
    keypoints = np.ones((2, 21, 2), np.float32)
    keypoints[0, 3] = np.nan
    keypoints[1, 5, 0] = np.inf
    mask = labelled_joints(keypoints)
    assert mask.shape == (2, 21) and mask.dtype == bool
    assert mask.sum() == 40 and not mask[0, 3] and not mask[1, 5]
    assert labelled_joints(keypoints[0]).shape == (21,)


@pytest.mark.parametrize("head, integral", CONFIGS, ids=CONFIG_IDS)
def test_loss_on_fully_labelled_joints_is_unchanged(head, integral):
    conf = head_conf(head, integral)
    keypoints = hand_keypoints()
    outputs = guessed_outputs(head, conf, keypoints)
    expected = todays_loss(head, conf, keypoints, outputs)
    assert loss_of(conf, keypoints, outputs) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("head, integral", CONFIGS, ids=CONFIG_IDS)
def test_loss_leaves_unlabelled_joints_out(head, integral):
    conf = head_conf(head, integral)
    keypoints = hand_keypoints()
    outputs = guessed_outputs(head, conf, keypoints)
    # Joint 7 unlabelled everywhere, and predicted badly: the loss of the other
    # 20 joints.
    bad = spoiled(outputs, np.s_[:, 7])
    missing = keypoints.copy()
    missing[:, 7] = np.nan
    loss = loss_of(conf, missing, bad)
    others = loss_of(conf, without_joint(keypoints, 7), without_joint(outputs, 7))
    assert np.isfinite(loss)
    assert loss == pytest.approx(others, rel=1e-5)
    assert loss_of(conf, keypoints, bad) > 1.01 * loss
    # Joint 2 of image 0 and all of image 2 unlabelled: whatever the prediction
    # there, the loss is the same.
    missing = keypoints.copy()
    missing[0, 2] = missing[2] = np.nan
    changed = spoiled(spoiled(outputs, np.s_[0, 2]), np.s_[2, :])
    loss = loss_of(conf, missing, outputs)
    assert loss_of(conf, missing, changed) == pytest.approx(loss, rel=1e-6)
    assert loss_of(conf, keypoints, changed) > 1.01 * loss


def test_a_batch_without_any_label_has_zero_loss():
    conf = head_conf("offsets", 0.5)
    keypoints = np.full((2, 21, 2), np.nan, np.float32)
    outputs = guessed_outputs("offsets", conf, keypoints)
    assert loss_of(conf, keypoints, outputs) == 0.0


@pytest.mark.parametrize("head, integral", CONFIGS, ids=CONFIG_IDS)
def test_gradients_are_finite_and_zero_at_unlabelled_joints(head, integral):
    conf = head_conf(head, integral)
    keypoints = hand_keypoints()
    keypoints[0, 3] = keypoints[2] = np.nan
    outputs = {
        k: tf.Variable(v) for k, v in guessed_outputs(head, conf, keypoints).items()
    }
    with tf.GradientTape() as tape:
        loss = head_loss(conf, keypoints, outputs)
    grads = dict(zip(outputs, tape.gradient(loss, list(outputs.values()))))
    assert np.isfinite(float(loss))
    if head != "fc" and not integral:
        assert grads.pop("keypoints") is None  # the maps' loss alone
    for name, grad in grads.items():
        grad = grad.numpy()
        assert np.isfinite(grad).all(), name
        if name == "keypoints":
            assert not grad[0, 3].any() and not grad[2].any()
            assert grad[0, 4].any() and grad[1].any()
        else:  # maps [B, s, s, 21], offsets [B, s, s, 21, 2]
            assert not grad[0, :, :, 3].any() and not grad[2].any(), name
            assert grad[0, :, :, 4].any() and grad[1].any(), name


JAX_GRADIENTS = """
import json
import jax
import numpy as np
from hjr.config import configure
from hjr.core.heads import HEADS
from hjr.core.model import head_loss

rng = np.random.default_rng(0)
keypoints = rng.uniform(20, 108, (3, 21, 2)).astype("float32")
keypoints[0, 3] = keypoints[2] = np.nan
out = {}
for name, head in HEADS.items():
    conf = configure("quick", {"head": name})
    if name != "fc":
        conf["integral"] = 0.5
    guess = np.nan_to_num(keypoints, nan=64.0) + rng.normal(0, 3, keypoints.shape)
    outputs = {"keypoints": guess.astype("float32")}
    if head.target is not None:
        side = 128 // conf["map_stride"]
        outputs.update(head.target(outputs["keypoints"], side, conf))
        outputs["maps"] = np.clip(outputs["maps"], 0.01, 0.99)
    loss, grads = jax.value_and_grad(lambda o: head_loss(conf, keypoints, o))(outputs)
    out[name] = {
        "loss": float(loss),
        "finite": all(bool(np.isfinite(g).all()) for g in grads.values()),
        "at_unlabelled": float(np.abs(grads["keypoints"][0, 3]).max()),
    }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_gradients_are_finite_on_jax():
    proc = run_python(JAX_GRADIENTS, KERAS_BACKEND="jax")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == set(HEADS)
    for name, result in results.items():
        assert np.isfinite(result["loss"]) and result["finite"], name
        assert result["at_unlabelled"] == 0.0, name


def test_metrics_average_each_image_over_its_labelled_joints():
    truth = np.zeros((3, 21, 2), np.float32)
    pred = truth.copy()
    pred[0, :, 0] = 3.0  # image 0: every joint 3 px off
    pred[0, 5] = [40.0, 0.0]  # ... but joint 5, unlabelled
    truth[0, 5] = np.nan
    pred[1, 0] = [3.0, 4.0]  # image 1: 5 px off at one of 2 labelled joints
    truth[1, 2:] = np.nan
    truth[2] = np.nan  # image 2: no label: 0
    pred[2] = 50.0
    np.testing.assert_allclose(kaggle_mse(truth, pred), [9.0, 12.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        mean_joint_distance(truth, pred), [3.0, 2.5, 0.0], rtol=1e-5
    )
    complete = np.zeros((3, 21, 2), np.float32)
    guess = complete + np.random.default_rng(0).normal(0, 2, complete.shape)
    for name, fn in METRICS.items():
        values = ops.convert_to_numpy(fn(complete, guess))
        assert np.isfinite(values).all(), name


def test_augmentation_keeps_unlabelled_joints_and_rotates_the_others():
    rng = np.random.default_rng(3)
    keypoints = rng.uniform(40, 88, (8, 21, 2)).astype("f4")  # rotate freely by 30
    missing = keypoints.copy()
    missing[::2, 4] = np.nan
    missing[5] = np.nan
    images = np.zeros((8, 128, 128, 3), np.uint8)
    draws = rng.uniform(0, 1, (8, NUM_DRAWS)).astype("f4")
    for conf in (
        {"rot90": False, "flip": False, "max_angle": 30.0},
        {"rot90": True, "flip": True, "max_angle": 30.0},
        {"rot90": True, "flip": True, "max_angle": 0.0},
    ):
        _, out = augment_batch(images, keypoints, draws, conf)
        _, out_missing = augment_batch(images, missing, draws, conf)
        out, out_missing = ops.convert_to_numpy(out), ops.convert_to_numpy(out_missing)
        labelled = labelled_joints(missing)
        np.testing.assert_array_equal(labelled_joints(out_missing), labelled)
        assert np.isnan(out_missing[~labelled]).all()
        np.testing.assert_allclose(out_missing[labelled], out[labelled], atol=1e-4)
    # the 30-degree rotation moved the labelled joints: no angle was dropped
    _, alone = augment_batch(images, missing, draws, {"max_angle": 30.0, "rot90": 0})
    moved = np.abs(ops.convert_to_numpy(alone) - missing).max(-1)
    assert (moved[labelled_joints(missing)] > 1e-3).mean() > 0.9


def test_scores_leave_unlabelled_joints_out():
    labels = np.zeros((2, 21, 2))
    labels[:, 1] = [10.0, 0.0]  # hand box size 10 px
    predictions = labels.copy()
    predictions[0, 0] = [3.0, 4.0]  # 5 px off
    predictions[1, 2] = [1.0, 0.0]  # 1 px off
    complete = scores(predictions, labels)
    assert "labelled_joints" not in complete
    labels[0, 3] = labels[:, 20] = np.nan  # 3 unlabelled joints, 39 labelled
    predictions[0, 3] = predictions[1, 20] = [100.0, 100.0]  # far off: left out
    labels[1, 1] = np.nan  # and image 1's box: the other joints', 1 px wide
    predictions[1, 1] = [50.0, 50.0]
    result = scores(predictions, labels)
    assert result["labelled_joints"] == 38
    assert result["kaggle_mse"] == pytest.approx(26 / 38)
    assert result["mse_per_coordinate"] == pytest.approx(13 / 38)
    assert result["epe"] == pytest.approx(6 / 38)
    # image 0: 5 px off > 2 px; image 1: box 1 px, 1 px off > 0.2 px
    assert result["pck@0.2"] == pytest.approx(36 / 38)
    joints = result["per_joint_epe"]
    assert joints["wrist"] == pytest.approx(2.5)
    assert joints["thumb_tip"] == 0.0  # labelled in image 0 alone
    assert joints["thumb_2"] == 0.0  # labelled in image 1 alone
    assert joints["little_base"] is None  # never labelled
    visible = np.ones((2, 21), bool)
    visible[0, 0] = visible[0, 3] = False  # one hidden labelled, one unlabelled
    hidden = scores(predictions, labels, visible)
    assert hidden["share_hidden"] == pytest.approx(1 / 38)
    assert hidden["epe_hidden"] == pytest.approx(5.0)
    assert hidden["epe_visible"] == pytest.approx(1 / 37)
    assert hidden["per_joint_epe_hidden"]["thumb_2"] is None
    assert hidden["per_joint_epe_visible"]["little_base"] is None
    assert list(worst_rows(predictions, labels)) == [0, 1]


def test_scores_of_samples_without_any_label():
    labels = np.full((2, 21, 2), np.nan)
    labels[0] = 50.0
    predictions = np.full((2, 21, 2), 50.0)
    predictions[0, 0] = [53.0, 54.0]
    result = scores(predictions, labels)
    assert result["labelled_joints"] == 21
    assert result["kaggle_mse"] == pytest.approx(25 / 21)
    assert list(worst_rows(predictions, labels)) == [0, 1]  # the unlabelled last
    nothing = scores(predictions, np.full((2, 21, 2), np.nan))
    assert nothing["kaggle_mse"] is None and nothing["labelled_joints"] == 0
    assert set(nothing["per_joint_epe"].values()) == {None}


def test_report_with_unlabelled_joints(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.uniform(20, 108, (6, 21, 2))
    labels[0, :5] = labels[3, 9] = np.nan
    predictions = np.nan_to_num(labels, nan=64.0) + rng.normal(0, 4, labels.shape)
    visible = rng.uniform(size=(6, 21)) < 0.8
    crops = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    result = scores(predictions, labels, visible)
    paths = write_report(
        tmp_path / "m.json",
        result,
        predictions,
        labels,
        np.arange(6),
        visible,
        lambda ids: crops[ids],
    )
    assert [p.name for p in paths] == ["m.json", "m.pck.png", "m.joints.png"] + [
        "m.worst.png"
    ]
    assert json.loads(paths[0].read_text())["labelled_joints"] == 6 * 21 - 6
    assert read_png(paths[-1]).ndim == 3


def test_mean_keypoints_and_mean_predictor_over_labelled_joints():
    keypoints = np.zeros((3, 21, 2), np.float32)
    keypoints[:, :, 0] = [[1.0], [2.0], [6.0]]
    keypoints[2, 0] = np.nan  # wrist: mean of 1 and 2
    keypoints[:, 20] = np.nan  # never labelled: the crop centre
    mean = mean_keypoints(keypoints)
    assert mean.dtype == np.float32 and mean.shape == (21, 2)
    np.testing.assert_array_equal(mean[0], [1.5, 0.0])
    np.testing.assert_array_equal(mean[1], [3.0, 0.0])
    np.testing.assert_array_equal(mean[20], [64.0, 64.0])
    labels = np.zeros((2, 21, 2))
    labels[0, 1:] = np.nan  # one labelled joint
    labels[1, 0] = [3.0, 4.0]
    labels[1, 2:] = np.nan
    # (0 + 25 + 0) / 3 labelled joints
    assert mean_predictor_mse(labels, np.zeros((21, 2))) == pytest.approx(25 / 3)
    complete = np.random.default_rng(0).uniform(0, 128, (50, 21, 2)).astype("f4")
    np.testing.assert_array_equal(
        mean_keypoints(complete),
        complete.astype(np.float64).mean(0).astype(np.float32),
    )


def hand_on_black():
    """A black 64-px crop, a hand drawn inside [20, 44] with its thumb tip
    (joint 1, on bone 2-1 alone) far away at (58, 58)."""
    keypoints = np.random.default_rng(5).uniform(20, 44, (21, 2)).astype("f4")
    keypoints[2] = [40.0, 40.0]
    keypoints[1] = [58.0, 58.0]
    return np.zeros((64, 64, 3), np.uint8), keypoints


def test_draw_keypoints_skips_unlabelled_joints_and_their_bones():
    image, keypoints = hand_on_black()
    scale = 3
    tip = slice(54 * scale, 62 * scale)
    bone = slice(48 * scale, 50 * scale)  # the middle of bone 2-1
    full = draw_keypoints(image, keypoints, scale, truth=keypoints)
    assert full[tip, tip].any() and full[bone, bone].any()
    missing = keypoints.copy()
    missing[1] = np.nan
    for truth in (keypoints, missing):  # a ring at the tip only with its label
        drawn = draw_keypoints(image, missing, scale, truth=truth)
        assert not drawn[bone, bone].any()
        assert drawn[tip, tip].any() == (truth is keypoints)
        assert drawn.any()
    hidden = np.zeros(21, bool)
    hidden[1] = True
    drawn = draw_keypoints(image, None, scale, truth=missing, hidden=hidden)
    assert not drawn[tip, tip].any()
    nothing = np.full((21, 2), np.nan, np.float32)
    plain = draw_keypoints(image, nothing, scale, truth=nothing)
    assert plain.shape == (64 * scale, 64 * scale, 3) and not plain.any()


def tiny_batch(batch=4):
    from data_pipeline.crop import crop_hand
    from data_pipeline.synthetic import render_hand

    crops = [crop_hand(*render_hand(0, i)) for i in range(batch)]
    images = np.stack([c[0] for c in crops])
    keypoints = np.stack([c[1] for c in crops]).astype("f4")
    keypoints[0, 3] = keypoints[1, :6] = keypoints[2] = np.nan
    return images, keypoints


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.slow
def test_training_on_a_batch_with_unlabelled_joints(head):
    keras.utils.set_random_seed(0)
    conf = complete({"head": head, "backbone": "tiny", "weights": "none"})
    conf["max_angle"] = 30.0
    trainer = HandTrainer(build_model(conf), conf, augmentation(conf))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    images, keypoints = tiny_batch()
    draws = np.random.default_rng(0).uniform(0, 1, (4, NUM_DRAWS)).astype("f4")
    batch = {"images": images, "keypoints": keypoints, "draws": draws}
    for _ in range(2):
        logs = trainer.train_on_batch(batch, return_dict=True)
        assert all(np.isfinite(v) for v in logs.values()), logs
    weights = [ops.convert_to_numpy(w) for w in trainer.net.weights]
    assert all(np.isfinite(w).all() for w in weights)
    logs = trainer.test_on_batch(batch, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs


def test_preview_with_unlabelled_truth(tmp_path):
    conf = complete({"head": "fc", "backbone": "tiny", "weights": "none"})
    trainer = HandTrainer(build_model(conf), conf)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    trainer.optimizer.build(trainer.trainable_variables)
    images, keypoints = tiny_batch()
    recorder = RunRecorder(tmp_path, preview=(images.astype("f4"), keypoints))
    recorder.set_model(trainer)
    logs = {name: 1.0 for name in ("loss", "kaggle_mse", "mean_joint_distance")}
    recorder.on_epoch_end(0, {**logs, "val_kaggle_mse": 2.0})
    assert list((tmp_path / "logs" / "images").glob("events.out.tfevents*"))
