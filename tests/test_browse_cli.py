"""`hjr browse` for the three sources, and clear errors for bad input."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC
from datagen import random_frames, write_h5, write_rhd_tree

from data_pipeline.files import read_png
from data_pipeline.kaggle_csv import read_keypoints_csv
from data_pipeline.kaggle_h5 import write_kaggle_files
from data_pipeline.sources import parse_source
from data_pipeline.store import prepare
from hjr.cli import main


def browse(data, out, data_dir, *extra):
    return main(
        [
            "browse",
            "--data",
            str(data),
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
            *extra,
        ]
    )


def check_outputs(out, num, labelled=True):
    """The files browse promises; returns ({id: image}, ids, keypoints)."""
    images = {
        int(p.stem): read_png(p) for p in out.glob("[0-9]*.png") if "_" not in p.stem
    }
    assert len(images) == num
    for index, image in images.items():
        assert image.shape == (128, 128, 3)
        assert read_png(out / f"{index:05d}_overlay.png").shape == (384, 384, 3)
    assert read_png(out / "grid.png").shape[0] >= 192
    if not labelled:
        assert not (out / "keypoints.csv").exists()
        return images, None, None
    ids, keypoints = read_keypoints_csv(out / "keypoints.csv")
    assert sorted(ids.tolist()) == sorted(images) and keypoints.shape == (num, 21, 2)
    return images, ids, keypoints


def test_browse_synthetic_matches_the_pipeline(tmp_path, data_dir):
    from data_pipeline.pipeline import make_dataset

    assert browse(SMALL_SYNTHETIC, tmp_path / "b", data_dir, "--num", "5") == 0
    images, ids, keypoints = check_outputs(tmp_path / "b", 5)
    batch = next(
        iter(make_dataset(parse_source(SMALL_SYNTHETIC), "train", 5, data_dir=data_dir))
    )
    for image, kp, index in zip(
        *(batch[k].numpy() for k in ("image", "keypoints", "id"))
    ):
        np.testing.assert_array_equal(images[index], image)
        np.testing.assert_allclose(keypoints[list(ids).index(index)], kp, atol=1e-3)


def test_browse_augment_is_seeded_and_moves_keypoints_with_pixels(tmp_path, data_dir):
    args = ("--num", "6", "--augment", "--max-angle", "30", "--flip", "--seed", "4")
    for name in ("a", "b"):
        assert browse(SMALL_SYNTHETIC, tmp_path / name, data_dir, *args) == 0
    assert browse(SMALL_SYNTHETIC, tmp_path / "plain", data_dir, "--num", "6") == 0
    a, ids_a, kp_a = check_outputs(tmp_path / "a", 6)
    b, ids_b, kp_b = check_outputs(tmp_path / "b", 6)
    plain, _, kp_plain = check_outputs(tmp_path / "plain", 6)
    np.testing.assert_array_equal(kp_a, kp_b)
    for index in a:
        np.testing.assert_array_equal(a[index], b[index])
    assert not np.allclose(kp_a, kp_plain)
    assert np.all((kp_a >= 0) & (kp_a <= 128))


def test_browse_kaggle_test_split_is_unlabelled(tmp_path, data_dir):
    images, keypoints = random_frames(12, 320, 320, seed=0)
    test_images = images[:3, :128, :128]
    write_kaggle_files(tmp_path / "k", images, keypoints, test_images)
    assert (
        browse(
            f"{tmp_path / 'k'}:validation=2",
            tmp_path / "out",
            data_dir,
            "--split",
            "test",
        )
        == 0
    )
    written, _, _ = check_outputs(tmp_path / "out", 3, labelled=False)
    for index, image in written.items():
        np.testing.assert_array_equal(image, test_images[index])


def hold_out_lines(text):
    return [line for line in text.splitlines() if "to hold out for validation" in line]


def split_sizes(data, data_dir):
    info = prepare(parse_source(str(data)), data_dir=data_dir)
    return info["splits"], info["metadata"]["num_validation"]


def test_browse_rhd(tmp_path, data_dir, capsys):
    """The real frames' tiny training split (4 samples) with the default hold-out
    of 480: one sample goes to validation and the test split reads as usual."""
    info = write_rhd_tree(tmp_path / "rhd")
    args = ("--split", "test", "--num", "3")
    assert browse(tmp_path / "rhd", tmp_path / "out", data_dir, *args) == 0
    _, ids, keypoints = check_outputs(tmp_path / "out", 3)
    assert sorted(ids.tolist()) == [0, 1, 2]
    assert np.all((keypoints > 0) & (keypoints < 128))
    (line,) = hold_out_lines(capsys.readouterr().out)
    assert line.endswith(
        ": 4 training samples, not more than the 480 to hold out for validation: "
        "holding out 1 (at least one) instead; "
        "choose with --data 'SOURCE:validation=N'"
    )
    sizes, held = split_sizes(tmp_path / "rhd", data_dir)
    good = len(info["training"]["ids"]) - len(info["training"]["skipped"])
    assert held == 1 and sizes["train"] + sizes["validation"] == good
    assert sizes["test"] == 3


def test_small_competition_folder_holds_out_a_tenth(tmp_path, data_dir, capsys):
    """20 training samples, fewer than the default 480 to hold out: the test split
    is read, 2 samples are held out instead, said in one line."""
    images, keypoints = random_frames(20, 320, 320, seed=2)
    test_images = images[:4, :128, :128]
    write_kaggle_files(tmp_path / "k", images, keypoints, test_images)
    capsys.readouterr()
    args = ("--split", "test")
    assert browse(tmp_path / "k", tmp_path / "out", data_dir, *args) == 0
    check_outputs(tmp_path / "out", 4, labelled=False)
    training = (tmp_path / "k").resolve() / "training.h5"
    assert hold_out_lines(capsys.readouterr().out) == [
        f"hjr: {training}: 20 training samples, not more than the 480 to hold out "
        "for validation: holding out 2 (a tenth) instead; "
        "choose with --data 'SOURCE:validation=N'"
    ]
    sizes, held = split_sizes(tmp_path / "k", data_dir)
    assert sizes == {"train": 18, "validation": 2, "test": 4} and held == 2
    assert browse(tmp_path / "k", tmp_path / "train", data_dir, "--num", "18") == 0
    check_outputs(tmp_path / "train", 18)


def test_single_training_sample_leaves_only_the_test_split(tmp_path, data_dir, capsys):
    images, keypoints = random_frames(3, 320, 320, seed=3)
    test_images = images[1:, :128, :128]
    write_kaggle_files(tmp_path / "one", images[:1], keypoints[:1], test_images)
    capsys.readouterr()
    assert browse(tmp_path / "one", tmp_path / "out", data_dir, "--split", "test") == 0
    check_outputs(tmp_path / "out", 2, labelled=False)
    (line,) = hold_out_lines(capsys.readouterr().out)
    assert line.endswith(
        ": 1 training sample, not more than the 480 to hold out for validation: "
        "too few to split, so no train or validation split"
    )
    assert split_sizes(tmp_path / "one", data_dir) == ({"test": 2}, 0)
    info = prepare(parse_source(str(tmp_path / "one")), data_dir=data_dir)
    assert info["labelled"] == []  # the competition's test split has no labels
    capsys.readouterr()
    args = ("--split", "train")
    assert browse(tmp_path / "one", tmp_path / "train", data_dir, *args) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("hjr: error: ") and str((tmp_path / "one").resolve()) in err
    assert err.endswith(": has no train split (it has: test)")


def bad_inputs(tmp_path):
    """(--data value, text the error must contain) for each kind of bad input."""
    (tmp_path / "nothdf5").mkdir()
    (tmp_path / "nothdf5" / "training.h5").write_text("not an HDF5 file")
    images, keypoints = random_frames(10, 320, 320, seed=1)
    for name in ("group", "shape"):
        (tmp_path / name).mkdir()
    write_h5(
        tmp_path / "group" / "training.h5",
        {"training/img": images.transpose(0, 3, 1, 2), "training/kp_2D": keypoints},
    )
    write_h5(
        tmp_path / "shape" / "training.h5",
        {"train/img": images, "train/kp_2D": keypoints},
    )
    keypoints[3, 7] = np.nan
    write_kaggle_files(tmp_path / "nan", images, keypoints)
    rhd = write_rhd_tree(tmp_path / "nopickle")["rhd_dir"]
    (rhd / "training" / "anno_training.pickle").unlink()
    rhd = write_rhd_tree(tmp_path / "badpng")["rhd_dir"]
    (rhd / "training" / "color" / "01111.png").write_bytes(b"\x89PNG garbage")
    return [
        (tmp_path / "missing", "no such folder"),
        (tmp_path / "nothdf5", "training.h5"),
        (tmp_path / "group", "train"),
        (tmp_path / "shape", "img"),
        (f"{tmp_path / 'nan'}:validation=2", "sample 3"),
        (tmp_path / "nopickle", "anno_training.pickle"),
        (f"{tmp_path / 'badpng'}:validation=1", "01111.png"),
    ]


def test_bad_inputs_give_one_line_errors(tmp_path, data_dir, capsys):
    for data, expected in bad_inputs(tmp_path):
        capsys.readouterr()
        assert browse(data, tmp_path / "out", data_dir) == 2, data
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("hjr: error: ") and expected in err[-1], (data, err)
        assert "Traceback" not in "\n".join(err)


@pytest.mark.slow
def test_command_line_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hjr",
            "browse",
            "--data",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no such folder" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", [["--num", "0"], ["--split", "dev"], ["--crop", "x"]])
def test_bad_flags(tmp_path, flag, capsys):
    assert main(["browse", "--out", str(tmp_path), *flag]) == 2
    err = capsys.readouterr().err
    assert flag[0] in err and len(err.strip().splitlines()) == 1
