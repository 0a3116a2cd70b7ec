"""`hjr reproduce` end to end at two steps per run: the table, the chart, the
stored results, skipping finished rows, finishing an interrupted run, and the
refusals."""

import json
import math

import pytest
from conftest import SMALL_SYNTHETIC

from data_pipeline.errors import UserError
from data_pipeline.files import read_png
from hjr.apps.reproduce import reproduce, table_rows
from hjr.cli import main
from hjr.config import PRESETS
from hjr.core.heads import HEADS
from hjr.training.train import run

pytestmark = pytest.mark.slow  # trains, exports or starts fresh interpreters


PAPER = ("189.99", "139.07", "62.38", "47.97", "69.99", "443.42")


def _pointers(out):
    """{checkpoint pointer: its modification time} of every run in out."""
    return {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoints/*/*.json")}


def test_reproduce_writes_the_table_skips_finished_rows_and_resumes(
    tmp_path, data_dir, capsys
):
    out = tmp_path / "reproduce"
    rows = table_rows()
    assert [r.label for r in rows[:6]] == [
        "fc centered no-aug no-tta",
        "fc biased no-aug no-tta",
        "fc biased aug no-tta",
        "fc biased aug tta",
        "classification biased aug tta",
        "scoremap biased aug tta",
    ]
    # A run interrupted after its first checkpoint (step 1 of 2).
    half = out / "runs" / "classification-biased-aug"
    overrides = dict(head="classification", data=SMALL_SYNTHETIC, steps=1)
    run(half, "quick", dict(overrides, eval_every=1), data_dir=data_dir)
    capsys.readouterr()

    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir), "--out", str(out)]
    assert main(["reproduce", "--preset", "quick", "--steps", "2", *common]) == 0
    printed = capsys.readouterr().out
    for n, row in enumerate(rows, 1):
        assert f"hjr reproduce: [{n}/{len(rows)}] {row.label}: kaggle_mse" in printed
    assert "steps 1..2" in printed  # the interrupted run continued
    # Rows 3 and 4 (TTA off and on) share one run: 2 + one per head.
    assert len(list(out.glob("runs/*/config.json"))) == 2 + len(HEADS)

    results = json.loads((out / "results.json").read_text())
    assert (results["data"], results["preset"], results["steps"]) == (
        SMALL_SYNTHETIC,
        "quick",
        2,
    )
    assert set(results["rows"]) == {r.name for r in rows}
    for result in results["rows"].values():
        for key in ("kaggle_mse", "epe", "pck@0.2", "mean_predictor_kaggle_mse"):
            assert math.isfinite(result[key]), key
        assert math.isfinite(result["epe_visible"]) and 0 < result["share_hidden"] < 1
        assert result["count"] == 8
    table = (out / "reproduce.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(rows)  # the header, then a line per row
    for line, paper in zip(lines[1:], PAPER):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[-1] == paper
        visible, hidden = cells[7].split(" / ")  # the visible and hidden joints' error
        numbers = [*cells[5:7], visible, cells[8]]
        assert all(math.isfinite(float(c)) for c in numbers)
    assert all(line.endswith("| – |") for line in lines[1 + len(PAPER) :])
    assert (
        f"Source `{SMALL_SYNTHETIC}`, preset `quick` (backbone small for fc, " in table
    )
    assert "tiny_unet for classification, scoremap and offsets; batch 16)" in table
    assert "Always predicting the mean training keypoints: kaggle_mse" in table
    assert table in printed
    picture = out / "reproduce.png"
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert read_png(picture).shape[2] == 3

    # Again: every row is done, nothing is trained; the table's settings are kept.
    before = _pointers(out)
    assert main(["reproduce", *common]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": done before, kaggle_mse") == len(rows)
    assert "hjr: training" not in printed
    assert _pointers(out) == before

    # A row lost after its run finished (e.g. killed while scoring) is scored
    # again, its run kept as it is; only the rows asked for run.
    del results["rows"]["scoremap-biased-aug-tta"]
    (out / "results.json").write_text(json.dumps(results))
    finished = reproduce(
        out, SMALL_SYNTHETIC, data_dir=data_dir, heads=["scoremap", "classification"]
    )
    printed = capsys.readouterr().out
    assert "already trained 2 of 2 steps" in printed
    assert "[2/2] scoremap biased aug tta: kaggle_mse" in printed
    assert [r["name"] for r in finished] == [r.name for r in rows]
    assert _pointers(out) == before

    # Another table in the same folder: refused in one line naming the flag.
    for flags, named in [
        (["--steps", "3"], "--steps 3: the table in"),
        (["--preset", "paper"], "--preset paper: the table in"),
    ]:
        assert main(["reproduce", *flags, *common]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"hjr: error: {named}") and err.count("\n") == 1
    with pytest.raises(UserError, match="data 'synthetic': the table in") as error:
        reproduce(out, "synthetic", data_dir=data_dir)
    assert error.value.key == "data"


def test_without_steps_each_head_trains_the_presets_own(
    tmp_path, data_dir, capsys, monkeypatch
):
    """A preset giving a head steps of its own: without --steps each row's run
    trains those, the table says so, and a later --steps is refused."""
    quick = PRESETS["quick"]

    def steps(fc, classification):  # the quick preset, with these steps per head
        heads = {head: dict(quick["heads"].get(head, {})) for head in HEADS}
        heads["fc"]["steps"], heads["classification"]["steps"] = fc, classification
        return {**quick, "heads": heads}

    monkeypatch.setitem(PRESETS, "quick", steps(2, 3))
    out = tmp_path / "table"
    reproduce(
        out, SMALL_SYNTHETIC, "quick", data_dir=data_dir, heads=["classification"]
    )
    assert json.loads((out / "results.json").read_text())["steps"] is None
    config = json.loads(
        (out / "runs/classification-biased-aug/config.json").read_text()
    )
    assert config["steps"] == 3
    reproduce(out, SMALL_SYNTHETIC, data_dir=data_dir, heads=["fc"])
    for folder in ("fc-centered-noaug", "fc-biased-noaug", "fc-biased-aug"):
        config = json.loads((out / "runs" / folder / "config.json").read_text())
        assert config["steps"] == 2
    table = (out / "reproduce.md").read_text()
    assert "steps per run: 2 for fc, 3 for classification;" in table
    # The preset changes after the runs: the header keeps the runs' own steps.
    monkeypatch.setitem(PRESETS, "quick", steps(4, 4))
    reproduce(out, SMALL_SYNTHETIC, data_dir=data_dir, heads=["fc"])
    table = (out / "reproduce.md").read_text()
    assert "steps per run: 2 for fc, 3 for classification;" in table
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir), "--out", str(out)]
    capsys.readouterr()
    assert main(["reproduce", "--steps", "2", *common]) == 2
    err = capsys.readouterr().err
    assert "has its preset's steps for each head" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--preset", "huge"], "argument --preset: invalid choice"),
        (["--steps", "0"], "--steps 0: expected a whole number of at least 1"),
        (["--heads", "fc,mlp"], "argument --heads: expected some of"),
        (["--crop", "centered"], "unrecognized arguments: --crop"),
    ],
)
def test_bad_flags_are_one_line(flags, named, tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_python_api_checks_heads(tmp_path):
    with pytest.raises(UserError, match="heads 'mlp': expected some of fc"):
        reproduce(tmp_path / "out", heads=["mlp"])
    assert not (tmp_path / "out").exists()


def test_robustness_table_and_chart(tmp_path, data_dir, capsys):
    """hjr reproduce --robustness: a run per head, training and seed, each scored
    at every shift and scale as `hjr evaluate` scores it; the table and chart of
    the seeds' means and spreads, and a rerun that skips the runs."""
    out = tmp_path / "robust"
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir), "--out", str(out)]
    argv = ["reproduce", "--robustness", "--preset", "quick", "--steps", "2"]
    argv += ["--heads", "fc", "--box-jitter", "16,1.25", "--seeds", "2", *common]
    assert main(argv) == 0
    table = json.loads((out / "robustness.json").read_text())
    names = ["fc-jitter-seed0", "fc-jitter-seed1", "fc-plain-seed0", "fc-plain-seed1"]
    assert sorted(table["rows"]) == names
    assert table["box_jitter"] == [16.0, 1.25] and table["seeds"] == 2
    for name in names:
        conf = json.loads((out / "runs" / name / "config.json").read_text())
        assert conf["seed"] == int(name[-1])
        jittered = name.startswith("fc-jitter")
        assert conf["box_jitter"] == ([16.0, 1.25] if jittered else [0, 1])
    for row in table["rows"].values():
        assert set(row["errors"]) == {"1", "1.25"}
        for values in row["errors"].values():
            assert list(values) == ["0", "4", "8", "16", "32"]
            assert all(math.isfinite(v) and v > 0 for v in values.values())
    # The table's figure is `hjr evaluate`'s, to the last digit.
    scored = tmp_path / "scored.json"
    evaluate = ["evaluate", "--model", str(out / "runs" / "fc-jitter-seed1")]
    evaluate += ["--no-tta", "--shift", "16", "--scale", "1.25", "--json", str(scored)]
    assert main([*evaluate, *common[:4]]) == 0
    epe = json.loads(scored.read_text())["epe"]
    assert epe == table["rows"]["fc-jitter-seed1"]["errors"]["1.25"]["16"]
    # Each cell: the mean of the seeds +/- half their range.
    text, tracking = (out / "robustness.md").read_text().split("## Tracking")
    seeds = [table["rows"][f"fc-plain-seed{k}"]["errors"]["1.25"]["16"] for k in (0, 1)]
    cell = f"{sum(seeds) / 2:.2f} ± {abs(seeds[0] - seeds[1]) / 2:.2f}"
    (line,) = [line for line in text.splitlines() if line.startswith("| fc | as is |")]
    assert line.startswith("| fc | as is | 2 |") and line.split(" | ")[-2] == cell
    assert text.count("| fc |") == 2 and "32 px, ×1.25" in text
    assert "half the range" in text
    # Tracking the drawn videos: each run's errors with true boxes and tracked.
    rows = [line for line in tracking.splitlines() if line.startswith("| fc |")]
    assert len(rows) == 2 and all(line.count("±") == 3 for line in rows), rows
    video = table["rows"]["fc-plain-seed0"]["video"]
    assert video["frames"] == 900 and 0 <= video["lost"] <= 900
    assert video["true_box"] > 0 and video["tracked"] > 0
    assert read_png(out / "robustness.png").shape[1] > 800
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("done before") == 4
    for flag, value in (("--box-jitter", "8,1.25"), ("--seeds", "3")):
        refused = [*argv[: -len(common) - 4], flag, value, *common]
        assert main(refused) == 2
        assert f"{flag} " in capsys.readouterr().err


def test_a_robustness_folder_of_one_seed_a_run_is_refused(tmp_path, capsys):
    """An earlier hjr's table (one seed a run, runs/<head>-<training>/, its moved
    crops cut twice over) is refused in one line, before anything runs."""
    from hjr.apps.robustness import robustness

    out = tmp_path / "old"
    out.mkdir()
    old = {
        "data": SMALL_SYNTHETIC,
        "preset": "quick",
        "steps": 2,
        "box_jitter": [32.0, 1.25],
        "shifts": [0, 4, 8, 16, 32],
        "scales": [1.0, 1.25],
        "rows": {"fc-plain": {"head": "fc", "training": "plain", "errors": {}}},
    }
    (out / "robustness.json").write_text(json.dumps(old))
    assert main(["reproduce", "--robustness", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "an earlier hjr (one seed a run" in err and err.count("\n") == 1
    with pytest.raises(UserError, match="earlier hjr"):
        robustness(out, SMALL_SYNTHETIC, "quick", 2, tmp_path / "data", ["fc"])
    assert sorted(p.name for p in out.iterdir()) == ["robustness.json"]
