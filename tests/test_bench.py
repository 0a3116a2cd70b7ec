"""`hjr bench`: one timer (warm-up excluded, median, p90 and every pass) behind
every figure; `--quick` runs on a fresh install and reports every figure and no
targets; the FLOP count sees what the heads cost; `--train-step` runs without
TensorFlow (where JAX is installed), OpenCV or the input pipeline; `--loader`
times the training batches alone; `--export` times every format; the whole-run
script times every phase."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, run_python

from hjr.apps import bench_timing
from hjr.apps.bench import forward_gflop
from hjr.cli import main
from hjr.core.model import build_model

pytestmark = pytest.mark.slow  # trains, exports or starts fresh interpreters
ROOT = Path(__file__).resolve().parents[1]


def test_the_timer_leaves_out_the_warm_up_and_divides_by_the_units(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(bench_timing.time, "perf_counter", lambda: clock["now"])
    durations = iter([100.0, 50.0, 1.0, 2.0, 3.0, 4.0, 10.0])

    def run():
        clock["now"] += next(durations)

    timing = bench_timing.time_calls(run, repeats=5, warmup=2)
    assert timing.seconds == [1.0, 2.0, 3.0, 4.0, 10.0]
    assert timing.median == 3.0 and timing.p90 == pytest.approx(7.6)
    assert timing.ms() == {
        "median": 3000.0,
        "p90": 7600.0,
        "runs": [1000.0, 2000.0, 3000.0, 4000.0, 10000.0],
    }
    durations = iter([9.0, 4.0, 6.0])
    timing = bench_timing.time_calls(run, repeats=2, units=4)
    assert timing.seconds == [1.0, 1.5] and timing.per_second() == pytest.approx(0.8)
    durations, units = iter([9.0, 4.0, 6.0]), iter([2, 3])
    timing = bench_timing.time_calls(run, repeats=2, units=lambda: next(units))
    assert timing.seconds == [2.0, 2.0]
    with pytest.raises(ValueError, match="repeats"):
        bench_timing.time_calls(run, repeats=0)


def test_quick_bench_reports_every_figure_and_no_targets(tmp_path, capsys):
    path = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--backbone", "tiny", "--heads", "fc,classification"]
    assert main([*argv, "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    pipe = result["pipeline"]
    for key in (
        "images_per_s",
        "augmented_images_per_s",
        "augmented_xla_images_per_s",
        "naive_images_per_s",
    ):
        assert pipe[key] > 0, key
    assert pipe["speedup_over_naive"] == pytest.approx(  # rounded to 0.1
        pipe["images_per_s"] / pipe["naive_images_per_s"], abs=0.051
    )
    steps = result["settings"]["steps"]
    fc, maps = result["train"]["fc"], result["train"]["classification"]
    for entry in (fc, maps):
        assert entry["images_per_s"] > 0 and entry["paper_schedule_minutes"] > 0
        config = entry["xla_auto_float32"]
        assert config["xla"] is False  # XLA stays off on the CPU
        step = config["step_ms"]
        assert len(step["runs"]) == steps
        assert min(step["runs"]) <= step["median"] <= step["p90"] <= max(step["runs"])
        assert config["images_per_s"] == pytest.approx(
            32_000 / step["median"], rel=0.02
        )
    assert maps["gflop_per_image"] > fc["gflop_per_image"] > 0.01
    assert "plain_layout_gflop_per_image" not in maps
    assert maps["step_ratio_to_fc"] > 0 and fc["step_ratio_to_fc"] == 1.0
    predict = result["predict"]
    assert predict["images_per_s"] > predict["tta_images_per_s"] > 0
    for key in ("savedmodel_ms", "savedmodel_tta_ms"):
        latency = predict[key]
        assert 0 < latency["median"] <= latency["p90"], key
        assert len(latency["runs"]) == 4 * result["settings"]["calls"], key
    assert result["memory"]["peak_host_rss_mib"] > 100
    assert "no GPU" in result["device"]["summary"]
    assert "targets" not in result
    printed = capsys.readouterr().out
    assert "pipeline:" in printed and "train classification:" in printed
    assert "target" not in printed.lower() and " met" not in printed.lower()


def test_flop_count_of_the_map_heads():
    tiny = {"backbone": "tiny", "weights": "none"}
    fc = forward_gflop(build_model(dict(tiny, head="fc")))
    fast = forward_gflop(build_model(dict(tiny, head="scoremap")))
    # The map head: channel mix at 8x8, then two interpolation products.
    taps = 8 * 8 * 128 * 25 * 21
    columns = 8 * 128 * 5 * 21 * (5 * 8)
    rows = 128 * 128 * 21 * (5 * 8)
    assert fast - fc == pytest.approx(2 * (taps + columns + rows) / 1e9, rel=0.04)
    # Upsampling first, then the 5x5 convolution of 128 channels to 21 maps at
    # 128x128, would cost more than 20 times as much.
    assert 2 * 128 * 128 * 25 * 128 * 21 / 1e9 > 20 * (fast - fc)


def test_bench_flag_errors(capsys):
    assert main(["bench", "--heads", "fc,nope"]) == 2
    err = capsys.readouterr().err
    assert "--heads" in err and "fc,nope" in err and "fc, classification" in err
    assert main(["bench", "--backbone", "resnet9"]) == 2
    err = capsys.readouterr().err
    assert "--backbone" in err and "resnet9" in err and "resnet152v2" in err
    assert main(["bench", "--json", "/no/such/folder/b.json"]) == 2
    assert "folder /no/such/folder does not exist" in capsys.readouterr().err


BLOCKED_MAIN = """
import sys
blocked = set(sys.argv[1].split(","))
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name in blocked or name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Blocked())
from hjr.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_train_step_bench_without_tensorflow_opencv_or_the_pipeline(tmp_path):
    """`hjr bench --train-step --batch-size B --timed-steps N` in a fresh process
    where OpenCV, h5py, pandas and the input pipeline cannot be imported, nor
    TensorFlow where the JAX backend is installed."""
    backend = "jax" if importlib.util.find_spec("jax") else "tensorflow"
    blocked = ["cv2", "h5py", "pandas", "tensorflow_datasets"]
    blocked.append("data_pipeline.pipeline")
    if backend == "jax":
        blocked.append("tensorflow")
    out = tmp_path / "step.json"
    argv = ["bench", "--train-step", "--backbone", "tiny", "--heads", "fc,scoremap"]
    argv += ["--batch-size", "2", "--timed-steps", "3", "--repeats", "2"]
    argv += ["--json", out]
    proc = run_python(BLOCKED_MAIN, ",".join(blocked), *argv, KERAS_BACKEND=backend)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == backend and result["devices"]
    settings = result["settings"]
    assert settings["batch_size"] == 2 and settings["timed_steps"] == 3
    assert settings["repeats"] == 2
    assert set(result["train_step"]) == {"fc", "scoremap"}
    for head, entry in result["train_step"].items():
        runs = entry["ms_per_step_runs"]
        assert len(runs) == 2, head
        assert min(runs) <= entry["ms_per_step"] <= entry["ms_per_step_p90"], head
        assert entry["ms_per_step_p90"] <= max(runs), head
        assert entry["images_per_s"] == pytest.approx(
            2000 / entry["ms_per_step"], rel=0.02
        ), head
        assert np.isfinite(entry["final_loss"]), head
    assert result["train_step"]["fc"]["ratio_to_fc"] == 1.0
    assert result["train_step"]["scoremap"]["ratio_to_fc"] > 0


def test_bench_export_times_every_format(tmp_path, capsys):
    """`hjr bench --export RUN`: per format the file size and the median, p90 and
    every timed call of one image and of a batch of 32, printed as JSON; every
    format gives the Keras network's keypoints."""
    from conftest import train_small_run

    run = train_small_run(tmp_path / "run", tmp_path / "prepared", "fc", steps=1)
    path = tmp_path / "export.json"
    capsys.readouterr()
    assert main(["bench", "--export", str(run), "--quick", "--json", str(path)]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)
    assert result == json.loads(path.read_text())
    assert "hjr bench: timing onnx" in printed.err
    calls = result["settings"]["calls"]
    formats = result["formats"]
    assert list(formats) == ["keras", "savedmodel", "onnx", "tflite", "tflite_float16"]
    for name, entry in formats.items():
        for key in ("one_image_ms", "batch_32_ms"):
            latency = entry[key]
            assert len(latency["runs"]) == calls, (name, key)
            assert 0 < min(latency["runs"]) <= latency["median"], (name, key)
            assert latency["median"] <= latency["p90"] <= max(latency["runs"])
        assert entry["batch_32_ms"]["median"] > entry["one_image_ms"]["median"]
        tolerance = 0.5 if name == "tflite_float16" else 0.01  # float16 weights
        assert entry["max_difference_px"] <= tolerance, name
    assert formats["keras"]["size_mib"] is None
    sizes = {name: formats[name]["size_mib"] for name in list(formats)[1:]}
    assert 0.4 < sizes["tflite_float16"] / sizes["tflite"] < 0.6
    assert sizes["onnx"] == pytest.approx(sizes["tflite"], rel=0.2)
    assert result["head"] == "fc" and result["threads"] >= 1

    assert main(["bench", "--export", str(tmp_path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "--export", str(run), "--train-step"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_loader_bench_times_the_training_batches(tmp_path, data_dir, capsys):
    out = tmp_path / "loader.json"
    argv = ["bench", "--loader", "--data", SMALL_SYNTHETIC, "--data-dir", data_dir]
    argv += ["--batch-size", "8", "--timed-steps", "3", "--repeats", "2"]
    assert main([*map(str, argv), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out  # after the preparation's lines
    assert result == json.loads(printed[printed.index("{") :])
    assert result["loader"]["images_per_s"] > 0
    assert len(result["loader"]["ms_per_batch"]["runs"]) == 2
    assert result["settings"]["train_samples"] == 40
    assert result["settings"]["batch_size"] == 8


def test_whole_run_script_times_every_phase(tmp_path):
    """run_scripts/gpu_run.py on the CPU: each phase's time, the loader and the
    step alone, the run's time over its steps' time, the validation error."""
    script = ROOT / "run_scripts" / "gpu_run.py"
    argv = [str(script), str(tmp_path / "out"), "--preset", "quick", "--head", "fc"]
    argv += ["--backbone", "tiny", "--steps", "4", "--batch-size", "8"]
    argv += ["--data", SMALL_SYNTHETIC]
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    report = json.loads((tmp_path / "out" / "gpu_run.json").read_text())
    phases = ("prepare", "loader", "step", "train", "predict", "evaluate")
    assert list(report["phases_s"]) == list(phases)
    assert all(report["phases_s"][p] > 0 for p in phases)
    assert report["train"]["steps"] == 4 and report["train"]["whole_over_steps"] > 0
    assert report["loader"]["images_per_s"] > 0 and report["step"]["ms_per_step"] > 0
    assert np.isfinite(report["validation"]["evaluate_tta"]["kaggle_mse"])
    assert (tmp_path / "out" / "submission.csv").is_file()
