"""Preparing the three sources (data_pipeline.examples, data_pipeline.store), and the
tf.data pipeline over them (data_pipeline.pipeline)."""

import functools
import subprocess

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC
from datagen import write_rhd_tree

from data_pipeline import parallel, synthetic
from data_pipeline.crop import crop_hand
from data_pipeline.errors import UserError
from data_pipeline.examples import TEST_INDEX_OFFSET
from data_pipeline.kaggle_h5 import write_kaggle_files
from data_pipeline.loader import NUM_DRAWS, batch_draws, read_split
from data_pipeline.pipeline import make_dataset
from data_pipeline.sources import parse_source
from data_pipeline.splits import hold_out
from data_pipeline.store import open_split, prepare


def read_all(source, split, data_dir, crop="biased"):
    """{id: (image, keypoints)} of a whole split."""
    out = {}
    for batch in make_dataset(source, split, 16, crop=crop, data_dir=data_dir):
        for image, kp, index in zip(
            *(batch[k].numpy() for k in ("image", "keypoints", "id"))
        ):
            out[int(index)] = (image, kp)
    return out


def test_synthetic_splits_hold_out_validation(data_dir):
    source = parse_source(SMALL_SYNTHETIC)
    train = read_all(source, "train", data_dir)
    validation = read_all(source, "validation", data_dir)
    test = read_all(source, "test", data_dir)
    assert (len(train), len(validation), len(test)) == (40, 8, 8)
    assert set(train) | set(validation) == set(range(48))
    assert sorted(test) == list(range(8))
    for image, kp in list(train.values()) + list(test.values()):
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert kp.shape == (21, 2) and np.all((kp >= -1) & (kp <= 128))


@pytest.mark.parametrize("crop", ["biased", "centered"])
def test_synthetic_samples_are_crops_of_the_drawn_frames(data_dir, crop):
    source = parse_source(SMALL_SYNTHETIC)
    train = read_all(source, "train", data_dir, crop)
    index = sorted(train)[3]
    image, kp = crop_hand(*synthetic.render_hand(0, index), crop)
    np.testing.assert_array_equal(train[index][0], image)
    np.testing.assert_allclose(train[index][1], kp, atol=1e-5)


def test_synthetic_visibility_is_the_renderers(data_dir):
    source = parse_source(SMALL_SYNTHETIC)
    for split, offset in (("train", 0), ("test", TEST_INDEX_OFFSET)):
        samples = read_split(source, split, ("id", "visible"), data_dir=data_dir)
        assert samples["visible"].dtype == bool
        assert samples["visible"].shape == (len(samples["id"]), 21)
        for index, visible in zip(samples["id"], samples["visible"]):
            rendered = synthetic.render_hand_with_visibility(0, offset + int(index))
            np.testing.assert_array_equal(visible, rendered[2])
        assert not samples["visible"].all()
    assert open_split(source, "train", data_dir=data_dir).has_visibility


def test_synthetic_hands_drawn_by_a_process_per_core_are_the_same(
    tmp_path, data_dir, monkeypatch
):
    source = parse_source(SMALL_SYNTHETIC)
    fields = ("id", "image", "keypoints", "visible")
    splits = ("train", "validation", "test")
    alone = {s: read_split(source, s, fields, data_dir=data_dir) for s in splits}
    started = []

    class Popen(subprocess.Popen):
        def __init__(self, command, *args, **kwargs):
            started.append(command[-1])
            super().__init__(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Popen)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 8)
    monkeypatch.setattr(parallel, "CHUNK", 3)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    where = tmp_path / "drawn_in_parallel"
    for split in splits:
        drawn = read_split(source, split, fields, data_dir=where)
        for key in fields:
            np.testing.assert_array_equal(drawn[key], alone[split][key])
    assert started == ["data_pipeline.parallel"] * 6  # two per split


def test_drawing_processes_fail_clearly_and_print_aside(monkeypatch):
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    function = functools.partial(divmod, 1)  # divmod(1, 0) fails
    items = [1] * parallel.PARALLEL_FROM + [0]
    with pytest.raises(RuntimeError, match="drawing samples failed: ZeroDivision"):
        list(parallel.in_order(function, items))
    # what a worker prints goes to its errors, not into its results
    items = range(parallel.PARALLEL_FROM)
    assert list(parallel.in_order(print, items)) == [None] * len(items)


def test_read_split_picks_ids_in_their_order(data_dir):
    source = parse_source(SMALL_SYNTHETIC)
    everything = read_all(source, "test", data_dir)
    picked = read_split(
        source, "test", ("image", "keypoints"), [5, 0, 3], data_dir=data_dir
    )
    assert sorted(picked) == ["image", "keypoints"]
    for n, index in enumerate([5, 0, 3]):
        np.testing.assert_array_equal(picked["image"][n], everything[index][0])
        np.testing.assert_array_equal(picked["keypoints"][n], everything[index][1])
    ids = read_split(source, "test", ("id",), data_dir=data_dir)["id"]
    assert ids.tolist() == list(range(8))
    with pytest.raises(UserError, match="no sample with id 8"):
        read_split(source, "test", ("image",), [1, 8], data_dir=data_dir)


def test_test_split_is_always_biased(data_dir):
    source = parse_source(SMALL_SYNTHETIC)
    biased = read_all(source, "test", data_dir, "biased")
    centred = read_all(source, "test", data_dir, "centered")
    for index in biased:
        np.testing.assert_array_equal(biased[index][0], centred[index][0])


def test_prepared_once_then_reused(data_dir, capsys):
    source = parse_source(SMALL_SYNTHETIC)
    prepare(source, data_dir=data_dir)
    assert "preparing" in capsys.readouterr().out
    info = prepare(source, data_dir=data_dir)
    assert "preparing" not in capsys.readouterr().out
    assert info["splits"] == {"train": 40, "validation": 8, "test": 8}
    assert info["metadata"]["num_validation"] == 8
    assert info["labelled"] == ["train", "validation", "test"]
    assert info["has_visibility"] is True


def test_same_seed_same_batches(data_dir):
    source = parse_source(SMALL_SYNTHETIC)

    def ids(seed):
        ds = make_dataset(
            source, "train", 8, training=True, seed=seed, data_dir=data_dir
        )
        return [b["id"].numpy().tolist() for b in ds.take(8)]  # beyond one epoch

    first = ids(1)
    assert first == ids(1)
    assert first != ids(2)
    drawn = sum(first, [])
    train_ids = sorted(read_all(source, "train", data_dir))
    assert sorted(drawn[:40]) == train_ids  # one epoch: each sample once
    assert set(drawn[40:]) <= set(train_ids) and len(set(drawn[40:])) == 24
    assert drawn[40:] != drawn[:24]  # the next epoch in another order


def test_training_batches_carry_their_draws_and_resume_replays_them(data_dir):
    source = parse_source(SMALL_SYNTHETIC)

    def stream(seed):
        return make_dataset(
            source, "train", 8, training=True, seed=seed, data_dir=data_dir
        )

    def draws(ds, count=6):
        return np.stack([b["draws"].numpy() for b in ds.take(count)])

    first = draws(stream(1))  # 6 batches of 8: beyond one epoch of 40
    assert first.shape == (6, 8, NUM_DRAWS) and first.dtype == np.float32
    assert np.all((first >= 0) & (first < 1)) and 0.4 < first.mean() < 0.6
    assert len(np.unique(first)) == first.size  # every sample, every column its own
    np.testing.assert_array_equal(first, draws(stream(1)))
    assert not np.any(np.isclose(first, draws(stream(2))))
    for n in range(6):
        np.testing.assert_array_equal(first[n], batch_draws(1, n, 8))
    skipped = stream(1).skip(4)
    np.testing.assert_array_equal(draws(skipped, 2), first[4:])
    resumed = make_dataset(
        source, "train", 8, training=True, seed=1, data_dir=data_dir, start=4
    )
    np.testing.assert_array_equal(draws(resumed, 2), first[4:])
    evaluation = make_dataset(source, "train", 8, seed=1, data_dir=data_dir)
    assert "draws" not in next(iter(evaluation))


def test_the_draws_have_the_columns_the_augmentation_reads():
    from hjr.core.augment import NUM_DRAWS as augment_draws

    assert NUM_DRAWS == augment_draws == 4


def test_kaggle_files(tmp_path, data_dir):
    frames = [synthetic.render_hand(5, i) for i in range(30)]
    images = np.stack([f[0] for f in frames])
    keypoints = np.stack([f[1] for f in frames])
    test_images = images[:5, :128, :128]
    write_kaggle_files(tmp_path / "kaggle", images, keypoints, test_images)
    source = parse_source(f"{tmp_path / 'kaggle'}:validation=6")
    train = read_all(source, "train", data_dir)
    validation = read_all(source, "validation", data_dir)
    test = read_all(source, "test", data_dir)
    assert (len(train), len(validation), len(test)) == (24, 6, 5)
    assert set(train) | set(validation) == set(range(30))
    for index, (image, kp) in train.items():
        expected, expected_kp = crop_hand(images[index], keypoints[index])
        np.testing.assert_array_equal(image, expected)
        np.testing.assert_allclose(kp, expected_kp, atol=1e-5)
    for index, (image, _) in test.items():
        np.testing.assert_array_equal(image, test_images[index])
    prepared = open_split(source, "test", data_dir=data_dir)
    assert len(prepared) == 5 and not prepared.labelled
    assert open_split(source, "train", data_dir=data_dir).labelled
    for split in ("train", "test"):  # no visibility in the files: all visible
        samples = read_split(source, split, ("visible",), data_dir=data_dir)
        assert samples["visible"].all()
    assert not prepared.has_visibility
    info = prepare(source, data_dir=data_dir)
    assert info["labelled"] == ["train", "validation"]
    assert info["metadata"]["num_validation"] == 6
    assert info["metadata"]["skipped_train"] == info["metadata"]["skipped_validation"]
    assert info["metadata"]["skipped_train"] == 0


def test_kaggle_folder_without_test_file(tmp_path, data_dir, capsys):
    frames = [synthetic.render_hand(5, i) for i in range(12)]
    images = np.stack([f[0] for f in frames])
    keypoints = np.stack([f[1] for f in frames])
    write_kaggle_files(tmp_path / "k", images, keypoints)
    with pytest.raises(UserError, match="no test split"):
        open_split(
            parse_source(f"{tmp_path / 'k'}:validation=2"), "test", data_dir=data_dir
        )
    capsys.readouterr()
    source = parse_source(str(tmp_path / "k"))
    assert len(open_split(source, "train", data_dir=data_dir)) == 11
    assert "12 training samples, not more than the 480" in capsys.readouterr().out
    write_kaggle_files(tmp_path / "one", images[:1], keypoints[:1])
    with pytest.raises(UserError, match="no testing.h5 beside it: nothing to prepare"):
        open_split(parse_source(str(tmp_path / "one")), "test", data_dir=data_dir)


@pytest.mark.parametrize(
    "count, asked, held",
    [(30, 6, 6), (480, 480, 48), (20, 480, 2), (19, 480, 1), (2, 2, 1), (1, 480, 0)],
)
def test_hold_out_a_tenth_when_too_few(count, asked, held, capsys):
    split = hold_out(count, asked, 0, "here")
    said = capsys.readouterr().out.splitlines()
    assert len(said) == (asked >= count)
    if held == 0:
        assert split is None and "no train or validation split" in said[0]
        return
    train, validation = split
    assert len(validation) == held and len(train) == count - held
    assert sorted(set(train) | set(validation)) == list(range(count))


def test_synthetic_without_training_samples_is_refused(data_dir):
    with pytest.raises(UserError, match="train=0"):
        prepare(parse_source("synthetic:train=0,validation=4"), data_dir=data_dir)


def test_rhd_folder(tmp_path, data_dir):
    info = write_rhd_tree(tmp_path / "rhd")
    source = parse_source(f"{tmp_path / 'rhd'}:validation=1")
    assert source.kind == "rhd"
    train = read_all(source, "train", data_dir)
    validation = read_all(source, "validation", data_dir)
    test = read_all(source, "test", data_dir)
    good = set(info["training"]["ids"]) - set(info["training"]["skipped"])
    assert set(train) | set(validation) == good
    assert sorted(test) == info["evaluation"]["ids"]
    for index, (image, kp) in {**train, **validation}.items():
        frame = synthetic_free_read(info["training"]["png"][index])
        expected, expected_kp = crop_hand(frame, info["training"]["keypoints"][index])
        np.testing.assert_array_equal(image, expected)
        np.testing.assert_allclose(kp, expected_kp, atol=1e-4)
    splits = ("train", "training"), ("validation", "training"), ("test", "evaluation")
    for split, rhd_split in splits:
        samples = read_split(source, split, ("id", "visible"), data_dir=data_dir)
        for index, visible in zip(samples["id"], samples["visible"]):
            np.testing.assert_array_equal(visible, info[rhd_split]["visible"][index])
    for index, (image, kp) in test.items():  # the test split is cut biased
        frame = synthetic_free_read(info["evaluation"]["png"][index])
        expected, expected_kp = crop_hand(frame, info["evaluation"]["keypoints"][index])
        np.testing.assert_array_equal(image, expected)
        np.testing.assert_allclose(kp, expected_kp, atol=1e-4)
    centred = {s: read_all(source, s, data_dir, "centered") for s in ("train", "test")}
    for index in test:  # whatever the crop mode
        np.testing.assert_array_equal(centred["test"][index][0], test[index][0])
    assert any(
        not np.array_equal(centred["train"][index][0], image)
        for index, (image, _) in train.items()
    )
    prepared = prepare(source, data_dir=data_dir)
    assert prepared["has_visibility"] is True
    assert prepared["labelled"] == ["train", "validation", "test"]
    metadata = prepared["metadata"]
    skipped = sum(metadata[f"skipped_{s}"] for s in ("train", "validation"))
    assert skipped == len(info["training"]["skipped"]) == 1
    assert metadata["skipped_test"] == 0 and metadata["num_validation"] == 1
    assert prepared["splits"] == {
        "train": len(train),
        "validation": 1,
        "test": len(info["evaluation"]["ids"]),
    }


def synthetic_free_read(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/no/such/folder", "no such folder"),
        ("synthetic:colour=3", "unknown option 'colour'"),
        ("synthetic:train=many", "unknown option|whole number"),
        ("synthetic:train=x1", "whole number"),
        ("synthetic:validation=0", "validation must be at least 1"),
        ("synthetic:train=0,test=5", "train must be at least 1"),
    ],
)
def test_bad_source_specs(spec, message):
    with pytest.raises(UserError, match=message):
        parse_source(spec)


def test_folder_of_neither_kind(tmp_path):
    with pytest.raises(UserError, match="found neither"):
        parse_source(str(tmp_path))
