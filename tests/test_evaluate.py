"""Metrics on hand-computed cases, and the report of `hjr evaluate --json`."""

import json

import numpy as np
import pytest

from data_pipeline.files import read_png
from hjr.cli import main
from hjr.draw import draw_keypoints
from hjr.inference.evaluate import WORST_COUNT, WORST_SCALE, pck_curve, scores


def test_scores_on_a_hand_computed_case():
    labels = np.zeros((2, 21, 2))
    labels[:, 1] = [10.0, 0.0]  # hand box size 10 px
    predictions = labels.copy()
    predictions[0, 0] = [3.0, 4.0]  # one joint 5 px off; box 10 -> outside 0.2 * 10
    predictions[1, 2] = [1.0, 0.0]  # one joint 1 px off: within 2 px
    result = scores(predictions, labels)
    assert result["kaggle_mse"] == pytest.approx((25 + 1) / 42)
    assert result["mse_per_coordinate"] == pytest.approx(13 / 42)
    assert result["epe"] == pytest.approx(6 / 42)
    assert result["pck@0.2"] == pytest.approx(41 / 42)
    assert result["per_joint_epe"]["wrist"] == pytest.approx(2.5)
    assert result["per_joint_epe"]["thumb_3"] == pytest.approx(0.5)


def test_auc_of_perfect_and_hopeless_predictions():
    labels = np.random.default_rng(0).uniform(20, 100, (5, 21, 2))
    assert scores(labels, labels)["auc_0_30px"] == pytest.approx(1.0)
    assert scores(labels + 100, labels)["auc_0_30px"] == pytest.approx(0.0)
    thresholds, curve = pck_curve(np.full((1, 21), 15.0))
    assert curve[thresholds < 15].max() == 0 and curve[thresholds >= 15].min() == 1


def test_scores_of_visible_and_hidden_joints_on_a_hand_computed_case():
    labels = np.zeros((2, 21, 2))
    labels[:, 1] = [10.0, 0.0]
    predictions = labels.copy()
    predictions[0, 0] = [3.0, 4.0]  # 5 px off, hidden
    predictions[1, 2] = [1.0, 0.0]  # 1 px off, visible
    visible = np.ones((2, 21), bool)
    visible[0, 0] = visible[1, 1] = False  # two hidden joints, one predicted exactly
    result = scores(predictions, labels, visible)
    plain = scores(predictions, labels)
    assert {k: result[k] for k in plain} == plain  # the keys without visibility
    assert list(result)[: len(plain)] == list(plain)
    assert result["share_hidden"] == pytest.approx(2 / 42)
    assert result["epe_hidden"] == pytest.approx(5 / 2)
    assert result["kaggle_mse_hidden"] == pytest.approx(25 / 2)
    assert result["epe_visible"] == pytest.approx(1 / 40)
    assert result["kaggle_mse_visible"] == pytest.approx(1 / 40)
    hidden, shown = result["per_joint_epe_hidden"], result["per_joint_epe_visible"]
    assert hidden["wrist"] == pytest.approx(5.0) and hidden["thumb_tip"] == 0.0
    assert sum(v is None for v in hidden.values()) == 19  # no hidden sample
    assert shown["wrist"] == 0.0 and shown["thumb_tip"] == 0.0
    assert shown["thumb_3"] == pytest.approx(0.5)
    assert None not in shown.values()

    everything = scores(predictions, labels, np.ones((2, 21), bool))
    assert everything["share_hidden"] == 0.0 and everything["epe_hidden"] is None
    assert everything["epe_visible"] == pytest.approx(plain["epe"])
    assert set(everything["per_joint_epe_hidden"].values()) == {None}


# ------------------------------------------------------------- hjr evaluate's report

BAND, GAP = 24, 4  # hjr.draw.titled_grid's title band and gap between tiles


def worst_grid_shape(count):
    """Shape of <stem>.worst.png for a split of `count` samples (a header band,
    then rows of titled tiles)."""
    tiles = min(count, WORST_COUNT)
    columns = min(tiles, 4)
    rows = -(-tiles // columns)
    side = 128 * WORST_SCALE
    return (BAND + rows * (BAND + side), columns * (side + GAP) - GAP, 3)


def tile(sheet, n, columns=4):
    """Tile n (row-major) of a worst grid, without its title."""
    side = 128 * WORST_SCALE
    r, c = divmod(n, columns)
    y, x = BAND + r * (BAND + side) + BAND, c * (side + GAP)
    return sheet[y : y + side, x : x + side]


def evaluate_csv(source_spec, split, data_dir, predictions_of, tmp_path):
    """Run `hjr evaluate --predictions` on predictions_of(labels) for a split;
    returns (exit status, the split's samples, the predictions read back)."""
    from data_pipeline.kaggle_csv import read_keypoints_csv, write_keypoints_csv
    from data_pipeline.loader import read_split
    from data_pipeline.sources import parse_source

    samples = read_split(
        parse_source(source_spec),
        split,
        ("id", "image", "keypoints", "visible"),
        data_dir=data_dir,
    )
    csv = tmp_path / "predictions.csv"
    write_keypoints_csv(csv, samples["id"], predictions_of(samples["keypoints"]))
    status = main(
        [
            "evaluate",
            "--predictions",
            str(csv),
            "--data",
            source_spec,
            "--data-dir",
            str(data_dir),
            "--split",
            split,
            "--json",
            str(tmp_path / "metrics.json"),
        ]
    )
    return status, samples, read_keypoints_csv(csv)[1]


def test_evaluate_from_predictions_writes_the_report(tmp_path, data_dir, capsys):
    """Predictions off by a different amount per sample: the worst grid shows the
    16 worst of 20, worst first, drawn as hjr.draw.draw_keypoints draws them."""
    offsets = np.linspace(0.5, 20, 20)[np.random.default_rng(0).permutation(20)]
    status, samples, predictions = evaluate_csv(
        "synthetic:train=40,validation=20,test=8",
        "validation",
        data_dir,
        lambda labels: labels + offsets[:, None, None] * np.array([0.6, 0.8]),
        tmp_path,
    )
    assert status == 0
    printed = capsys.readouterr().out
    for key in ("epe_visible", "epe_hidden", "share_hidden", "kaggle_mse_hidden"):
        assert key in printed
    for name in ("metrics.json", "metrics.joints.png", "metrics.worst.png"):
        assert str(tmp_path / name) in printed
    result = json.loads((tmp_path / "metrics.json").read_text())
    visible = samples["visible"]
    assert result["share_hidden"] == pytest.approx((~visible).mean())
    assert result["epe_visible"] == pytest.approx(
        offsets[:, None].repeat(21, 1)[visible].mean(), abs=1e-3
    )
    assert len(result["per_joint_epe_hidden"]) == 21

    joints = read_png(tmp_path / "metrics.joints.png")
    assert joints.shape[0] > 300 and joints.shape[1] > 800
    sheet = read_png(tmp_path / "metrics.worst.png")
    assert sheet.shape == worst_grid_shape(20)
    order = np.argsort(-offsets)
    for n in (0, 15):
        row = order[n]
        expected = draw_keypoints(
            samples["image"][row],
            predictions[row],
            WORST_SCALE,
            truth=samples["keypoints"][row],
            hidden=~visible[row],
        )
        np.testing.assert_array_equal(tile(sheet, n), expected)


def test_evaluate_without_visibility_says_so(tmp_path, data_dir, capsys):
    """The competition's files have no visibility: no visible/hidden figures, one
    bar per joint, the worst grid all the same."""
    from data_pipeline.kaggle_h5 import write_kaggle_files
    from data_pipeline.synthetic import render_hand

    frames = [render_hand(5, i) for i in range(30)]
    images = np.stack([f[0] for f in frames])
    write_kaggle_files(tmp_path / "kaggle", images, np.stack([f[1] for f in frames]))
    status, _, _ = evaluate_csv(
        f"{tmp_path / 'kaggle'}:validation=6",
        "validation",
        data_dir,
        lambda labels: labels + 3.0,
        tmp_path,
    )
    assert status == 0
    assert "has no joint visibility" in capsys.readouterr().out
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert not any("visible" in key or "hidden" in key for key in result)
    assert result["epe"] == pytest.approx(np.hypot(3, 3), abs=1e-3)
    assert read_png(tmp_path / "metrics.joints.png").ndim == 3
    assert read_png(tmp_path / "metrics.worst.png").shape == worst_grid_shape(6)


@pytest.mark.slow
def test_evaluate_a_model_and_its_predictions_alike(tmp_path, data_dir, capsys):
    """`--model` and `--predictions` of the same model's CSV give the same
    figures and both write the report."""
    from conftest import SMALL_SYNTHETIC, train_small_run

    run = train_small_run(tmp_path / "run", data_dir, head="fc")
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    csv = tmp_path / "validation.csv"
    assert (
        main(
            [
                "predict",
                "--model",
                str(run),
                *common,
                "--split",
                "validation",
                "--out",
                str(csv),
            ]
        )
        == 0
    )
    results = {}
    for given in (["--model", str(run)], ["--predictions", str(csv)]):
        json_path = tmp_path / f"{given[0][2:]}.json"
        assert main(["evaluate", *given, *common, "--json", str(json_path)]) == 0
        results[given[0]] = json.loads(json_path.read_text())
        sheet = read_png(json_path.with_suffix(".worst.png"))
        assert sheet.shape == worst_grid_shape(8)
        assert read_png(json_path.with_suffix(".joints.png")).ndim == 3
        assert json_path.with_suffix(".pck.png").is_file()
    model, from_csv = results["--model"], results["--predictions"]
    assert set(model) == set(from_csv) and "per_joint_epe_visible" in model
    assert model["share_hidden"] == from_csv["share_hidden"] > 0
    for key in ("epe", "epe_visible", "epe_hidden", "kaggle_mse_hidden"):
        assert model[key] == pytest.approx(from_csv[key], abs=1e-2)


def test_evaluate_under_a_move_scores_in_pixels_of_the_crop_as_cut(
    tmp_path, data_dir, capsys
):
    """Predictions (3, 4) px off in every moved crop score as predictions (3, 4) f
    px off in the crops as they should have been cut (f: each box's scale
    factor): the same epe, kaggle_mse, PCK and AUC; the table and the JSON say
    the unit, the JSON the move."""
    from conftest import SMALL_SYNTHETIC

    from data_pipeline import boxes
    from data_pipeline.kaggle_csv import write_keypoints_csv
    from data_pipeline.sources import parse_source
    from data_pipeline.store import open_split
    from hjr.inference.evaluate import MOVED_UNIT, UNIT

    source = parse_source(SMALL_SYNTHETIC)
    box = (16.0, 1.25, 2)
    moved = open_split(source, "validation", data_dir=data_dir, box=box)
    plain = open_split(source, "validation", data_dir=data_dir)
    factor = boxes.evaluation_draws(moved.id, *box)[:, 2, None, None]
    assert np.ptp(factor) > 0.05  # the boxes are scaled by different factors
    common = ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    results = {}
    moving = ["--shift", "16", "--scale", "1.25", "--box-seed", "2"]
    for name, split, off, flags in (
        ("moved", moved, np.array([3.0, 4.0]), moving),
        ("plain", plain, np.array([3.0, 4.0]) * factor, []),
    ):
        csv, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.json"
        write_keypoints_csv(csv, split.id, split.keypoints + off)
        argv = ["evaluate", "--predictions", str(csv), *common, "--json", str(out)]
        assert main([*argv, *flags]) == 0
        results[name] = json.loads(out.read_text())
        results[name]["printed"] = capsys.readouterr().out
    moved, plain = results["moved"], results["plain"]
    assert moved["epe"] == pytest.approx(5 * factor.mean())
    assert moved["kaggle_mse"] == pytest.approx(25 * (factor**2).mean())
    for key in ("epe", "kaggle_mse", "pck@0.2", "auc_0_30px", "epe_hidden"):
        assert moved[key] == pytest.approx(plain[key]), key
    assert moved["per_joint_epe"] == pytest.approx(plain["per_joint_epe"], abs=1e-3)
    assert moved["unit"] == MOVED_UNIT and plain["unit"] == UNIT
    assert moved["box"] == {"shift": 16.0, "scale": 1.25, "seed": 2}
    assert "box" not in plain
    assert f"errors in {MOVED_UNIT}" in moved["printed"]
    assert f"errors in {UNIT}\n" in plain["printed"]
