import pytest

"""Test-time augmentation is exact in the keypoint convention."""

import keras
import numpy as np
import tensorflow as tf

from hjr.core.augment import rot90_keypoints
from hjr.core.model import build_model
from hjr.inference.tta import predict_keypoints

SIZE = 128


class BrightestPixel(keras.Model):
    """A rotation-equivariant 'network': every joint at the brightest pixel's
    centre (x = column + 0.5, y = row + 0.5)."""

    def call(self, images, training=False):
        grey = tf.reduce_sum(images, axis=-1)
        flat = tf.argmax(tf.reshape(grey, [tf.shape(grey)[0], -1]), axis=-1)
        rows = tf.cast(flat // SIZE, tf.float32) + 0.5
        cols = tf.cast(flat % SIZE, tf.float32) + 0.5
        point = tf.stack([cols, rows], axis=-1)[:, None, :]
        return {"keypoints": tf.tile(point, [1, 21, 1])}


def bright_dot_images(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 100, (batch, SIZE, SIZE, 3)).astype(np.uint8)
    spots = rng.integers(0, SIZE, (batch, 2))
    for b, (x, y) in enumerate(spots):
        images[b, y, x] = 255
    return images, spots + 0.5


def test_tta_of_an_equivariant_model_changes_nothing():
    images, spots = bright_dot_images()
    net = BrightestPixel()
    plain = predict_keypoints(net, images, tta=False).numpy()
    np.testing.assert_allclose(plain[:, 0], spots)
    np.testing.assert_allclose(
        predict_keypoints(net, images, tta=True), plain, atol=1e-5
    )


def test_predicting_on_rotated_images_gives_rotated_predictions():
    net = build_model({"head": "classification", "backbone": "tiny", "weights": "none"})
    images, _ = bright_dot_images(batch=2, seed=1)
    base = predict_keypoints(net, images, tta=True).numpy()
    for k in range(1, 4):
        rotated = predict_keypoints(net, np.rot90(images, k, axes=(1, 2)), tta=True)
        expected = rot90_keypoints(base, tf.fill([2], k), float(SIZE))
        np.testing.assert_allclose(rotated, expected, atol=1e-3)


@pytest.mark.slow
def test_predict_and_evaluate_commands(tmp_path, data_dir, capsys):
    import json

    from conftest import SMALL_SYNTHETIC, train_small_run

    from data_pipeline.kaggle_csv import COLUMNS, read_keypoints_csv
    from hjr.cli import main

    run = train_small_run(tmp_path / "run", data_dir)
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    csv = tmp_path / "submission.csv"
    assert (
        main(
            [
                "predict",
                "--model",
                str(run),
                *common,
                "--out",
                str(csv),
                "--visualize",
                str(tmp_path / "vis"),
            ]
        )
        == 0
    )
    assert csv.read_text().splitlines()[0] == ",".join(COLUMNS)
    ids, keypoints = read_keypoints_csv(csv)
    assert ids.tolist() == list(range(8)) and keypoints.shape == (8, 21, 2)
    assert len(list((tmp_path / "vis").glob("*_prediction.png"))) == 8

    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(csv),
                *common,
                "--split",
                "test",
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    from_csv = json.loads((tmp_path / "m.json").read_text())
    assert (tmp_path / "m.pck.png").exists()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(run),
                *common,
                "--split",
                "test",
                "--json",
                str(tmp_path / "m2.json"),
            ]
        )
        == 0
    )
    from_model = json.loads((tmp_path / "m2.json").read_text())
    assert abs(from_csv["kaggle_mse"] - from_model["kaggle_mse"]) < 1e-2
    assert from_model["mean_predictor_kaggle_mse"] > 0

    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(csv.read_text().splitlines()[:4]))
    assert (
        main(["evaluate", "--predictions", str(bad), *common, "--split", "test"]) == 2
    )
    assert "Ids" in capsys.readouterr().err
    bad.write_text(csv.read_text().replace("Joint 3 y", "Joint 3 z"))
    assert (
        main(["evaluate", "--predictions", str(bad), *common, "--split", "test"]) == 2
    )
    assert "expected the 43 columns" in capsys.readouterr().err
    assert (
        main(["predict", "--model", str(tmp_path / "nope"), *common, "--out", str(csv)])
        == 2
    )
    assert "no such run folder" in capsys.readouterr().err
