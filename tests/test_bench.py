"""`hjr bench --quick` runs on a fresh install and reports every figure; the FLOP
count sees what the heads cost."""

import json

import pytest

from hjr.apps.bench import forward_gflop
from hjr.cli import main
from hjr.core.model import build_model


def test_quick_bench_reports_every_figure(tmp_path, capsys):
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
    fc, maps = result["train"]["fc"], result["train"]["classification"]
    for entry in (fc, maps):
        assert entry["images_per_s"] > 0 and entry["paper_schedule_minutes"] > 0
        assert entry["xla_auto_float32"]["xla"] is False  # XLA stays off on the CPU
    assert maps["gflop_per_image"] > fc["gflop_per_image"] > 0.01
    assert maps["plain_layout_gflop_per_image"] > 10 * maps["gflop_per_image"]
    assert maps["step_ratio_to_fc"] > 0 and fc["step_ratio_to_fc"] == 1.0
    predict = result["predict"]
    assert predict["images_per_s"] > predict["tta_images_per_s"] > 0
    assert predict["savedmodel_latency_ms"] > 0
    assert result["memory"]["peak_host_rss_mib"] > 100
    assert "no GPU" in result["device"]["summary"]
    assert set(result["targets"]) >= {"pipeline_vs_naive", "classification_step_vs_fc"}
    printed = capsys.readouterr().out
    assert "pipeline:" in printed and "target pipeline_vs_naive" in printed


def test_flop_count_of_the_plain_and_fast_map_heads():
    tiny = {"backbone": "tiny", "weights": "none"}
    fc = forward_gflop(build_model(dict(tiny, head="fc")))
    plain = forward_gflop(build_model(dict(tiny, head="scoremap", head_layout="plain")))
    fast = forward_gflop(build_model(dict(tiny, head="scoremap")))
    # The plain head's 5x5 convolution of 128 channels at 128x128 to 21 maps:
    assert plain - fc == pytest.approx(2 * 128 * 128 * 25 * 128 * 21 / 1e9, rel=0.02)
    # The fast head: channel mix at 8x8, then two interpolation products.
    taps = 8 * 8 * 128 * 25 * 21
    columns = 8 * 128 * 5 * 21 * (5 * 8)
    rows = 128 * 128 * 21 * (5 * 8)
    assert fast - fc == pytest.approx(2 * (taps + columns + rows) / 1e9, rel=0.04)
    assert plain > 20 * (fast - fc)


def test_bench_flag_errors(capsys):
    assert main(["bench", "--heads", "fc,nope"]) == 2
    err = capsys.readouterr().err
    assert "--heads" in err and "fc,nope" in err and "fc, classification" in err
    assert main(["bench", "--backbone", "resnet9"]) == 2
    err = capsys.readouterr().err
    assert "--backbone" in err and "resnet9" in err and "resnet152v2" in err
    assert main(["bench", "--json", "/no/such/folder/b.json"]) == 2
    assert "its folder does not exist" in capsys.readouterr().err


def test_bench_export_times_every_format(tmp_path, capsys):
    """`hjr bench --export RUN`: per format the file size and the median and p90
    latency of one image and of a batch of 32, printed as JSON; every format gives
    the Keras network's keypoints."""
    from conftest import train_small_run

    run = train_small_run(tmp_path / "run", tmp_path / "prepared", "fc", steps=1)
    path = tmp_path / "export.json"
    capsys.readouterr()
    assert main(["bench", "--export", str(run), "--quick", "--json", str(path)]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)
    assert result == json.loads(path.read_text())
    assert "hjr bench: timing onnx" in printed.err
    formats = result["formats"]
    assert list(formats) == ["keras", "savedmodel", "onnx", "tflite", "tflite_float16"]
    for name, entry in formats.items():
        for key in ("one_image_ms", "batch_32_ms"):
            assert 0 < entry[key]["median"] <= entry[key]["p90"], (name, key)
            assert entry[key]["calls"] >= 3
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
