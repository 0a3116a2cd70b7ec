"""`hjr export`: a SavedModel that plain TensorFlow and saved_model_cli run, giving
the keypoints `hjr predict` gives; bad inputs are clear errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, train_small_run

from data_pipeline.kaggle_csv import read_keypoints_csv
from data_pipeline.pipeline import make_dataset
from data_pipeline.sources import parse_source
from hjr.cli import main
from hjr.predict import predict

QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step classification run (a map head) and the test images it predicts."""
    folder = tmp_path_factory.mktemp("export")
    data_dir = folder / "prepared"
    run = train_small_run(folder / "run", data_dir)
    batch = next(
        iter(make_dataset(parse_source(SMALL_SYNTHETIC), "test", 8, data_dir=data_dir))
    )
    images = batch["image"].numpy()
    np.save(folder / "images.npy", images)
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    predictions = {}
    for tta in ("--tta", "--no-tta"):
        csv = folder / f"predict{tta}.csv"
        assert (
            main(["predict", "--model", str(run), *common, tta, "--out", str(csv)]) == 0
        )
        ids, keypoints = read_keypoints_csv(csv)
        predictions[tta] = keypoints[np.searchsorted(ids, batch["id"].numpy())]
    return {
        "folder": folder,
        "run": run,
        "images": images,
        "common": common,
        "predictions": predictions,
    }


def test_export_runs_in_plain_tensorflow_without_hjr(trained):
    folder = trained["folder"]
    out = folder / "exported_tta"
    assert (
        main(["export", "--model", str(trained["run"]), "--out", str(out), "--tta"])
        == 0
    )
    info = json.loads((out / "hjr.json").read_text())
    assert info["tta"] is True and info["head"] == "classification"
    script = textwrap.dedent(f"""
        import sys
        sys.modules["hjr"] = None  # importing hjr or data_pipeline now fails
        sys.modules["data_pipeline"] = None
        import numpy as np
        import tensorflow as tf

        model = tf.saved_model.load({str(out)!r})
        images = np.load({str(folder / "images.npy")!r})
        serve = model.signatures["serving_default"]
        served = serve(images=tf.constant(images))["keypoints"].numpy()
        np.save({str(folder / "served.npy")!r}, served)
        plain = model.signatures["plain"](images=tf.constant(images))
        assert plain["maps"].shape == (len(images), 32, 32, 21), plain["maps"].shape
        big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # 256 x 256
        any_size = model.signatures["any_size"](images=tf.constant(big))["keypoints"]
        np.save({str(folder / "any_size.npy")!r}, any_size.numpy())
        for bad in (images.astype(np.float32), images[:, :64, :64]):
            try:
                serve(images=tf.constant(bad))
            except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
                print("rejected:", str(error).splitlines()[-1][:300])
            else:
                raise SystemExit(f"accepted images {{bad.dtype}} {{bad.shape}}")
        """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=QUIET,
        cwd=folder,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("rejected:") == 2
    served = np.load(folder / "served.npy")
    np.testing.assert_allclose(served, trained["predictions"]["--tta"], atol=2e-3)
    # Images enlarged 2x (pixel copies) resize back exactly: keypoints scale by 2.
    np.testing.assert_allclose(np.load(folder / "any_size.npy"), 2 * served, atol=2e-3)


def test_saved_model_cli_runs_the_export(trained):
    folder = trained["folder"]
    out = folder / "exported"
    assert main(["export", "--model", str(trained["run"]), "--out", str(out)]) == 0
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(out),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={folder / 'images.npy'}",
            "--outdir",
            str(folder / "cli"),
            "--overwrite",
        ],
        capture_output=True,
        text=True,
        env=QUIET,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keypoints = np.load(folder / "cli" / "keypoints.npy")
    np.testing.assert_allclose(keypoints, trained["predictions"]["--no-tta"], atol=2e-3)


def test_predict_and_evaluate_from_the_export(trained, capsys):
    folder, common = trained["folder"], trained["common"]
    out = folder / "exported_for_predict"
    assert main(["export", "--model", str(trained["run"]), "--out", str(out)]) == 0
    csv = folder / "from_export.csv"
    assert main(["predict", "--model", str(out), *common, "--out", str(csv)]) == 0
    _, from_export = read_keypoints_csv(csv)
    _, from_run = read_keypoints_csv(folder / "predict--tta.csv")
    np.testing.assert_allclose(from_export, from_run, atol=2e-3)
    vis = folder / "vis_export"
    assert (
        main(
            [
                "predict",
                "--model",
                str(out),
                *common,
                "--out",
                str(csv),
                "--visualize",
                str(vis),
            ]
        )
        == 0
    )
    assert len(list(vis.glob("*_prediction.png"))) == 8
    few = folder / "vis_few"  # the pictures are of the first rows by Id
    predict(
        out,
        parse_source(SMALL_SYNTHETIC),
        visualize=few,
        num_visualize=3,
        data_dir=common[-1],
    )
    assert sorted(p.name for p in few.iterdir()) == [
        f"{i:05d}_prediction.png" for i in range(3)
    ]
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), *common, "--split", "test"]) == 0
    assert "kaggle_mse" in capsys.readouterr().out


def test_export_bad_inputs(trained, tmp_path, capsys):
    run = str(trained["run"])
    assert (
        main(
            ["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "e")]
        )
        == 2
    )
    assert "no such run folder" in capsys.readouterr().err

    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    (empty_run / "config.json").write_text((trained["run"] / "config.json").read_text())
    assert (
        main(["export", "--model", str(empty_run), "--out", str(tmp_path / "e")]) == 2
    )
    assert "no best checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["export", "--model", run, "--out", str(precious)]) == 2
    assert "not an hjr export" in capsys.readouterr().err
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["export", "--model", run, "--out", str(blocker / "sub" / "e")]) == 2
    assert str(blocker) in capsys.readouterr().err

    again = tmp_path / "again"
    for _ in range(2):  # an earlier export is replaced
        assert main(["export", "--model", run, "--out", str(again)]) == 0
    assert (again / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    assert (
        main(
            [
                "predict",
                "--model",
                str(precious),
                *trained["common"],
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == 2
    )
    assert "not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_offsets_head_trains_predicts_with_tta_and_exports(tmp_path):
    """The refinement head end to end: a short run, `hjr predict` with TTA, and a
    SavedModel that serves the same keypoints (and its coarse maps and offsets)."""
    import tensorflow as tf

    data_dir = tmp_path / "prepared"
    run = train_small_run(tmp_path / "run", data_dir, head="offsets", steps=4)
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    csv = tmp_path / "offsets.csv"
    argv = ["predict", "--model", str(run), *common, "--tta", "--out", str(csv)]
    assert main(argv) == 0
    ids, from_run = read_keypoints_csv(csv)
    assert from_run.shape == (8, 21, 2) and np.isfinite(from_run).all()
    assert (from_run >= 0).all() and (from_run <= 128).all()
    out = tmp_path / "exported"
    assert main(["export", "--model", str(run), "--out", str(out), "--tta"]) == 0
    batch = next(
        iter(make_dataset(parse_source(SMALL_SYNTHETIC), "test", 8, data_dir=data_dir))
    )
    model = tf.saved_model.load(str(out))
    served = model.signatures["serving_default"](images=batch["image"])["keypoints"]
    rows = np.searchsorted(ids, batch["id"].numpy())
    np.testing.assert_allclose(served.numpy(), from_run[rows], atol=2e-3)
    plain = model.signatures["plain"](images=batch["image"])
    assert plain["maps"].shape == (8, 32, 32, 21)
    assert plain["offsets"].shape == (8, 32, 32, 21, 2)
