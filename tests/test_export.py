"""`hjr export`: a SavedModel that plain TensorFlow and saved_model_cli run, and ONNX
and LiteRT files that onnxruntime and the LiteRT interpreter run without TensorFlow
or hjr, all giving the keypoints `hjr predict` gives; quantized LiteRT files report
their size and accuracy cost; bad inputs are clear errors."""

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
from hjr.inference.predict import predict

pytestmark = pytest.mark.slow  # trains, exports or starts fresh interpreters


QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _python(script, folder, *args):
    """Run a Python script in a fresh interpreter in `folder`; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        env=QUIET,
        cwd=folder,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


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
    result = _python(script, folder)
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
    assert "exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["export", "--model", run, "--out", str(blocker / "sub" / "e")]) == 2
    assert str(blocker) in capsys.readouterr().err

    assert main(["export", "--model", run, "--out", str(precious), "--overwrite"]) == 2
    assert "not an hjr export" in capsys.readouterr().err
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]

    again = tmp_path / "again"
    assert main(["export", "--model", run, "--out", str(again)]) == 0
    (again / "hjr.json").write_text("{}")
    assert main(["export", "--model", run, "--out", str(again)]) == 2
    err = capsys.readouterr().err
    assert f"--out {again}: exists; pass --overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert (again / "hjr.json").read_text() == "{}"
    assert main(["export", "--model", run, "--out", str(again), "--overwrite"]) == 0
    assert (again / "saved_model.pb").is_file()
    assert json.loads((again / "hjr.json").read_text())["head"] == "classification"
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


def _run_exported(folder, files, images):
    """Keypoints of each exported file in its own runtime (onnxruntime, the LiteRT
    interpreter), in a fresh interpreter where hjr, data_pipeline and TensorFlow
    cannot be imported: {file name: keypoints}."""
    script = textwrap.dedent(f"""
        import sys
        for name in ("hjr", "data_pipeline", "tensorflow", "keras"):
            sys.modules[name] = None  # importing them now fails
        import numpy as np
        import onnxruntime
        from ai_edge_litert.interpreter import Interpreter

        images = np.load({str(images)!r})
        for path in sys.argv[1:]:
            if path.endswith(".onnx"):
                session = onnxruntime.InferenceSession(path)
                (inp,) = session.get_inputs()
                assert inp.name == "images" and inp.type == "tensor(uint8)", inp
                assert inp.shape[1:] == [128, 128, 3], inp.shape
                outputs = {{o.name: o.shape[1:] for o in session.get_outputs()}}
                assert outputs == {{"keypoints": [21, 2], "scores": [21]}}, outputs
                keypoints, scores = session.run(
                    ["keypoints", "scores"], {{"images": images}}
                )
                assert ((scores > 0) & (scores <= 1)).all()
            else:
                runner = Interpreter(model_path=path).get_signature_runner()
                details = runner.get_input_details()["images"]
                assert details["dtype"] == np.uint8, details
                assert list(details["shape_signature"]) == [-1, 128, 128, 3]
                served = runner(images=images)
                keypoints, scores = served["keypoints"], served["scores"]
                assert ((scores > 0) & (scores <= 1)).all()
                one = runner(images=images[:1])["keypoints"]  # another batch size
                np.testing.assert_allclose(one, keypoints[:1], atol=1e-4)
            np.save(path + ".keypoints.npy", keypoints)
        """)
    _python(script, folder, *files)
    return {Path(f).name: np.load(f"{f}.keypoints.npy") for f in files}


def test_onnx_and_litert_files_match_hjr_predict(trained, capsys):
    """The demo's flow for a run: `hjr export --format onnx|tflite`, each file run
    in its own runtime, within 0.01 px of `hjr predict --no-tta` (and of --tta
    where exported with --tta)."""
    folder, run = trained["folder"], str(trained["run"])
    files = {
        "model.onnx": ["--format", "onnx"],
        "model.tflite": ["--format", "tflite"],
        "model_tta.onnx": ["--format", "onnx", "--tta"],
        "model_tta.tflite": ["--format", "tflite", "--tta"],
    }
    for name, flags in files.items():
        capsys.readouterr()
        out = folder / "files" / name
        assert main(["export", "--model", run, "--out", str(out), *flags]) == 0
        printed = capsys.readouterr()
        assert f"wrote {out} ({flags[1]}" in printed.out and printed.err == ""
        info = json.loads((folder / "files" / f"{name}.json").read_text())
        assert info["format"] == flags[1] and info["tta"] == ("--tta" in flags)
        assert info["size_bytes"] == out.stat().st_size > 10_000
        assert info["input"]["dtype"] == "uint8" and info["quantize"] is None
    served = _run_exported(
        folder, [folder / "files" / n for n in files], folder / "images.npy"
    )
    expected = trained["predictions"]
    for name, keypoints in served.items():
        truth = expected["--tta" if "_tta" in name else "--no-tta"]
        assert keypoints.shape == truth.shape == (8, 21, 2)
        np.testing.assert_allclose(keypoints, truth, atol=0.01, err_msg=name)
    assert np.abs(expected["--tta"] - expected["--no-tta"]).max() > 0.01


def test_predict_and_evaluate_take_the_onnx_and_litert_files(trained, capsys):
    """`hjr predict --model FILE` on an .onnx or .tflite export gives `hjr predict`'s
    keypoints: with the file's own TTA, or, where exported without it, the same
    TTA run around the file; a file with TTA refuses --no-tta, a broken file is
    one line."""
    folder, run, common = trained["folder"], str(trained["run"]), trained["common"]
    files = {"plain.onnx": [], "with_tta.tflite": ["--tta"]}
    for name, flags in files.items():
        out = folder / "for_predict" / name
        fmt = out.suffix[1:]
        assert (
            main(["export", "--model", run, "--out", str(out), "--format", fmt, *flags])
            == 0
        )
    ids = np.sort(read_keypoints_csv(folder / "predict--tta.csv")[0])
    for name in files:
        for tta in (["--tta"], [] if name == "with_tta.tflite" else ["--no-tta"]):
            csv = folder / f"{name}{''.join(tta)}.csv"
            model = str(folder / "for_predict" / name)
            argv = ["predict", "--model", model, *common, *tta, "--out", str(csv)]
            assert main(argv) == 0, argv
            got_ids, got = read_keypoints_csv(csv)
            key = "--no-tta" if "--no-tta" in tta else "--tta"  # TTA by default
            _, truth = read_keypoints_csv(folder / f"predict{key}.csv")
            np.testing.assert_array_equal(np.sort(got_ids), ids)
            np.testing.assert_allclose(got, truth, atol=0.01, err_msg=(name, tta))
    capsys.readouterr()
    model = str(folder / "for_predict" / "plain.onnx")
    assert main(["evaluate", "--model", model, *common, "--split", "test"]) == 0
    assert "kaggle_mse" in capsys.readouterr().out
    broken = folder / "for_predict" / "broken.onnx"
    broken.write_bytes(b"not a model")
    cases = [
        (
            ["--model", str(folder / "for_predict" / "with_tta.tflite"), "--no-tta"],
            "with_tta.tflite: exported with TTA, so it predicts with it only",
        ),
        (["--model", str(broken)], "broken.onnx: not a loadable onnx file"),
    ]
    for argv, expected in cases:
        assert main(["evaluate", *argv, *common, "--split", "test"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (argv, err)


@pytest.mark.parametrize("head", ["fc", "classification", "scoremap", "offsets"])
def test_every_head_converts_with_parity(head, tmp_path):
    """Each head's network (its custom layers included) converts to ONNX and LiteRT
    through the Python API; both give the Keras network's keypoints (what `hjr
    predict --no-tta` computes) for batches of any size."""
    import keras

    from hjr.config import complete
    from hjr.core.model import build_model
    from hjr.inference.export import export_network
    from hjr.inference.predictors import NetworkPredictor
    from hjr.inference.runtimes import open_exported

    keras.utils.set_random_seed(1)
    conf = complete(dict(head=head, backbone="tiny", weights="none"))
    net = build_model(conf)
    images = np.random.default_rng(0).integers(0, 256, (5, 128, 128, 3), np.uint8)
    expected = NetworkPredictor(net).keypoints(images, False)
    for fmt in ("onnx", "tflite"):
        out = export_network(net, tmp_path / f"{head}.{fmt}", conf, fmt=fmt)
        exported = open_exported(out)
        np.testing.assert_allclose(exported.keypoints(images), expected, atol=0.01)
        one = exported.keypoints(images[3:4])
        np.testing.assert_allclose(one, expected[3:4], atol=0.01)


def test_quantized_litert_reports_size_and_accuracy(trained, capsys):
    """--quantize float16 and int8 (calibrated on the training crops): smaller
    files that still run, with sizes and the mean joint error on the validation
    split before and after printed and written beside the file."""
    from hjr.inference.export import split_arrays
    from hjr.inference.runtimes import open_exported

    folder, run, common = trained["folder"], str(trained["run"]), trained["common"]
    source = parse_source(SMALL_SYNTHETIC)
    images, labels = split_arrays(source, "validation", 100, data_dir=common[-1])
    reports = {}
    for kind in ("float16", "int8"):
        out = folder / "quantized" / f"model_{kind}.tflite"
        argv = ["export", "--model", run, "--format", "tflite", "--quantize", kind]
        capsys.readouterr()
        assert main([*argv, *common, "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"hjr: {kind}: " in printed and "mean joint error on 8 " in printed
        report = json.loads((out.parent / f"{out.name}.json").read_text())
        report = reports[kind] = report["quantization"]
        assert report["quantized_bytes"] == out.stat().st_size
        assert report["validation_crops"] == 8
        predicted = open_exported(out).keypoints(images)
        error = np.linalg.norm(predicted - labels, axis=-1).mean()
        assert report["quantized_mean_joint_error_px"] == pytest.approx(error, abs=1e-3)
    assert reports["int8"]["calibration_crops"] == 40  # the whole training split
    float32 = reports["int8"]["float32_bytes"]
    assert reports["float16"]["float32_bytes"] == float32
    assert 0.4 * float32 < reports["float16"]["quantized_bytes"] < 0.6 * float32
    assert reports["int8"]["quantized_bytes"] < 0.35 * float32
    for report in reports.values():  # float32 before: the float LiteRT file's error
        assert report["float32_mean_joint_error_px"] == pytest.approx(
            reports["int8"]["float32_mean_joint_error_px"]
        )


def test_file_export_bad_inputs(trained, tmp_path, capsys):
    run = str(trained["run"])
    out = tmp_path / "model.onnx"

    def fails(*argv, expected):
        capsys.readouterr()
        assert main(["export", "--model", run, *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (argv, err)

    fails("--format", "pb", "--out", str(out), expected="--format")
    fails(
        "--format",
        "onnx",
        "--quantize",
        "int8",
        "--out",
        str(out),
        expected="--quantize int8: only for --format tflite",
    )
    fails(
        "--format",
        "tflite",
        "--out",
        str(out),
        expected=f"--out {out}: a onnx file's name; this is --format tflite",
    )
    out.write_bytes(b"not an onnx file")
    fails(
        "--format",
        "onnx",
        "--out",
        str(out),
        expected=f"--out {out}: exists; pass --overwrite to replace it",
    )
    assert out.read_bytes() == b"not an onnx file"
    fails(
        "--format",
        "onnx",
        "--out",
        str(tmp_path),
        "--overwrite",
        expected="is a folder; the onnx export is one file",
    )
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "--model",
                run,
                "--format",
                "onnx",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    assert out.read_bytes()[:2] != b"no" and out.stat().st_size > 10_000
    assert (tmp_path / "model.onnx.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "--model",
                str(out),
                "--format",
                "tflite",
                "--out",
                str(tmp_path / "m.tflite"),
            ]
        )
        == 2
    )
    assert "already an export; give a run folder" in capsys.readouterr().err


def test_command_line_export_is_quiet(trained, tmp_path):
    """`hjr export --format tflite` in a user's shell: progress and the result on
    stdout, nothing from the converters on stderr."""
    from conftest import run_python

    out = tmp_path / "quiet.tflite"
    code = "import sys; from hjr.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["export", "--model", trained["run"], "--format", "tflite", "--out", out]
    result = run_python(code, *argv, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "hjr export: converting to LiteRT (TFLite converter)",
        f"hjr: wrote {out} (tflite, {out.stat().st_size / 2**20:.2f} MiB, without "
        "TTA) and quiet.tflite.json",
    ]
